"""Move a dask (or numpy) array to the ranks as row blocks: whole chunks, never row by row.

Two paths, chosen by where the chunks are:

* **fetch** — the chunks live on a ``distributed`` cluster: the notebook only sends chunk
  keys; each engine connects to the scheduler and gathers the chunks overlapping its rows
  straight from the dask workers (nothing passes through the notebook process).
* **push** — numpy arrays and dask arrays computed in this process: row bands are computed
  a few chunks at a time and sent zero-copy to the ranks that own them, then assembled.

Engines report bytes moved through :func:`workbench.progress`; the handle records bytes,
seconds and throughput.
"""

from __future__ import annotations

import os
import time
from collections import deque
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING, Any

import numpy as np

from workbench import _timeouts, engine_store
from workbench._util import new_key
from workbench.data import row_bounds
from workbench.errors import InvalidValueError
from workbench.linalg._matrix import RowMatrix
from workbench.pool import require

if TYPE_CHECKING:
    from workbench.pool import Pool

__all__ = ["scatter"]

_MAX_INFLIGHT = 256 * 2**20  # bytes pushed and not yet acknowledged by the engines
_FETCH_BATCH = 4  # chunks an engine gathers from dask workers per request
_VIAS = ("auto", "push", "fetch")

Part = tuple[int, int, np.ndarray]  # (row offset in the block, column offset, data)


def scatter(
    A: Any,
    pool: Pool | None = None,
    *,
    key: str | None = None,
    bounds: Sequence[tuple[int, int]] | None = None,
    via: str = "auto",
    timeout: float | None = _timeouts.TRANSFER,
) -> RowMatrix:
    """Place ``A`` (dask or numpy, 1-D or 2-D) on the ranks of ``pool`` (default: the
    current pool) as contiguous row blocks.

    ``key`` names the data on the engines (default: a fresh ``matrix-...`` key).
    ``bounds`` fixes the row range of each rank (default: balanced; pass ``D.bounds`` to
    place a right-hand side like its matrix). ``via="auto"`` fetches from the dask workers
    when ``A`` is on a ``distributed`` cluster and pushes otherwise. Each wait for the
    engines (one pushed block, the assembly, the engines' fetch) lasts at most ``timeout``
    seconds (None: no limit).
    """
    pool = require(pool)
    if via not in _VIAS:
        raise InvalidValueError(f"scatter(via={via!r}): choose one of {', '.join(_VIAS)}")
    is_dask = hasattr(A, "dask") and hasattr(A, "chunks")
    arr = A if is_dask else np.asarray(A)
    if arr.ndim not in (1, 2):
        raise InvalidValueError(
            f"scatter needs a 1-D or 2-D array (rows first), got shape {tuple(arr.shape)}; "
            "reshape it first"
        )
    if any(np.isnan(d) for d in arr.shape):
        raise InvalidValueError(
            f"scatter needs known chunk sizes, got shape {arr.shape}: call A.compute_chunk_sizes()"
        )
    shape = tuple(int(d) for d in arr.shape)
    bounds = _check_bounds(bounds, shape[0], pool.size)
    dtype = np.dtype(arr.dtype)
    key = key or new_key("matrix")
    client = _distributed_client(arr) if is_dask and via != "push" else None
    if via == "fetch" and client is None:
        raise InvalidValueError(
            "scatter(via='fetch') needs a dask array on a distributed cluster: create a "
            "distributed.Client first, or use via='push'"
        )
    start = time.perf_counter()
    if client is not None:
        stats = _fetch_from_workers(pool, arr, client, key, bounds, shape, dtype, timeout)
        source = "dask workers"
    else:
        bands = _dask_bands(arr) if is_dask else iter([(0, 0.0, arr)])
        stats = _push(pool, bands, key, bounds, shape, dtype, timeout)
        source = "dask (local)" if is_dask else "numpy"
    elapsed = time.perf_counter() - start - stats["compute_seconds"]
    handle = RowMatrix(
        pool,
        key,
        int(np.prod(shape)) * dtype.itemsize,
        max(elapsed, 1e-9),
        shape=shape,
        dtype=dtype,
        bounds=bounds,
        source=source,
        pushed_bytes=stats["pushed"],
        fetched_bytes=stats["fetched"],
        chunks_moved=stats["chunks"],
    )
    pool.placed.add(key, handle)
    return handle


