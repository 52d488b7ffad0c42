"""The joblib backend: each batch of joblib tasks goes to one engine of the pool.

The backend is its own load balancer (as the sweep runner is): it knows which engine runs
which batch, so an array an engine already holds is passed by reference. Each engine runs
one batch at a time; the other batches wait in the notebook and go to the first engine
that frees up. Results come back through ``concurrent.futures`` futures that joblib
retrieves in its callback thread.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import threading
import time
from typing import TYPE_CHECKING, Any

from joblib.parallel import AutoBatchingMixin, ParallelBackendBase

from workbench import _timeouts
from workbench._util import new_key
from workbench.errors import (
    EngineDiedError,
    InvalidValueError,
    RankError,
    RankFailure,
    RanksInterrupted,
    SetupError,
)
from workbench.joblib_backend._tasks import MIN_BYTES, Ref, drop_call, nbytes, run_items
from workbench.pool import Failure, classify_failure, failure_details
from workbench.progress import ProgressTracker

if TYPE_CHECKING:
    from workbench.pool import Pool

__all__ = ["PoolBackend"]

log = logging.getLogger("workbench.joblib")

_REFRESH = 0.25  # seconds between two redraws of the progress view


class _Call:
    """What one ``Parallel`` call holds: the queue, the engines' load, the kept arrays."""

    def __init__(self, ranks: list[int]) -> None:
        self.prefix = new_key("joblib") + "-"
        self.queue: list[tuple[list[Any], cf.Future[Any]]] = []
        self.busy = dict.fromkeys(ranks, 0)  # batches on each engine
        self.done = dict.fromkeys(ranks, 0)  # tasks finished by each engine
        self.keys: dict[int, str] = {}  # id(array) -> key
        self.held: list[Any] = []  # the arrays themselves: their ids stay theirs
        self.kept: dict[int, set[str]] = {r: set() for r in ranks}  # keys each engine holds
        self.arrays: dict[str, dict[str, int]] = {}  # key -> its bytes, engines it went to
        self.tasks = 0
        self.sent: list[Any] = []  # the AsyncResults of the batches in flight
        self.aborted = False  # after abort_everything nothing more is sent


