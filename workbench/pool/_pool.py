"""EnginePool: MPI engines driven through ipyparallel, addressed by MPI rank.

``Pool.local`` starts ``n`` engines as one ``mpiexec`` job with the controller on
loopback; ``Pool.attach`` re-connects to a running pool through its cluster file.
Work goes to the engines ordered by MPI rank, never by engine id.
"""

from __future__ import annotations

import logging
import os
import signal
import socket
import time
from collections.abc import Callable, Sequence
from typing import Any

import ipyparallel as ipp

from workbench import _provided, _timeouts
from workbench._timeouts import PING
from workbench.errors import ControllerGoneError, InvalidValueError, PoolError
from workbench.pool import _engine, _globals, _health, _ipp, _launch, _report
from workbench.pool._command import LaunchSpec
from workbench.pool._current import release, set_current
from workbench.pool._enginemap import map_engines
from workbench.pool._jobwatch import JobWatch
from workbench.pool._lifecycle import connect, replace_engines, tear_down
from workbench.pool._placed import Placed
from workbench.pool._slurm_launch import slurm_job_id
from workbench.pool._starts import start_here, start_local, start_slurm
from workbench.pool._status import EngineInfo, PoolStatus, checked_ranks, gone_message
from workbench.pool._timelimit import DEFAULT_WARN_BEFORE
from workbench.pool._wait import wait_for

__all__ = ["Pool"]