def _check_bounds(
    bounds: Sequence[tuple[int, int]] | None, n_rows: int, n_ranks: int
) -> list[tuple[int, int]]:
    if bounds is None:
        return row_bounds(n_rows, n_ranks)
    bounds = [(int(lo), int(hi)) for lo, hi in bounds]
    edges = [0] + [hi for _, hi in bounds]
    contiguous = all(lo == edges[i] <= hi for i, (lo, hi) in enumerate(bounds))
    if len(bounds) != n_ranks or not contiguous or edges[-1] != n_rows:
        raise InvalidValueError(
            f"bounds {bounds} must be {n_ranks} contiguous row ranges covering 0..{n_rows}"
        )
    return bounds


# -- push: the notebook computes (if needed) and sends whole bands ------------------------------
def _dask_bands(A: Any) -> Iterator[tuple[int, float, np.ndarray]]:
    """Row bands of a local dask array, a few chunks computed at a time (bounded memory)."""
    import dask

    starts = np.cumsum((0, *A.chunks[0]))
    group = max(1, os.cpu_count() or 1)
    for g in range(0, len(A.chunks[0]), group):
        idx = range(g, min(g + group, len(A.chunks[0])))
        t0 = time.perf_counter()
        arrays = dask.compute(*[A.blocks[i] for i in idx])
        seconds = (time.perf_counter() - t0) / len(idx)
        for i, band in zip(idx, arrays, strict=True):
            yield int(starts[i]), seconds, np.asarray(band)


def _push(
    pool: Pool,
    bands: Iterator[tuple[int, float, np.ndarray]],
    key: str,
    bounds: list[tuple[int, int]],
    shape: tuple[int, ...],
    dtype: np.dtype,
    timeout: float | None,
) -> dict[str, Any]:
    pushed = chunks = 0
    compute = 0.0
    inflight: deque[tuple[Any, int]] = deque()
    waiting = 0
    for r0, seconds, band in bands:
        compute += seconds
        r1 = r0 + band.shape[0]
        for rank, (lo, hi) in enumerate(bounds):
            a, b = max(lo, r0), min(hi, r1)
            if a >= b:
                continue
            piece = np.ascontiguousarray(band[a - r0 : b - r0])  # a view when band is C-ordered
            sent = pool.view([rank]).apply_async(_stage, key, a - lo, piece)
            inflight.append((sent, piece.nbytes))
            pushed += piece.nbytes
            waiting += piece.nbytes
            chunks += 1
            while waiting > _MAX_INFLIGHT:
                done, nbytes = inflight.popleft()
                done.get(timeout=timeout)
                waiting -= nbytes
    for done, _ in inflight:
        done.get(timeout=timeout)
    pool.apply(_assemble, (key, bounds, shape[1:], dtype.str), timeout=timeout)
    return {"pushed": pushed, "fetched": 0, "chunks": chunks, "compute_seconds": compute}


def _parts_key(key: str) -> str:
    return f"{key}/parts"


def _stage(key: str, row_offset: int, piece: np.ndarray) -> int:
    """Engine: keep one pushed piece until :func:`_assemble` builds the block."""
    try:
        parts = engine_store.get(_parts_key(key))
    except KeyError:
        parts = []
        engine_store.put(_parts_key(key), parts)
    parts.append((row_offset, 0, piece))
    return piece.nbytes


def _assemble(key: str, bounds: list[tuple[int, int]], tail: tuple[int, ...], dtype: str) -> int:
    """Engine: build this rank's block from the staged pieces and store it under ``key``."""
    import workbench as wb

    t0 = time.perf_counter()
    lo, hi = bounds[_rank()]
    try:
        parts = engine_store.get(_parts_key(key))
    except KeyError:
        parts = []
    engine_store.drop(_parts_key(key))
    block = _place(hi - lo, tail, np.dtype(dtype), parts)
    engine_store.put(key, block)
    mb = block.nbytes / 1e6
    wb.progress(1, total=1, MB=mb, assemble_s=time.perf_counter() - t0)
    return block.nbytes


def _place(n_rows: int, tail: tuple[int, ...], dtype: np.dtype, parts: list[Part]) -> np.ndarray:
    """One C-contiguous block from pieces; the piece itself when it is the whole block."""
    shape = (n_rows, *tail)
    if len(parts) == 1 and parts[0][:2] == (0, 0) and parts[0][2].shape == shape:
        only = parts[0][2]
        if only.flags.c_contiguous and only.dtype == dtype:
            return only
    block = np.empty(shape, dtype)
    for r, c, piece in parts:
        if block.ndim == 1:
            block[r : r + piece.shape[0]] = piece
        else:
            block[r : r + piece.shape[0], c : c + piece.shape[1]] = piece
    return block


