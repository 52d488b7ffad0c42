"""EnginePool: MPI engines driven through ipyparallel, addressed by MPI rank.

``Pool.local`` starts ``n`` engines as one ``mpiexec`` job with the controller on
loopback; ``Pool.attach`` re-connects to a running pool through its cluster file.
Work goes to the engines ordered by MPI rank, never by engine id.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipyparallel as ipp

from workbench import _timeouts
from workbench._timeouts import PING
from workbench.errors import ControllerGoneError, InvalidValueError, NoPoolError, PoolError
from workbench.pool import _binding, _engine, _globals, _health, _ipp, _launch
from workbench.pool._busy import busy_engines
from workbench.pool._feedback import StartFeedback
from workbench.pool._slurm import SlurmOptions, format_duration, job_info
from workbench.pool._status import EngineInfo, PoolStatus
from workbench.pool._timelimit import DEFAULT_WARN_BEFORE, TimeLeft
from workbench.pool._wait import wait_for

__all__ = ["EngineInfo", "Pool", "PoolStatus", "current", "require", "set_current"]

log = logging.getLogger(__name__)

_current: Pool | None = None


def current() -> Pool | None:
    """The pool the magics use (the last one started or attached in this process); a pool
    found gone (stopped from elsewhere) stays current until it is stopped here, so that
    what uses it says so."""
    if _current is None or (_current.stopped and _current.lost is None):
        return None
    return _current


def require(pool: Pool | None = None) -> Pool:
    """``pool`` if given (checked alive), else the current pool; :class:`NoPoolError` if none."""
    found = pool if pool is not None else current()
    if found is None:
        raise NoPoolError(
            "no pool of engines is running: start one with `%wb start -n 4` or "
            "`wb.Pool.local(4)`, attach with `%wb attach`, or pass pool=..."
        )
    found.ensure_alive()
    return found


def set_current(pool: Pool | None) -> None:
    """Make ``pool`` the one the magics use (in a Jupyter kernel, also noted for the pool
    panel's status bar)."""
    global _current
    changed = pool is not _current
    _current = pool
    if changed:
        _binding.record(None if pool is None else pool.cluster_file)


class Pool:
    """A pool of MPI engines. Build it with :meth:`local` or :meth:`attach`."""

    def __init__(
        self, cluster: ipp.Cluster, client: ipp.Client, *, owner: bool, reuse_map: bool = False
    ) -> None:
        self.cluster = cluster
        self.client = client
        self.owner = owner
        self.stopped = False
        self.lost: str | None = None  # why the pool is gone, when it was stopped elsewhere
        #: The file the pool's ipyparallel cluster logs to (controller and engines starting,
        #: stopping, failing), next to ipyparallel's own output files; nothing of it is
        #: printed into the notebook. ``%wb status`` shows it.
        self.log_file: str = _launch.log_file(cluster)
        #: Seconds every request to the controller may take (status, stop...).
        self.query_timeout: float = _timeouts.CONTROLLER
        _ipp.bound_requests(client, lambda: self.query_timeout)
        self.engines: list[EngineInfo] = []
        self._handles: dict[str, Any] = {}  # data placed on the engines, by key
        self._job_checked: tuple[float, str | None] = (-1e9, None)
        self._ended: dict[int, str] | None = None  # why each rank died with the job
        #: A Slurm pool's time left (from the job checks); it warns once ``warn_before``
        #: seconds before the end (:attr:`warn_before`).
        self.time_left = TimeLeft()
        if cluster.cluster_file and os.path.exists(cluster.cluster_file):
            os.chmod(cluster.cluster_file, 0o600)  # it names the connection files: keep private
        self._connect(reuse=reuse_map)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def local(
        cls,
        n: int | None = None,
        *,
        detach: bool = False,
        profile: str | None = None,
        timeout: float = _timeouts.ENGINE_START,
        progress: bool = True,
    ) -> Pool:
        """Start ``n`` MPI engines on this machine; the controller listens on loopback only.

        Says at once what starts them (``workbench: starting 4 MPI engines
        (mpiexec.gforker)…``), then shows the engines registering (``4/4 engines
        registered``: one line updated in place in a notebook, a line per change elsewhere).

        Parameters
        ----------
        n: number of engines (MPI ranks); default one per core.
        detach: keep the pool running after this process exits (re-attach with
            :meth:`attach`, stop with ``workbench pool stop``).
        profile: IPython profile whose folder holds the cluster files (default profile).
        timeout: seconds to wait for every engine to register and answer.
        progress: show what the start is doing (False: print nothing).
        """
        n = (os.cpu_count() or 1) if n is None else n
        cluster, client = _launch.local_cluster(
            n,
            detach=detach,
            profile=profile,
            timeout=timeout,
            feedback=StartFeedback(show=progress),
        )
        return cls._adopt(cluster, client, owner=not detach)

    @classmethod
    def slurm(
        cls,
        n: int,
        *,
        partition: str | None = None,
        time: str | None = None,
        account: str | None = None,
        nodes: int | None = None,
        extra: str | None = None,
        launcher: str = "mpiexec",
        controller_ip: str | None = None,
        detach: bool = False,
        profile: str | None = None,
        timeout: float = _timeouts.SLURM_START,
        progress: bool = True,
        warn_before: float = DEFAULT_WARN_BEFORE,
    ) -> Pool:
        """Start ``n`` MPI engines as one Slurm job (``sbatch``); the controller stays here.

        The queue state is shown while waiting; Ctrl-C or ``timeout`` cancels the job.

        Parameters
        ----------
        n: number of engines (MPI ranks, ``--ntasks``).
        partition, time, account, nodes: the sbatch options of the same name
            (``time`` as Slurm writes it: ``30``, ``1:00:00``, ``1-12``).
        extra: more sbatch options on one line, e.g. ``"--mem=4G --qos=debug"``.
        launcher: ``"mpiexec"`` (inside the job; right for MPICH and Slurm-aware MPIs) or
            ``"srun"`` (``srun --mpi=pmi2``, for a site MPI built against Slurm's PMI).
        controller_ip: the address of this machine that the compute nodes reach (default:
            that of this host's name); on a login node whose compute nodes reach it on
            another network, its address there (the high-speed interface).
        detach: keep the job and controller running after this process exits.
        profile: IPython profile whose folder holds the cluster files.
        timeout: seconds for the job to queue, start and register every engine.
        progress: show the job queueing and the engines registering (False: print nothing).
        warn_before: seconds before the job's time limit when a running cell (or ``%wb
            status``) warns once and the engines are asked to checkpoint (see
            :func:`workbench.pool.checkpoint_requested`); default 5 minutes.
        """
        opts = SlurmOptions(partition, time, account, nodes, extra, launcher)
        if not warn_before >= 0:
            raise InvalidValueError(f"warn_before must be seconds >= 0, got {warn_before!r}")
        cluster, client = _launch.slurm_cluster(
            n,
            opts,
            controller_ip=controller_ip,
            detach=detach,
            profile=profile,
            timeout=timeout,
            feedback=StartFeedback(show=progress),
        )
        pool = cls._adopt(cluster, client, owner=not detach)
        pool.warn_before = warn_before
        return pool

    @classmethod
    def _adopt(cls, cluster: ipp.Cluster, client: ipp.Client, *, owner: bool) -> Pool:
        """Wrap freshly started engines; stop them again if they cannot be set up."""
        try:
            pool = cls(cluster, client, owner=owner)
        except BaseException:
            client.close()
            _launch.stop_quietly(cluster)
            raise
        set_current(pool)
        return pool

    @classmethod
    def attach(
        cls,
        cluster_file: str | None = None,
        cluster_id: str | None = None,
        profile: str | None = None,
        *,
        timeout: float = _timeouts.ATTACH,
    ) -> Pool:
        """Connect to a running pool: by cluster file, by id, or the newest one in the profile.

        Parameters
        ----------
        cluster_file: the pool's cluster file (printed when it started; ``%wb status``).
        cluster_id: instead of the file, the cluster id within ``profile``.
        profile: IPython profile to look in (default profile).
        timeout: seconds to wait for the engines to answer.
        """
        if cluster_file is None and cluster_id is None:
            cluster_file = _launch.newest_cluster_file(profile)
        if cluster_file is not None and not os.path.exists(cluster_file):
            raise PoolError(f"cluster file {cluster_file} does not exist; is the pool running?")
        if cluster_file is None:
            cluster_file = _launch.cluster_file_of(cluster_id or "", profile)
        try:
            cluster = _launch.load_cluster(cluster_file)
        except FileNotFoundError as e:
            raise PoolError(f"no pool found ({e}); start one with `%wb start`") from None
        client = cluster.connect_client_sync()
        try:
            client.wait_for_engines(timeout=timeout, interactive=False)
        except TimeoutError:
            client.close()
            raise PoolError(
                f"pool {cluster.cluster_id} has no engines after {timeout:g} s; "
                "it may have stopped: start a new one with `%wb start`"
            ) from None
        pool = cls(cluster, client, owner=False, reuse_map=True)
        set_current(pool)
        return pool

    def _connect(self, *, reuse: bool = False, ids: list[int] | None = None) -> None:
        """Map engines (``ids``, default all registered) to MPI ranks and define
        comm/rank/size on every engine.

        With ``reuse``, the map saved by the process that started the pool is taken when it
        still matches the registered engines, so attaching does not queue behind busy engines.
        """
        if reuse and self._load_engine_map():
            return
        view = self.client[ids] if ids else self.client[:]
        infos = view.apply_async(_engine.bootstrap).get(timeout=_timeouts.ENGINE_START)
        self.engines = sorted(
            (
                EngineInfo(i["rank"], eid, i["host"], i["pid"])
                for i, eid in zip(infos, view.targets, strict=False)
            ),
            key=lambda e: e.rank,
        )
        sizes = {i["size"] for i in infos}
        if sizes != {len(infos)}:
            raise PoolError(
                f"engines disagree on the MPI world (sizes {sorted(sizes)} for {len(infos)} "
                "engines): they were not started as one MPI job; restart the pool"
            )
        self._save_engine_map()

    @property
    def _map_file(self) -> str:
        folder = os.path.dirname(self.cluster_file) or "."
        return os.path.join(folder, f"workbench-{self.cluster.cluster_id}.json")

    def _save_engine_map(self) -> None:
        if not self.cluster.cluster_file:
            return
        fd = os.open(self._map_file, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w") as f:
            json.dump([dataclasses.asdict(e) for e in self.engines], f)

    def _load_engine_map(self) -> bool:
        try:
            with open(self._map_file) as f:
                engines = [EngineInfo(**e) for e in json.load(f)]
        except (OSError, ValueError, TypeError):
            return False
        if sorted(e.engine_id for e in engines) != sorted(self.client.ids):
            return False
        self.engines = sorted(engines, key=lambda e: e.rank)
        return True

    # -- facts ---------------------------------------------------------------------------
    @property
    def size(self) -> int:
        """Number of ranks."""
        return len(self.engines)

    @property
    def cluster_file(self) -> str:
        """Path of the file that :meth:`attach` takes."""
        return self.cluster.cluster_file

    def view(self, ranks: Sequence[int] | None = None) -> Any:
        """An ipyparallel DirectView on ``ranks`` (default all), in rank order."""
        self.ensure_alive()
        return self.client[[self._engine(r).engine_id for r in self._ranks(ranks)]]

    def _ranks(self, ranks: Sequence[int] | None) -> list[int]:
        if ranks is None:
            return [e.rank for e in self.engines]
        bad = [r for r in ranks if not 0 <= r < self.size]
        if bad or not ranks:
            raise InvalidValueError(
                f"ranks {list(ranks)} are not in this pool of {self.size} (0..{self.size - 1})"
            )
        return sorted(set(ranks))

    def _engine(self, rank: int) -> EngineInfo:
        return self.engines[rank]

    def ensure_alive(self) -> None:
        """Raise :class:`PoolError` if this pool was stopped (or closed)."""
        if self.lost is not None:
            raise PoolError(self._gone_message())
        if self.stopped:
            raise PoolError(
                "this pool was stopped; start a new one with `%wb start` / Pool.local()"
            )

    # -- work ------------------------------------------------------------------------------
    def run(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> list[Any]:
        """Call ``fn(*args, **kwargs)`` on every rank; results ordered by rank."""
        return self.apply(fn, args, kwargs)

    def apply(
        self,
        fn: Callable[..., Any],
        args: Sequence[Any] = (),
        kwargs: dict[str, Any] | None = None,
        *,
        ranks: Sequence[int] | None = None,
        timeout: float | None = None,
        stream: bool = True,
        progress: bool = True,
    ) -> list[Any]:
        """:meth:`run` with options; returns the results of ``ranks`` in rank order.

        Parameters
        ----------
        fn, args, kwargs: the call ``fn(*args, **kwargs)`` made on each rank.
        ranks: the ranks to run on (default all).
        timeout: seconds before the ranks are interrupted and :class:`PoolTimeoutError` raised
            (default: no limit; Ctrl-C always interrupts).
        stream: print each rank's output live, labelled ``[rank r]``.
        progress: show the live progress view of ``wb.progress`` reports.
        """
        ranks = self._ranks(ranks)
        kwargs = kwargs or {}
        names = _globals.needed(fn, args, kwargs) or None
        ar = self.view(ranks).apply_async(_engine.call_and_flush, names, fn, *args, **kwargs)
        return wait_for(ar, self, ranks, timeout=timeout, stream=stream, progress=progress)

    def execute(
        self,
        code: str,
        *,
        ranks: Sequence[int] | None = None,
        timeout: float | None = None,
        stream: bool = True,
        progress: bool = True,
    ) -> None:
        """Run ``code`` in the namespace of each rank (what ``%%distributed`` does).

        ``ranks``, ``timeout``, ``stream`` and ``progress`` as in :meth:`apply`.
        """
        ranks = self._ranks(ranks)
        ar = self.view(ranks).execute(code, silent=False, block=False)
        wait_for(ar, self, ranks, timeout=timeout, stream=stream, progress=progress)

    def scatter(self, x: Any, *, key: str | None = None) -> Any:
        """Split ``x`` by rows over the ranks, once; returns a :class:`DistributedArray`.

        Engine code reads its block with ``wb.data.local(handle.key)``.
        """
        from workbench.data import scatter_rows

        self.ensure_alive()
        return scatter_rows(self, x, key=key)

    def joblib(self, **options: Any) -> Any:
        """``with pool.joblib():`` runs joblib's ``n_jobs`` (scikit-learn's) on these engines
        inside the block; ``options`` (``n_jobs``, ``min_bytes``, ``progress``) as for
        :func:`workbench.joblib_backend.use`."""
        from workbench.joblib_backend import use

        return use(self, **options)

    def broadcast(self, obj: Any, *, key: str | None = None) -> Any:
        """Put ``obj`` on every rank, once; returns a :class:`Broadcast` handle."""
        from workbench.data import broadcast

        self.ensure_alive()
        return broadcast(self, obj, key=key)

    @property
    def handles(self) -> list[Any]:
        """Data placed on the engines through this pool and not yet freed."""
        return list(self._handles.values())

    def register(self, key: str, handle: Any) -> None:
        """Record ``handle`` (data placed on the engines under ``key``) so that ``%wb status``
        lists it and :meth:`restart` marks it freed."""
        self._handles[key] = handle

    def forget(self, key: str) -> None:
        """Stop listing the data under ``key`` (after it was freed); unknown keys are ignored."""
        self._handles.pop(key, None)

    def placed(self, key: str) -> Any | None:
        """The handle registered under ``key``, or None."""
        return self._handles.get(key)

    def interrupt(self, ranks: Sequence[int] | None = None) -> None:
        """Send SIGINT to the engines of ``ranks`` (through ipyparallel's control channel).

        Returns once each engine's nanny says the signal was sent (at most ``CONTROLLER``
        seconds): a signal still travelling could otherwise hit the next task instead.
        """
        ids = [self._engine(r).engine_id for r in self._ranks(ranks)]
        live = [i for i in ids if i in self.client.ids]
        if live:
            sent = self.client.send_signal(signal.SIGINT, targets=live, block=False)
            with contextlib.suppress(Exception):  # a nanny that does not answer: not awaited
                sent.result(timeout=_timeouts.CONTROLLER)

    def dead_ranks(self, ranks: Sequence[int] | None = None) -> dict[int, str]:
        """Ranks whose engine is gone, with why we think so.

        On a Slurm pool, once any rank is found dead, its job is asked again and the
        remaining engines pinged (bounded by ``PING``), so that a lost node is told apart
        from the ranks that exited after it (see :mod:`workbench.pool._health`).
        """
        here = socket.gethostname()
        registered = set(self.client.ids)
        job_ended = self._job_ended()
        dead: dict[int, str] = {}
        for e in self.engines:
            if job_ended:
                dead[e.rank] = job_ended
            elif e.host == here and not _launch.alive(e.pid):
                dead[e.rank] = f"process {e.pid} on {e.host} exited"
            elif e.engine_id not in registered:
                dead[e.rank] = (
                    f"engine {e.engine_id} on {e.host} unregistered (it exited, or missed "
                    "heartbeats)"
                )
        if dead and self.job_id is not None:
            if self._ended is None:
                self._job_checked = (-1e9, None)  # ask Slurm now
                job_ended = self._job_ended()
                found = _health.classify(self.client, self.engines, job_ended, PING)
                if job_ended:
                    self._ended = found  # final: the job is over
                dead = found or dead
            else:
                dead = self._ended
        wanted = self._ranks(ranks)
        return {r: dead[r] for r in wanted if r in dead}

    def unreachable(self, ranks: Sequence[int] | None = None) -> dict[int, str]:
        """Ranks on other nodes whose engine is registered but does not answer a ping within
        ``PING`` seconds (their node is down or cut off), with why; bounded. They may come
        back (a network outage) or, once the controller misses their heartbeats for about
        12 s, show as dead."""
        wanted = set(self._ranks(ranks)) if ranks is None or ranks else set()
        engines = [e for e in self.engines if e.rank in wanted]
        return _health.unreachable(self.client, engines, socket.gethostname(), PING)

    @property
    def job_id(self) -> str | None:
        """The Slurm job of the engines, or None for a local pool."""
        return _launch.slurm_job_id(self.cluster)

    def _job_ended(self) -> str | None:
        """For a Slurm pool, why its job is over (checked at most every 2 s, which also
        updates :attr:`time_left`), else None."""
        job = self.job_id
        if job is None:
            return None
        now = time.monotonic()
        if now - self._job_checked[0] >= 2.0:
            info = job_info(job)
            state = str(info["job_state"])
            if state == "RUNNING":
                self.time_left.update(info["time_left"])
            why = None
            if state not in ("RUNNING", "UNKNOWN"):  # (COMPLETING: its processes are going)
                left = self.time_left.seconds()  # (Slurm may forget a job within seconds)
                at_limit = state == "TIMEOUT" or (left is not None and left < 30)
                why = f"slurm job {job} " + (
                    "reached its time limit" if at_limit else f"is {state.lower()}"
                )
            self._job_checked = (now, why)
        return self._job_checked[1]

    @property
    def warn_before(self) -> float:
        """Seconds before a Slurm pool's time limit when it warns (once) and asks the
        engines to checkpoint; settable."""
        return self.time_left.warn_before

    @warn_before.setter
    def warn_before(self, seconds: float) -> None:
        self.time_left.warn_before = float(seconds)

    def time_warning(self) -> str | None:
        """Once, when this Slurm pool's job has :attr:`warn_before` seconds or less left:
        ask the engines to checkpoint (:meth:`request_checkpoint`) and return the line to
        show; else None. ``%%distributed`` cells and ``%wb status`` call it."""
        if self.job_id is None or self.time_left.warned or self._job_ended():
            return None
        if not self.time_left.due():
            return None
        with contextlib.suppress(Exception):  # engines that cannot be told still get the line
            self.request_checkpoint()
        left = format_duration(self.time_left.seconds() or 0.0)
        return (
            f"workbench: slurm job {self.job_id} ends in {left} (time limit): save your work; "
            "wb.train.fit checkpoints now"
        )

    def request_checkpoint(self, ranks: Sequence[int] | None = None) -> None:
        """Ask the engines of ``ranks`` (default all) to checkpoint: sets the flag that
        :func:`workbench.pool.checkpoint_requested` reads there (a signal through
        ipyparallel's control channel; busy engines get it too)."""
        ids = [self._engine(r).engine_id for r in self._ranks(ranks)]
        live = [i for i in ids if i in self.client.ids]
        if live:
            self.client.send_signal(int(_engine.CHECKPOINT_SIGNAL), targets=live, block=False)

    # -- lifecycle ---------------------------------------------------------------------------
    def _gone_message(self) -> str:
        return (
            f"pool {self.cluster.cluster_id} is gone: {self.lost}. `%wb stop` (pool.stop()) "
            "cleans up what is left; `%wb start` starts a new pool"
        )

    def _lose(self, why: str) -> PoolError:
        """Mark the pool gone (stopped elsewhere, controller dead); the error to raise."""
        self.lost = why
        self.stopped = True
        with contextlib.suppress(Exception):
            self.client.close()
        return PoolError(self._gone_message())

    def status(self) -> PoolStatus:
        """A table of rank, engine id, host, pid, state (idle/busy/dead) and memory; ranks
        on several hosts are grouped by host (:attr:`PoolStatus.nodes`).

        Bounded: when the controller does not answer within :attr:`query_timeout` seconds
        (the pool was stopped from elsewhere, or its controller died) the pool is marked
        gone and :class:`PoolError` says so.
        """
        self.ensure_alive()
        pid = _ipp.controller_pid(self.cluster) if self.owner else None
        if pid is not None and not _launch.alive(pid):  # we started it: it runs here
            raise self._lose(
                f"its controller (pid {pid}) has exited (stopped from elsewhere, e.g. "
                "`workbench pool stop` or ipyparallel's STOP button, or it died)"
            )
        dead = self.dead_ranks()
        warning = self.time_warning()
        cut_off = {} if self.job_id is None else self.unreachable([
            e.rank for e in self.engines if e.rank not in dead
        ])  # fmt: skip
        try:
            busy = busy_engines(self.client)
        except ControllerGoneError as e:
            raise self._lose(
                f"{e} (stopped from elsewhere, e.g. `workbench pool stop` or ipyparallel's "
                "STOP button, or the controller died)"
            ) from None
        rows = []
        for e in self.engines:
            state = "dead" if e.rank in dead else ("busy" if e.engine_id in busy else "idle")
            state = "unreachable" if e.rank in cut_off else state
            rows.append(
                {
                    "rank": e.rank,
                    "engine_id": e.engine_id,
                    "host": e.host,
                    "pid": e.pid,
                    "state": state,
                    "memory": _launch.rss(e) if state in ("busy", "idle") else None,
                }
            )
        backend = f"slurm job {self.job_id}" if self.job_id else "local"
        data = [h.describe() for h in self.handles]
        hosts = {e.rank: e.host for e in self.engines}
        notes = [warning] if warning else []
        left = None if dead else self.time_left.describe()
        notes += [f"time left: {left}"] if left else []
        for what, found in (("unreachable", cut_off), ("dead", dead)):
            notes += [f"{what}: {c}" for *_, c in _health.by_node(found, hosts)]
        return PoolStatus(
            rows,
            self.cluster_file,
            data,
            backend,
            log_file=self.log_file,
            engine_output=_launch.output_files(self.cluster),
            notes=notes,
        )

    def restart(self, *, timeout: float | None = None) -> None:
        """Stop the engines and start the same number again on the same controller (for a
        Slurm pool: a new job). ``timeout``: seconds for the new engines to register
        (default ``ENGINE_START``, ``SLURM_START`` for Slurm)."""
        self.ensure_alive()
        n = self.size
        if timeout is None:
            timeout = _timeouts.SLURM_START if self.job_id else _timeouts.ENGINE_START
        old = frozenset(self.client.ids) | {e.engine_id for e in self.engines}
        try:
            self.cluster.stop_engines_sync()
        except Exception as e:  # e.g. scancel of a job Slurm has already forgotten
            log.warning("restart of pool %s: stopping its engines: %s", self.cluster.cluster_id, e)
        _launch.wait_gone(self.engines, timeout=_timeouts.ENGINES_EXIT)
        # engines of a lost node stay registered until the controller misses their
        # heartbeats; the controller reuses the ids of engines gone, so wait for them
        # (bounded), and leave out any still there when the new engines come
        silent = _timeouts.HEARTBEAT * (_timeouts.HEARTBEAT_MISSES + 2)
        deadline = time.monotonic() + (silent if self.job_id else _timeouts.QUERY)
        while set(self.client.ids) & old and time.monotonic() < deadline:
            time.sleep(0.1)
        old = frozenset(self.client.ids) & old
        for handle in self.handles:
            handle.freed = True  # the engines that held it are gone
        self._handles.clear()
        self._job_checked, self._ended = (-1e9, None), None
        self.time_left = TimeLeft(self.warn_before)
        self.cluster.start_engines_sync(n)
        _launch.wait_started(
            self.cluster, self.client, n, timeout, StartFeedback(show=False), ignore=old
        )
        self._connect(ids=sorted(set(self.client.ids) - old)[:n])

    def stop(self) -> None:
        """Stop the engines and the controller, and remove the cluster file; on a pool found
        gone, clean up what is left."""
        if self.stopped and self.lost is None:
            return
        self.stopped = True
        self.lost = None
        engines = list(self.engines)
        try:
            self.client.close()
        finally:
            _launch.stop_quietly(self.cluster)
            _launch.wait_gone(engines, timeout=_timeouts.ENGINES_EXIT)
            with contextlib.suppress(OSError):
                os.remove(self._map_file)
            # ipyparallel may write the cluster file back while its controller exits: once it
            # is gone (bounded wait), the file goes too, so nothing finds a stopped pool
            pid = _ipp.controller_pid(self.cluster)
            deadline = time.monotonic() + _timeouts.ENGINES_EXIT
            while pid is not None and _launch.alive(pid) and time.monotonic() < deadline:
                time.sleep(0.05)
            if pid is None or not _launch.alive(pid):
                with contextlib.suppress(OSError):
                    os.remove(self.cluster_file)
            if current() is None and _current is self:
                set_current(None)

    def close(self) -> None:
        """Drop the connection but leave the pool running (for :meth:`attach` later)."""
        self.client.close()
        self.stopped = True

    def __enter__(self) -> Pool:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    def __repr__(self) -> str:
        state = "gone" if self.lost else "stopped" if self.stopped else f"{self.size} ranks"
        return f"<workbench.Pool {self.cluster.cluster_id} {state}>"