log = logging.getLogger(__name__)


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
        #: The data placed on the engines through this pool and not yet freed (``%wb
        #: status`` lists it; a restart marks it freed).
        self.placed = Placed()
        #: The pool's Slurm job (none for a local pool): whether it ended, its time left,
        #: and the warning ``job.warn_before`` seconds before its time limit.
        #: How the engines start (local, a job, a step of an allocation; setup, container).
        self.launch = _launch.read_launch(cluster) or LaunchSpec()
        self.job = JobWatch(lambda: slurm_job_id(cluster) or self.launch.allocation)
        if cluster.cluster_file and os.path.exists(cluster.cluster_file):
            os.chmod(cluster.cluster_file, 0o600)  # it names the connection files: keep private
        #: The engines by MPI rank.
        self.engines: list[EngineInfo] = map_engines(cluster, client, reuse=reuse_map)

    # -- construction -------------------------------------------------------------------
    @classmethod
    def local(
        cls,
        n: int | None = None,
        *,
        setup: str | Sequence[str] | None = None,
        container: str | None = None,
        python: str | None = None,
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
        setup, container, python: how each engine starts, as for :meth:`slurm`.
        detach: keep the pool running after this process exits (re-attach with
            :meth:`attach`, stop with ``workbench pool stop``).
        profile: IPython profile whose folder holds the cluster files (default profile).
        timeout: seconds to wait for every engine to register and answer.
        progress: show what the start is doing (False: print nothing).
        """
        n = (os.cpu_count() or 1) if n is None else n
        started = start_local(n, setup=setup, container=container, python=python,
                              detach=detach, profile=profile, timeout=timeout,
                              progress=progress)  # fmt: skip
        return cls._adopt(*started, owner=not detach)

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
        launcher: str | None = None,
        setup: str | Sequence[str] | None = None,
        container: str | None = None,
        python: str | None = None,
        controller_ip: str | None = None,
        controller_interface: str | None = None,
        detach: bool = False,
        profile: str | None = None,
        timeout: float = _timeouts.SLURM_START,
        progress: bool = True,
        warn_before: float = DEFAULT_WARN_BEFORE,
    ) -> Pool:
        """Start ``n`` MPI engines as a new Slurm job (``sbatch``); the controller stays here.

        The queue state is shown while waiting; Ctrl-C or ``timeout`` cancels the job, and a
        request the partition can never satisfy fails at once with Slurm's reason. Options
        left None come from the site profile (``workbench site show``), else the default.
        Inside an allocation, :meth:`here` starts engines without a new job.

        Parameters
        ----------
        n: number of engines (MPI ranks, ``--ntasks``).
        partition, time, account, nodes: the sbatch options of the same name
            (``time`` as Slurm writes it: ``30``, ``1:00:00``, ``1-12``).
        extra: more sbatch options on one line, e.g. ``"--mem=4G --qos=debug"``.
        launcher: ``"mpiexec"`` (default; inside the job, right for MPICH and Slurm-aware
            MPIs) or ``"srun"`` (``srun --mpi=pmi2``, for a site MPI built on Slurm's PMI).
        setup: shell lines run on each node before its engines (``"module load x"``, a
            list of lines); a failing line fails the start naming the node.
        container: a command each engine runs under (``"apptainer exec img.sif"``,
            ``"podman-hpc run --rm IMG"``, ``"shifter --image=IMG"``).
        python: the engines' interpreter when it is not this one (e.g. inside the image).
        controller_ip: an address of this machine the nodes reach (default: chosen, the
            route to the partition's nodes; see ``docs/sites.md``).
        controller_interface: instead, the interface to listen on (``"hsn0"``).
        detach: keep the job and controller running after this process exits.
        profile: IPython profile whose folder holds the cluster files.
        timeout: seconds for the job to queue, start and register every engine.
        progress: show the job queueing and the engines registering (False: print nothing).
        warn_before: seconds before the job's time limit when a running cell (or ``%wb
            status``) warns once and the engines are asked to checkpoint (see
            :func:`workbench.pool.checkpoint_requested`); default 5 minutes.
        """
        if not warn_before >= 0:
            raise InvalidValueError(f"warn_before must be seconds >= 0, got {warn_before!r}")
        started = start_slurm(
            n, partition=partition, time=time, account=account, nodes=nodes, extra=extra,
            launcher=launcher, setup=setup, container=container, python=python,
            controller_ip=controller_ip, controller_interface=controller_interface,
            detach=detach, profile=profile, timeout=timeout, progress=progress,
        )  # fmt: skip
        pool = cls._adopt(*started, owner=not detach)
        pool.job.warn_before = warn_before
        return pool

    @classmethod
    def here(
        cls,
        n: int | None = None,
        *,
        launcher: str | None = None,
        setup: str | Sequence[str] | None = None,
        container: str | None = None,
        python: str | None = None,
        controller_ip: str | None = None,
        controller_interface: str | None = None,
        detach: bool = False,
        profile: str | None = None,
        timeout: float = _timeouts.SLURM_START,
        progress: bool = True,
        warn_before: float = DEFAULT_WARN_BEFORE,
    ) -> Pool:
        """Start ``n`` engines inside the Slurm allocation this process runs in (``salloc``,
        an interactive node, a batch job): one job step, nothing submitted.

        ``n`` defaults to the allocation's tasks (``SLURM_NTASKS``, else its CPUs). The
        step asks for exactly ``n`` tasks (``srun --exact``), so several pools share an
        allocation on disjoint CPUs; one that does not fit fails at once, saying so.
        Stopping the pool ends the step, never the allocation; its time left is the
        allocation's. ``launcher``: ``"srun"`` (default, PMI-2) or ``"mpiexec"`` (MPICH's
        hydra through Slurm). Other parameters as for :meth:`slurm`.
        """
        if not warn_before >= 0:
            raise InvalidValueError(f"warn_before must be seconds >= 0, got {warn_before!r}")
        started = start_here(
            n, launcher=launcher, setup=setup, container=container, python=python,
            controller_ip=controller_ip, controller_interface=controller_interface,
            detach=detach, profile=profile, timeout=timeout, progress=progress,
        )  # fmt: skip
        pool = cls._adopt(*started, owner=not detach)
        pool.job.warn_before = warn_before
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
        cluster, client = connect(cluster_file, cluster_id, profile, timeout)
        pool = cls(cluster, client, owner=False, reuse_map=True)
        set_current(pool)
        return pool

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
        return self.client[[self.engines[r].engine_id for r in checked_ranks(ranks, self.size)]]

    def ensure_alive(self) -> None:
        """Raise :class:`PoolError` if this pool was stopped (or closed)."""
        if self.lost is not None:
            raise PoolError(gone_message(self.cluster.cluster_id, self.lost))
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
        ranks = checked_ranks(ranks, self.size)
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
        ranks = checked_ranks(ranks, self.size)
        ar = _ipp.execute(self.view(ranks), code)
        wait_for(ar, self, ranks, timeout=timeout, stream=stream, progress=progress)

    def scatter(self, x: Any, *, key: str | None = None) -> Any:
        """Split ``x`` by rows over the ranks, once; returns a
        :class:`~workbench.data.DistributedArray` (see :func:`workbench.data.scatter_rows`).

        Engine code reads its block with ``wb.data.local(handle.key)``.
        """
        self.ensure_alive()
        return _provided.provided("scatter")(self, x, key=key)

    def broadcast(self, obj: Any, *, key: str | None = None) -> Any:
        """Put ``obj`` on every rank, once; returns a :class:`~workbench.data.Broadcast`."""
        self.ensure_alive()
        return _provided.provided("broadcast")(self, obj, key=key)

    def joblib(self, **options: Any) -> Any:
        """``with pool.joblib():`` runs joblib's ``n_jobs`` (scikit-learn's) on these engines
        inside the block; ``options`` (``n_jobs``, ``min_bytes``, ``progress``) as for
        :func:`workbench.joblib_backend.use`."""
        return _provided.provided("joblib")(self, **options)

    def interrupt(
        self,
        ranks: Sequence[int] | None = None,
        *,
        pending: Sequence[Any] = (),
        settle: Sequence[Any] = (),
    ) -> None:
        """Send SIGINT to the engines of ``ranks`` (through ipyparallel's control channel);
        first drop the tasks of ``pending`` (AsyncResults) that have not begun.

        Returns once each engine's nanny says the signal was sent (at most ``CONTROLLER``
        seconds): a signal still travelling could otherwise hit the next task instead. With
        ``settle`` (AsyncResults), waits until they are done, at most ``INTERRUPT_GRACE``
        seconds, signalling again every second: a signal that reached an engine before its
        task began is lost (the task would run to its end).
        """
        waiting = [m for ar in pending if not ar.ready() for m in ar.msg_ids]
        if waiting:
            try:
                self.client.abort(waiting, block=False)
            except Exception:  # (one finished meanwhile): the signal below still goes out
                log.debug("aborting %d tasks before an interrupt", len(waiting), exc_info=True)
        self._signal(signal.SIGINT, ranks, wait=True)
        deadline = time.monotonic() + _timeouts.INTERRUPT_GRACE
        again = time.monotonic() + 1.0
        while not all(ar.ready() for ar in settle) and time.monotonic() < deadline:
            time.sleep(0.05)
            if time.monotonic() >= again:
                self._signal(signal.SIGINT, ranks, wait=True)
                again = time.monotonic() + 1.0

    def _signal(self, signum: int, ranks: Sequence[int] | None = None, *, wait: bool) -> None:
        ids = [self.engines[r].engine_id for r in checked_ranks(ranks, self.size)]
        live = [i for i in ids if i in self.client.ids]
        if not live:
            return
        sent = self.client.send_signal(int(signum), targets=live, block=False)
        if not wait:
            return
        try:
            sent.result(timeout=_timeouts.CONTROLLER)
        except Exception as e:  # a nanny that does not answer: the signal may come late
            log.debug("signal %s to engines %s not confirmed: %s", signum, live, e, exc_info=True)

    def dead_ranks(self, ranks: Sequence[int] | None = None) -> dict[int, str]:
        """Ranks (of ``ranks``, default all) whose engine is gone, with why we think so; on
        a Slurm pool a lost node is told apart from the ranks that exited after it."""
        dead = _report.dead_ranks(self)
        return {r: dead[r] for r in checked_ranks(ranks, self.size) if r in dead}

    def unreachable(self, ranks: Sequence[int] | None = None) -> dict[int, str]:
        """Ranks on other nodes whose engine is registered but does not answer a ping within
        ``PING`` seconds (their node is down or cut off), with why; bounded. They may come
        back (a network outage) or, once the controller misses their heartbeats for about
        12 s, show as dead."""
        wanted = set(checked_ranks(ranks, self.size)) if ranks is None or ranks else set()
        engines = [e for e in self.engines if e.rank in wanted]
        return _health.unreachable(self.client, engines, socket.gethostname(), PING)

    @property
    def job_id(self) -> str | None:
        """The Slurm job of the engines, or None for a local pool."""
        return self.job.id

    def time_warning(self) -> str | None:
        """Once, when this Slurm pool's job has ``job.warn_before`` seconds or less left: ask
        the engines to checkpoint (the flag :func:`workbench.pool.checkpoint_requested` reads
        there) and return the line to show; else None. ``%%distributed`` cells and ``%wb
        status`` call it."""
        line = self.job.warning()
        if line is None:
            return None
        try:
            self._signal(_engine.CHECKPOINT_SIGNAL, wait=True)
        except Exception as e:  # the user must not read that a checkpoint is coming
            log.debug("checkpoint request to pool %s failed", self.cluster.cluster_id,
                      exc_info=True)  # fmt: skip
            return f"{line}; the engines could not be asked to checkpoint ({e}): save by hand"
        return f"{line}; wb.train.fit checkpoints now"

    # -- lifecycle ---------------------------------------------------------------------------
    def _lose(self, why: str) -> PoolError:
        """Mark the pool gone (stopped elsewhere, controller dead); the error to raise."""
        self.lost = why
        self.stopped = True
        try:
            self.client.close()
        except Exception:  # a client of a dead controller may fail to close: it is gone anyway
            log.debug("closing the client of lost pool %s", self.cluster.cluster_id, exc_info=True)
        return PoolError(gone_message(self.cluster.cluster_id, why))

    def status(self) -> PoolStatus:
        """A table of rank, engine id, host, pid, state (idle/busy/dead/unreachable) and
        memory; ranks on several hosts are grouped by host (:attr:`PoolStatus.nodes`); notes
        say the time left of a Slurm job and why ranks are dead or unreachable.

        Bounded: when the controller does not answer within :attr:`query_timeout` seconds
        (the pool was stopped from elsewhere, or its controller died) the pool is marked
        gone and :class:`PoolError` says so.
        """
        self.ensure_alive()
        try:
            return _report.status(self)
        except ControllerGoneError as e:
            raise self._lose(
                f"{e} (stopped from elsewhere, e.g. `workbench pool stop` or ipyparallel's "
                "STOP button, or the controller died)"
            ) from None

    def restart(self, *, timeout: float | None = None) -> None:
        """Stop the engines and start the same number again on the same controller (for a
        Slurm pool: a new job). ``timeout``: seconds for the new engines to register
        (default ``ENGINE_START``, ``SLURM_START`` for Slurm)."""
        self.ensure_alive()
        if timeout is None:
            timeout = _timeouts.SLURM_START if self.job_id else _timeouts.ENGINE_START
        ids = replace_engines(
            self.cluster, self.client, self.engines, slurm=self.job_id is not None, timeout=timeout
        )
        self.placed.free_all()  # the engines that held it are gone
        self.job.reset()
        self.engines = map_engines(self.cluster, self.client, ids=ids)

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
            tear_down(self.cluster, engines)
            release(self)

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