class PoolBackend(AutoBatchingMixin, ParallelBackendBase):
    """A joblib backend that runs ``n_jobs`` workers as the engines of ``pool``.

    Use it through :func:`workbench.joblib_backend.use` (``with pool.joblib():``) or
    ``joblib.parallel_config(backend=PoolBackend(pool))``.

    Parameters
    ----------
    pool
        The engines that run the tasks: ``n_jobs=-1`` means all of them.
    min_bytes
        Arrays (numpy, pandas) of at least this many bytes in the tasks' arguments reach
        each engine once per call and are referenced afterwards.
    progress
        Show tasks done per rank while a call runs: None (a widget in a notebook, a line
        now and then elsewhere), True, False (nothing).
    """

    supports_retrieve_callback = True
    supports_timeout = True
    supports_return_generator = True
    supports_sharedmem = False
    uses_threads = False
    default_n_jobs = -1

    def __init__(
        self,
        pool: Pool,
        *,
        min_bytes: int = MIN_BYTES,
        progress: bool | None = None,
        nesting_level: int | None = None,
        inner_max_num_threads: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            nesting_level=nesting_level, inner_max_num_threads=inner_max_num_threads, **kwargs
        )
        if not isinstance(min_bytes, int) or min_bytes < 0:
            raise InvalidValueError(f"min_bytes must be an integer >= 0, got {min_bytes!r}")
        self.pool, self.min_bytes, self.show = pool, min_bytes, progress
        self._lock = threading.Lock()
        self._call: _Call | None = None
        self._tracker: ProgressTracker | None = None
        self._view: Any = None
        self._drawn = 0.0
        #: The last 100 finished calls: ``tasks``, ``seconds``, ``per_rank`` (tasks done by
        #: each rank), ``arrays`` (each large array: its ``bytes`` and how many ``engines`` it
        #: was sent to) and ``sent_bytes`` (their total).
        self.history: list[dict[str, Any]] = []

    # -- joblib's interface ------------------------------------------------------------------
    def effective_n_jobs(self, n_jobs: int | None) -> int:
        """Workers for ``n_jobs``: -1 all engines, -2 all but one..., k at most k."""
        self.pool.ensure_alive()
        size = self.pool.size
        if n_jobs is None:
            n_jobs = self.default_n_jobs
        if n_jobs == 0:
            raise InvalidValueError("n_jobs == 0 has no meaning: use -1 for every engine")
        if n_jobs < 0:
            return max(1, size + 1 + n_jobs)
        return min(n_jobs, size)

    def configure(self, n_jobs: int | None = 1, parallel: Any = None, **kwargs: Any) -> int:
        """Bind to a ``Parallel`` call; returns the number of workers."""
        self.parallel = parallel
        return self.effective_n_jobs(n_jobs)

    def start_call(self) -> None:
        """A ``Parallel`` call starts: fresh queue, per-rank counts and progress view."""
        ranks = list(range(self.pool.size))
        self._views = {r: self.pool.view([r]) for r in ranks}
        self._engine_ids = {r: e.engine_id for r, e in enumerate(self.pool.engines)}
        self._t0 = time.perf_counter()
        with self._lock:
            self._call = _Call(ranks)
        self._tracker = None
        if self.show is not False:
            from workbench.widgets import TextProgress, make_progress_view

            self._tracker = ProgressTracker(ranks)
            self._view = make_progress_view(widgets=self.show)
            if not isinstance(self._view, TextProgress):  # shown from this (the main) thread
                self._paint(force=True)

    def stop_call(self) -> None:
        """The call ended: drop the kept arrays from the engines, close the progress view."""
        call, self._call = self._call, None
        if call is None:
            return
        seconds = time.perf_counter() - self._t0
        record = {
            "tasks": sum(call.done.values()),
            "seconds": seconds,
            "per_rank": dict(call.done),
            "arrays": list(call.arrays.values()),
            "sent_bytes": sum(a["bytes"] * a["engines"] for a in call.arrays.values()),
        }
        self.history = [*self.history[-99:], record]
        if self._tracker is not None:
            self._paint(force=True, call=call)
            self._tracker.finish(dict.fromkeys(call.done, "done"))
            self._view.close(self._tracker)
        if call.keys and not self.pool.stopped and not self.pool.dead_ranks():
            try:
                self.pool.view().apply_async(drop_call, call.prefix).get(timeout=_timeouts.QUERY)
            except Exception as e:  # the arrays stay on the engines: say so, say how to free
                log.warning(
                    "joblib: the arrays this call sent (%s, %d) stay on the engines (%s: %s); "
                    "`%%wb restart` frees them",
                    call.prefix + "*", len(call.keys), type(e).__name__, e,
                )  # fmt: skip

    def terminate(self) -> None:
        """Nothing to shut down: the engines belong to the pool."""
        self.stop_call()

    def submit(self, func: Any, callback: Any = None) -> cf.Future[Any]:
        """Queue ``func`` (a joblib batch of tasks); it goes to the first free engine."""
        items = getattr(func, "items", None)
        items = list(items) if items is not None else [(func, (), {})]
        fut: cf.Future[Any] = cf.Future()
        if callback is not None:
            fut.add_done_callback(callback)
        with self._lock:
            call = self._call
            if call is None:
                fut.set_exception(SetupError("the joblib call already ended"))
                return fut
            if call.aborted:  # joblib may still dispatch from a completion callback
                fut.cancel()
                return fut
            call.queue.append((items, fut))
            call.tasks += len(items)
            sends = self._take(call)
        self._send_all(call, sends)
        return fut

    def retrieve_result_callback(self, out: cf.Future[Any]) -> Any:
        """The results of a finished batch (raises what its task raised)."""
        return out.result()

    def abort_everything(self, ensure_ready: bool = True) -> None:
        """A task failed or Ctrl-C: forget the queued batches, interrupt the running ones."""
        call = self._call
        if call is None:
            return
        with self._lock:
            call.aborted = True
            queued, call.queue = call.queue, []
            busy = [r for r, n in call.busy.items() if n]
            sent = [ar for ar in call.sent if not ar.ready()]
        for _, fut in queued:
            fut.cancel()
        if busy and not self.pool.stopped:
            try:  # batches an engine has not begun are dropped, the running ones interrupted;
                # settled before the next call can send them work
                self.pool.interrupt(busy, pending=sent, settle=sent)
            except Exception as e:
                log.warning(
                    "joblib: ranks %s could not be interrupted after the failure (%s: %s); "
                    "they may still run their batches: `%%wb restart` stops them",
                    busy, type(e).__name__, e,
                )  # fmt: skip

    # -- scheduling ----------------------------------------------------------------------------
    def _take(self, call: _Call) -> list[tuple[int, list[Any], cf.Future[Any]]]:
        """Under the lock: pair queued batches with idle engines (lowest rank first)."""
        sends = []
        while call.queue and not call.aborted:
            idle = [r for r, n in call.busy.items() if n == 0]
            if not idle:
                break
            items, fut = call.queue.pop(0)
            if not fut.set_running_or_notify_cancel():
                continue
            call.busy[idle[0]] += 1
            sends.append((idle[0], items, fut))
        return sends

    def _send_all(self, call: _Call, sends: list[tuple[int, list[Any], cf.Future[Any]]]) -> None:
        for rank, items, fut in sends:
            try:
                self._send(call, rank, items, fut)
            except Exception as e:
                self._settle(call, rank, 0, fut, error=e)

    def _send(self, call: _Call, rank: int, items: list[Any], fut: cf.Future[Any]) -> None:
        import cloudpickle

        new: dict[str, Any] = {}
        with self._lock:  # the kept-array bookkeeping of this engine
            subbed = [
                (f, self._sub(call, tuple(a), rank, new), self._sub(call, dict(k), rank, new))
                for f, a, k in items
            ]
        try:
            blob = cloudpickle.dumps(subbed)
        except Exception as e:
            raise SetupError(
                f"could not send a joblib task to the engines ({type(e).__name__}: {e}); the "
                "engines are other processes: pass functions and objects that pickle"
            ) from None
        ar = self._views[rank].apply_async(run_items, blob, new)
        with self._lock:
            call.sent = [a for a in call.sent if not a.ready()] + [ar]
        ar.add_done_callback(lambda ar: self._finished(call, rank, len(items), ar, fut))

    def _sub(self, call: _Call, value: Any, rank: int, new: dict[str, Any], depth: int = 0) -> Any:
        """``value`` with its large arrays as :class:`Ref` (new ones for ``rank`` go to
        ``new``); one level into lists, tuples and dicts."""
        if nbytes(value) >= max(self.min_bytes, 1):
            key = call.keys.get(id(value))
            if key is None:
                key = call.keys[id(value)] = f"{call.prefix}{len(call.keys)}"
                call.held.append(value)
                call.arrays[key] = {"bytes": nbytes(value), "engines": 0}
            if key not in call.kept[rank]:
                call.kept[rank].add(key)
                call.arrays[key]["engines"] += 1
                new[key] = value
            return Ref(key)
        if depth <= 1 and type(value) in (list, tuple):
            return type(value)(self._sub(call, v, rank, new, depth + 1) for v in value)
        if depth <= 1 and type(value) is dict:
            return {k: self._sub(call, v, rank, new, depth + 1) for k, v in value.items()}
        return value

    def _finished(self, call: _Call, rank: int, n: int, ar: Any, fut: cf.Future[Any]) -> None:
        """ipyparallel's thread: a batch came back from ``rank``."""
        try:
            out = ar.get(timeout=0)[0]
        except Exception as e:
            self._settle(call, rank, n, fut, error=self._remote_error(rank, e))
            return
        if out[0] == "ok":
            self._settle(call, rank, n, fut, result=out[1])
            return
        _, exc, ename, evalue, tb = out
        failure = RankError(
            [RankFailure(rank, self._engine_ids.get(rank, -1), ename, evalue, tb)], self.pool.size
        )
        if exc is None:
            self._settle(call, rank, n, fut, error=failure)
            return
        exc.__cause__ = failure  # the task's own exception, with the rank's traceback
        self._settle(call, rank, n, fut, error=exc)

    def _settle(
        self,
        call: _Call,
        rank: int,
        n: int,
        fut: cf.Future[Any],
        *,
        result: Any = None,
        error: BaseException | None = None,
    ) -> None:
        """Free the engine, send the next batch, then hand the outcome to joblib."""
        with self._lock:
            call.busy[rank] -= 1
            call.done[rank] += n if error is None else 0
            sends = self._take(call) if self._call is call else []
        self._send_all(call, sends)
        self._paint(call=call)
        if fut.cancelled():
            return
        if error is None:
            fut.set_result(result)
        else:
            fut.set_exception(error)

    def _remote_error(self, rank: int, e: BaseException) -> BaseException:
        kind = classify_failure(e)
        ename, evalue, trace, _ = failure_details(e)
        if kind in (Failure.INTERRUPTED, Failure.ABORTED):
            return RanksInterrupted(f"joblib tasks on rank {rank} were {kind.value}")
        dead = {} if self.pool.stopped else self.pool.dead_ranks([rank])
        if kind is Failure.ENGINE_DIED or dead:
            return EngineDiedError(dead or {rank: f"{ename}: {evalue}"})
        failure = RankFailure(rank, self._engine_ids.get(rank, -1), ename, evalue, trace)
        return RankError([failure], self.pool.size)

    # -- progress ------------------------------------------------------------------------------
    def _paint(self, *, force: bool = False, call: _Call | None = None) -> None:
        tracker, call = self._tracker, call or self._call
        if tracker is None or call is None:
            return
        now = time.monotonic()
        if not force and now - self._drawn < _REFRESH:
            return
        self._drawn = now
        total = float(max(call.tasks, 1))  # each rank's share of the tasks sent so far
        payloads = {
            r: {"step": float(d), "total": total, "t0": self._t0, "t": time.time(),
                "seq": d + 1, "metrics": {}}
            for r, d in call.done.items()
        }  # fmt: skip
        if tracker.update(payloads) or force:
            try:
                self._view.refresh(tracker)
            except Exception:  # a view must never break the computation
                log.debug("joblib: the progress view failed to refresh", exc_info=True)