def _rank() -> int:
    from mpi4py import MPI

    return MPI.COMM_WORLD.rank


# -- fetch: engines gather their chunks from the dask workers ----------------------------------
def _distributed_client(A: Any) -> Any:
    """The ``distributed.Client`` holding or computing ``A``, or None for local dask."""
    try:
        from distributed import default_client, futures_of
    except ImportError:
        return None
    futures = futures_of(A)
    if futures:
        return futures[0].client
    try:
        return default_client()
    except ValueError:
        return None


def _fetch_from_workers(
    pool: Pool,
    A: Any,
    client: Any,
    key: str,
    bounds: list[tuple[int, int]],
    shape: tuple[int, ...],
    dtype: np.dtype,
    timeout: float | None,
) -> dict[str, Any]:
    from distributed import as_completed, futures_of

    t0 = time.perf_counter()
    held = A if futures_of(A) else client.persist(A)
    for _ in as_completed(futures_of(held), loop=client.loop):  # computed, not gathered
        pass
    compute = time.perf_counter() - t0
    keys = held.__dask_keys__()
    rows = np.cumsum((0, *held.chunks[0]))
    cols = np.cumsum((0, *held.chunks[1])) if held.ndim == 2 else np.array([0, 1])
    plan: list[list[tuple[Any, int, int, int, int]]] = []
    for lo, hi in bounds:
        mine = []
        for i in range(len(rows) - 1):
            a, b = max(lo, int(rows[i])), min(hi, int(rows[i + 1]))
            if a >= b:
                continue
            for j in range(len(cols) - 1):
                chunk_key = keys[i][j] if held.ndim == 2 else keys[i]
                mine.append((chunk_key, a - int(rows[i]), b - int(rows[i]), a - lo, int(cols[j])))
        plan.append(mine)
    dataset = f"workbench-{key}"  # how the engines' own clients find the chunks
    client.publish_dataset(**{dataset: held})
    try:
        args = (key, client.scheduler.address, dataset, plan, shape[1:], dtype.str)
        fetched = pool.apply(_fetch, args, timeout=timeout)
    finally:
        client.unpublish_dataset(dataset)
    chunks = sum(len(p) for p in plan)
    return {"pushed": 0, "fetched": int(sum(fetched)), "chunks": chunks, "compute_seconds": compute}


_dask_clients: dict[str, Any] = {}


def _dask_client(address: str, timeout: float = _timeouts.DASK_CONNECT) -> Any:
    """Engine: one ``distributed.Client`` per scheduler, kept between calls; connecting
    waits at most ``timeout`` seconds."""
    from distributed import Client

    client = _dask_clients.get(address)
    if client is None or client.status not in ("running", "connecting"):
        client = _dask_clients[address] = Client(address, set_as_default=False, timeout=timeout)
    return client


def _fetch(
    key: str,
    address: str,
    dataset: str,
    plan: list[list[tuple[Any, int, int, int, int]]],
    tail: tuple[int, ...],
    dtype: str,
) -> int:
    """Engine: gather this rank's chunks straight from the dask workers; store the block."""
    from distributed import futures_of

    import workbench as wb

    rank = _rank()
    items = plan[rank]
    client = _dask_client(address)
    chunks = {f.key: f for f in futures_of(client.get_dataset(dataset))}
    n_rows = sum(b - a for _, a, b, _, c in items if c == 0)
    parts: list[Part] = []
    fetched = 0
    t0 = time.perf_counter()
    for s in range(0, len(items), _FETCH_BATCH):
        batch = items[s : s + _FETCH_BATCH]
        arrays = client.gather([chunks[k] for k, *_ in batch], direct=True)
        for (_, a, b, row, col), arr in zip(batch, arrays, strict=True):
            fetched += arr.nbytes
            parts.append((row, col, arr[a:b]))
        seconds = time.perf_counter() - t0
        wb.progress(
            s + len(batch), total=len(items), MB=fetched / 1e6, GBps=fetched / 1e9 / seconds
        )
    engine_store.put(key, _place(n_rows, tail, np.dtype(dtype), parts))
    return fetched
