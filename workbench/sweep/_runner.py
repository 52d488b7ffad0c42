"""The notebook side of a sweep: keep every group of engines busy, apply the scheduler's
decisions, record everything in the store, survive failing trials and dying engines.

Trials go to whichever group of ``trial_ranks`` engines is idle, as soon as it is idle
(no waves). Trials so short that the round trip would dominate (under about 10 ms, with
no scheduler decisions to wait for) go several to a task. The runner is the only writer of
the store. When an engine dies the MPI job is gone: the trial on it counts a failure,
every other running trial goes back to pending without one, the pool is restarted and the
sweep goes on.
"""

from __future__ import annotations

import bisect
import concurrent.futures as cf
import contextlib
import logging
import os
import queue
import sys
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from workbench import _timeouts, engine_store
from workbench._util import new_key
from workbench.errors import PoolError, RankError, SetupError
from workbench.progress import KEY
from workbench.sweep._resume import Checkpoints
from workbench.sweep._state import CONTINUE, EXPLOIT, SKIP, STOP, TrialState
from workbench.sweep._store import SweepStore
from workbench.sweep._trial import run_batch, run_trial, split_world, write_decision
from workbench.sweep.schedulers import FIFO

if TYPE_CHECKING:
    from workbench.pool import Pool
    from workbench.sweep._plan import Plan

__all__ = ["Runner"]

log = logging.getLogger("workbench.sweep")

_DEATH_CHECK = 0.2  # seconds between looks for dead engines
_VIEW_EVERY = 0.25  # seconds between two view refreshes
_OUTPUT_GRACE = 1.0  # seconds a finished task's last output may trail its result
_BATCH_SECONDS = 0.02  # short trials are grouped into tasks of about this long
_MAX_BATCH = 64


@dataclass(eq=False)  # compared by identity
class _Running:
    trial: int
    attempt: int
    group: int
    ar: Any
    control: str
    metadata: Any
    seq: int = 0
    next_milestone: int = 0
    stop_sent: bool = False
    last: float | None = None
    best: float | None = None
    step: float | None = None
    stopped_by: str = "scheduler"
    reports: list[Any] = field(default_factory=list)
    index: int | None = None  # position in its task's batch, None when alone in its task
    streamed: int = 0  # reports taken from the live stream so far
    lasts: dict[str, float] = field(default_factory=dict)  # latest value of each objective
    curve0: list[Any] = field(default_factory=list)  # (step, value) up to its checkpoint
    donor: int | None = None  # PBT: the trial whose checkpoint it copies when it stops


class Runner:
    """Runs one sweep described by ``plan`` on ``pool``.

    Parameters
    ----------
    plan
        The checked sweep (a :class:`~workbench.sweep._plan.Plan`).
    pool
        The engines the trials run on.
    store
        The sweep store; the runner is its only writer.
    view
        The live view (``update(rows, curves, final=...)``; it gets ``on_stop`` and
        ``on_stop_trial``), or None.
    """

    def __init__(self, plan: Plan, pool: Pool, store: SweepStore, view: Any) -> None:
        self.plan, self.pool, self.store, self.view = plan, pool, store, view
        self.key = new_key("sweep")
        k = plan.trial_ranks
        self.groups = [list(range(g * k, (g + 1) * k)) for g in range(pool.size // k)]
        self.running: list[_Running] = []  # in submission order; per group, first = on the engine
        self.rows = {t["id"]: t for t in store.trials(plan.name)}
        self.curves: dict[int, list[tuple[float, float]]] = {}
        self.pending = sorted(i for i, t in self.rows.items() if not t["state"].is_finished())
        self.next_id = max(self.rows, default=-1) + 1
        self.exhausted = False
        self.stopping = False
        self.dropped_queued = False
        self.restarts = 0
        self.interrupts = 0
        self.timed_out = False
        self.t0 = time.monotonic()
        self._stop_asks: queue.SimpleQueue[int] = queue.SimpleQueue()
        # batching needs no decision mid-trial and one engine per trial
        self.batchable = isinstance(plan.scheduler, FIFO) and k == 1 and not plan.checkpoint_dir
        ck = plan.checkpoint_dir
        self.checkpoints = Checkpoints(ck, store, plan.name) if ck else None
        self.trial_seconds: float | None = None  # running average of how long trials ran
        os.makedirs(plan.control_dir, exist_ok=True)
        if view is not None:
            view.on_stop = self.stop
            view.on_stop_trial = self.stop_trial

    # -- public controls (safe from any thread: the widget calls them from its own) ----------
    def stop(self) -> None:
        """Graceful stop: start no new trial; running ones finish (or are pruned)."""
        self.stopping = True

    def stop_trial(self, trial_id: int) -> None:
        """Ask the running trial ``trial_id`` to stop at its next report (recorded pruned)."""
        self._stop_asks.put(trial_id)  # the loop acts on it

    def _stop_asked_trials(self) -> None:
        while not self._stop_asks.empty():
            trial_id = self._stop_asks.get_nowait()
            for r in self.running:
                if r.trial == trial_id and not r.stop_sent:
                    r.stopped_by, r.stop_sent = "user", True
                    write_decision(r.control, r.step or 0.0, STOP)

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Run until ``n_trials`` trials are final, the strategy is exhausted, or stopped."""
        self._stop_orphans()
        self._prepare_engines()
        next_check = time.monotonic() + _DEATH_CHECK
        try:
            while True:
                try:
                    if not self.stopping:
                        self._fill()
                    elif not self.dropped_queued:
                        self._drop_queued()
                    if not self.running:
                        break
                    self._wait()
                    self._stop_asked_trials()
                    now = time.monotonic()
                    if now >= next_check:
                        next_check = now + _DEATH_CHECK
                        dead = self.pool.dead_ranks()
                        if dead:
                            self._engines_died(dead)
                    self._check_deadline(now)
                    self._refresh()
                except KeyboardInterrupt:
                    self._interrupted()
        finally:
            self._refresh(force=True, final=True)
            self._cleanup()

    def _wait(self) -> None:
        ars = [r.ar for r in self.running]
        cf.wait(ars, timeout=self.plan.poll, return_when=cf.FIRST_COMPLETED)
        for r in list(self.running):
            self._read_reports(r)
            if r.ar.done() and r in self.running:
                self._finish(r)

    def _check_deadline(self, now: float) -> None:
        if self.plan.timeout is None or self.timed_out or now - self.t0 < self.plan.timeout:
            return
        self.timed_out = True
        print(
            f"workbench: sweep {self.plan.name!r} reached its timeout of {self.plan.timeout:g} s;"
            " interrupting the running trials (they stay pending: resume to finish them)",
            file=sys.stderr,
        )
        self._interrupted(force=True)

    def _interrupted(self, *, force: bool = False) -> None:
        """First Ctrl-C: graceful stop. Second: interrupt the running trials (left pending)."""
        self.interrupts += 1
        self.stopping = True
        if self.interrupts == 1 and not force:
            print(
                "workbench: stopping the sweep after the running trials "
                "(Ctrl-C again to interrupt them; they stay pending and a resume reruns them)",
                file=sys.stderr,
            )
            return
        ranks = sorted({rk for r in self.running for rk in self.groups[r.group]})
        self._drop_queued()
        if ranks:
            self.pool.interrupt(ranks)
        cf.wait([r.ar for r in self.running], timeout=_timeouts.INTERRUPT_GRACE)
        for r in list(self.running):
            self._requeue(r, "interrupted", "interrupted from the notebook")
        self.running.clear()

    def _waiting(self) -> list[_Running]:
        """Trials whose task waits behind another on its engines (the first one submitted
        to a group is the one they run)."""
        started = {id(r.ar) for r in {r.group: r for r in reversed(self.running)}.values()}
        return [r for r in self.running if id(r.ar) not in started]

    def _drop_queued(self) -> None:
        """Stopping: take back the trials waiting behind another (they stay pending).

        Each is told to skip through its decision file: it returns at once when its task
        starts (every rank of it together), while one that already started runs on.
        Aborting the task instead could stop some ranks of a multi-rank trial and not others.
        """
        self.dropped_queued = True
        for r in self._waiting():
            write_decision(r.control, 0.0, SKIP)

    # -- engines -----------------------------------------------------------------------------
    def _prepare_engines(self) -> None:
        """Place the objective on every engine, and split the world when trials span ranks."""
        opts = {"timeout": _timeouts.ENGINE_START, "progress": False}
        try:
            self.pool.apply(
                engine_store.put, (f"{self.key}-objective", self.plan.objective), **opts
            )
        except RankError as e:
            raise SetupError(
                f"could not send the objective of sweep {self.plan.name!r} to the engines ({e}); "
                "define it in the notebook, or make its module importable on the engines"
            ) from None
        if self.plan.trial_ranks > 1:
            self.pool.apply(split_world, (f"{self.key}-comm", self.plan.trial_ranks), **opts)
        self.views = [self.pool.view(ranks) for ranks in self.groups]
        self.spec = {
            "objective": f"{self.key}-objective",
            "comm": f"{self.key}-comm" if self.plan.trial_ranks > 1 else None,
            "pass_comm": self.plan.pass_comm,
            "milestones": list(self.plan.scheduler.milestones),
            "decision_timeout": self.plan.decision_timeout,
        }

    def _engines_died(self, dead: dict[int, str]) -> None:
        """Fail the trials on dead engines, requeue the others, restart the pool (bounded)."""
        for r in [r for r in self.running if r.ar.done() and r.ar.exception() is None]:
            self._finish(r)  # completed before the death: keep its result
        blamed: set[int] = set()
        for r in self.running:
            lost = [rk for rk in self.groups[r.group] if rk in dead]
            if lost and r.group not in blamed and r.index is None:
                blamed.add(r.group)  # the first of a group's queue was on the engine
                why = "; ".join(f"rank {rk}: {dead[rk]}" for rk in lost)
                self._failed(r, f"EngineDiedError: the engine died while running the trial ({why})")
            else:
                if lost and r.index is not None:  # which trial of the batch? run them alone
                    blamed.add(r.group)
                    self.batchable = False
                self._requeue(r, "interrupted", "the pool restarted after an engine died")
        self.running.clear()
        self.restarts += 1
        if self.restarts > self.plan.max_restarts:
            raise PoolError(
                f"engines died {self.restarts} times during sweep {self.plan.name!r} (last: "
                f"{dead}); giving up. The store keeps every trial: fix the cause, `%wb restart`, "
                "and call wb.sweep again with the same name to resume"
            )
        log.warning(
            "sweep %r: engines died (%s); restarting the pool (%d/%d)",
            self.plan.name,
            "; ".join(f"rank {r}: {w}" for r, w in dead.items()),
            self.restarts,
            self.plan.max_restarts,
        )
        self.pool.restart()
        self._prepare_engines()

    def _stop_orphans(self) -> None:
        """Trials a previous session left running may still run on the engines: stop them."""
        for t in self.rows.values():
            if t["state"] == TrialState.RUNNING:
                write_decision(self._control(t["id"], t["attempt"]), 0.0, STOP)

    def _cleanup(self) -> None:
        if self.pool.stopped or self.pool.dead_ranks():
            return
        keys = [f"{self.key}-objective", f"{self.key}-comm"]
        with contextlib.suppress(Exception):
            self.pool.view().apply_async(_drop, keys).get(timeout=_timeouts.QUERY)

    # -- trials ------------------------------------------------------------------------------
    def _control(self, trial_id: int, attempt: int) -> str:
        return os.path.join(self.plan.control_dir, f"trial-{trial_id}-{attempt}.json")

    def _next_trial(self) -> int | None:
        if self.pending:
            return self.pending.pop(0)
        if self.exhausted or self.next_id >= self.plan.n_trials:
            return None
        config = self.plan.strategy.suggest(self.next_id)
        if config is None:
            self.exhausted = True
            return None
        trial_id, self.next_id = self.next_id, self.next_id + 1
        self.store.add_trial(self.plan.name, trial_id, config)
        self.rows[trial_id] = {"id": trial_id, "state": TrialState.PENDING, "config": config,
                               "attempt": 0, "failures": 0, "ranks": None, "step": None,
                               "value": None, "best": None, "error": None, "started": None,
                               "finished": None, "values": None, "lineage": None}  # fmt: skip
        return trial_id

    def _fill(self) -> None:
        for level in range(self.plan.depth):
            for group in range(len(self.groups)):
                if len({id(r.ar) for r in self.running if r.group == group}) > level:
                    continue
                ids: list[int] = []
                for _ in range(self._batch_size()):
                    trial_id = self._next_trial()
                    if trial_id is None:
                        break
                    ids.append(trial_id)
                if not ids:
                    return
                self._submit(group, ids)

    def _batch_size(self) -> int:
        """Trials per task: one, unless trials have been so short that the round trip
        dominates; then about ``_BATCH_SECONDS`` of them, fewer near the end so that every
        group still gets a share."""
        if not self.batchable or self.stopping or self.trial_seconds is None:
            return 1
        size = int(_BATCH_SECONDS / max(self.trial_seconds, 1e-5))
        left = len(self.pending) + max(0, self.plan.n_trials - self.next_id)
        share = -(-left // (len(self.groups) * self.plan.depth))
        return max(1, min(size, share, _MAX_BATCH))

    def _submit(self, group: int, trial_ids: list[int]) -> None:
        items = []
        for trial_id in trial_ids:
            row = self.rows[trial_id]
            attempt = row["attempt"] + 1
            if attempt > 1:
                self.plan.scheduler.forget(trial_id)
            control = self._control(trial_id, attempt)
            with contextlib.suppress(FileNotFoundError):
                os.remove(control)
            checkpoint, carried = None, None
            if self.checkpoints is not None:  # resumes after its checkpoint, if it has one
                checkpoint, carried = self.checkpoints.prepare(trial_id, row["attempt"], attempt)
            self._set(trial_id, TrialState.RUNNING, attempt=attempt, ranks=self.groups[group],
                      started=time.time(), step=None, value=None, best=None)  # fmt: skip
            self.curves[trial_id] = []
            items.append((trial_id, row["config"], control, attempt, checkpoint, carried))
        view = self.views[group]
        if len(items) == 1:
            trial_id, config, control, _, checkpoint, _ = items[0]
            spec = dict(self.spec, control=control, checkpoint=checkpoint)
            ar = view.apply_async(run_trial, trial_id, config, spec)
        else:
            ar = view.apply_async(run_batch, [item[:3] for item in items], self.spec)
        # the raw metadata dict of rank 0's task (ar.data re-parses dates on every access);
        # the AsyncResult keeps this same object after it leaves client.metadata
        metadata = self.pool.client.metadata[ar.msg_ids[0]]
        for i, (trial_id, _, control, attempt, _, carried) in enumerate(items):
            index = i if len(items) > 1 else None
            r = _Running(trial_id, attempt, group, ar, control, metadata, index=index)
            self.running.append(r)
            if carried:  # resumed from its checkpoint: its curve up to it, not recorded again
                self._take_reports(r, carried, replay=True)
                r.curve0 = list(self.curves[trial_id])

    def _read_reports(self, r: _Running) -> None:
        """Take the reports a trial streamed since the last look."""
        if r.index is not None:  # a batch's reports come with its result
            return
        payload = r.metadata.get("data", {}).get(KEY)
        if not payload or payload["seq"] <= r.seq:
            return
        new = [(s, m) for q, s, m in payload.get("history", []) if q > r.seq]
        r.seq = payload["seq"]
        now = time.time()
        r.streamed += len(new)
        self._take_reports(r, [(s, m, now) for s, m in new])

    def _take_reports(self, r: _Running, new: list[Any], *, replay: bool = False) -> None:
        """Record reports ``(step, metrics, time)`` and apply the scheduler's decisions
        (``replay``: the scheduler sees them, nothing is recorded or decided)."""
        if not replay:
            r.reports.extend(new)
        milestones = self.plan.scheduler.milestones
        for step, metrics, _ in new:
            crossing = False
            while r.next_milestone < len(milestones) and step >= milestones[r.next_milestone]:
                crossing, r.next_milestone = True, r.next_milestone + 1
            r.step = step
            if self.plan.metrics:
                r.lasts.update((m, metrics[m]) for m in self.plan.metrics if m in metrics)
            value = metrics.get(self.plan.metric) if self.plan.metric else None
            action = None
            if value is not None:
                r.last = value
                r.best = value if r.best is None else self.plan.better(value, r.best)
                self.curves[r.trial].append((step, value))
                action = self.plan.scheduler.on_report(r.trial, step, value)
            if replay:
                continue
            if action == EXPLOIT:
                action = self._exploit_decision(r)
            if action == STOP and not r.stop_sent:
                r.stop_sent = True
                write_decision(r.control, step, STOP)
            elif crossing and not r.stop_sent:
                write_decision(r.control, step, CONTINUE)
        row = self.rows[r.trial]
        row.update(step=r.step, value=r.last, best=r.best)

    def _finish(self, r: _Running) -> None:
        self.running.remove(r)
        r.ar.wait_for_output(timeout=_OUTPUT_GRACE)
        self._read_reports(r)
        try:
            results = r.ar.get(timeout=0)
        except Exception as e:
            self._remote_error(r, e)
            return
        stray = next((x for x in results if isinstance(x, BaseException)), None)
        if stray is not None:  # an error returned rather than raised (e.g. TaskAborted)
            self._remote_error(r, stray)
            return
        if r.index is not None:
            res = kept = results[0][r.index]
        else:
            res = next((x for x in results if x["state"] == TrialState.FAILED), results[0])
            kept = results[0]  # rank 0 records the reports
        # the result holds every report; the stream may not have delivered the last ones
        reports = [tuple(rep) for rep in kept["reports"]]
        self._take_reports(r, reports[r.streamed :])
        r.reports = reports  # the record: exactly what the trial reported, engine times
        if self.plan.metric:
            m = self.plan.metric
            self.curves[r.trial] = r.curve0 + [(s, x[m]) for s, x, _ in reports if m in x]
        if res["state"] == SKIP:
            self._requeue(r, "not started", "the sweep was stopped")
            return
        state = TrialState(res["state"])
        if state == TrialState.FAILED:
            self._failed(r, res["error"])
            return
        ran, avg = res["seconds"], self.trial_seconds  # done or pruned: failures can be quick
        self.trial_seconds = ran if avg is None else 0.8 * avg + 0.2 * ran
        value = self._final_value(r, res)
        if self.plan.metrics and state == TrialState.DONE:
            values = self._final_values(r, res, value)
            if values is not None:
                self._final(r, state, value, None, values=values)
            return
        if state == TrialState.DONE and value is None:
            what = "a metric value" if self.plan.metric is None else f"metric {self.plan.metric!r}"
            self._failed(
                r,
                f"ValueError: the objective returned {res.get('value')!r} and reported no "
                f"{what}: return a number (or a dict holding the metric) or call "
                f"report(step=..., {self.plan.metric or 'score'}=...)",
                retry=False,
            )
            return
        if state == TrialState.PRUNED and r.donor is not None:
            self._exploit(r)
            return
        detail = f"stopped by the {r.stopped_by}" if state == TrialState.PRUNED else None
        self._final(r, state, value, detail)

    # -- population-based training -------------------------------------------------------------
    def _exploit_decision(self, r: _Running) -> str:
        """PBT says trial ``r`` should copy a better one: stop it, if that one has a
        checkpoint to copy (else go on)."""
        donor = self.plan.scheduler.target(r.trial)  # type: ignore[attr-defined]
        if r.stop_sent or self.checkpoints is None or self.checkpoints.saved_step(donor) is None:
            return CONTINUE
        r.donor, r.stopped_by = donor, "exploit"
        return STOP

    def _exploit(self, r: _Running) -> None:
        """Trial ``r`` stopped to exploit ``r.donor``: copy its checkpoint, explore from its
        configuration, record the lineage; the trial runs again from the copied step."""
        assert self.checkpoints is not None and r.donor is not None
        self._record_reports(r)
        row = self.rows[r.trial]
        explore = self.plan.scheduler.explore  # type: ignore[attr-defined]
        entry = self.checkpoints.exploit(
            r.trial, r.donor, row["config"], explore(self.rows[r.donor]["config"])
        )
        if entry is None:
            why = f"trial {r.donor}'s checkpoint could not be copied; going on from its own"
            self._requeue(r, "exploit skipped", why)
            return
        row.update(config=entry["new"], state=TrialState.PENDING,
                   lineage=[*(row.get("lineage") or []), entry])  # fmt: skip
        bisect.insort(self.pending, r.trial)

    def _final_values(
        self, r: _Running, res: dict[str, Any], value: float | None
    ) -> dict[str, float] | None:
        """Each objective's value of a done trial: from the returned dict, else the last
        report (a returned number is the first objective's). A trial that has no value of
        some objective fails (not retried: it would end the same way)."""
        returned = res.get("value")
        got = dict(returned) if isinstance(returned, dict) else {}
        values = {m: got.get(m, r.lasts.get(m)) for m in self.plan.metrics or {}}
        values[self.plan.metric or ""] = value  # the first objective, as value
        missing = [m for m, v in values.items() if v is None]
        if not missing:
            return values
        seen = sorted(set(r.lasts) | set(got)) or ["none"]
        wanted = ", ".join(f"{m}=..." for m in self.plan.metrics or {})
        self._failed(
            r,
            f"ValueError: trial {r.trial} ended without a value of metric {missing[0]!r} "
            f"(objectives: {', '.join(self.plan.metrics or {})}; it gave: {', '.join(seen)}). "
            f"Every trial must report each objective (report(step=..., {wanted})) or return "
            "a dict holding all of them",
            retry=False,
        )
        return None

    def _final_value(self, r: _Running, res: dict[str, Any]) -> float | None:
        v = res.get("value")
        if isinstance(v, dict):
            v = v.get(self.plan.metric) if self.plan.metric else None
        if isinstance(v, float) and res["state"] == TrialState.DONE:
            r.best = v if r.best is None else self.plan.better(v, r.best)
            return v
        return r.last

    def _remote_error(self, r: _Running, exc: Exception) -> None:
        ename = getattr(exc, "ename", type(exc).__name__)
        if ename == "EngineError" or self.pool.dead_ranks():
            self.running.insert(0, r)  # let the death path account for it with the others
            why = "its engine died while running the trial"
            self._engines_died(self.pool.dead_ranks() or dict.fromkeys(self.groups[r.group], why))
        elif ename == "KeyboardInterrupt":
            self._requeue(r, "interrupted", "interrupted on the engine")
        else:
            tb = getattr(exc, "traceback", None) or f"{ename}: {exc}"
            self._failed(r, tb)

    def _record_reports(self, r: _Running) -> None:
        if r.reports:
            self.store.add_reports(self.plan.name, r.trial, r.attempt, r.reports)
            r.reports = []

    def _final(
        self,
        r: _Running,
        state: TrialState,
        value: float | None,
        detail: str | None,
        *,
        values: dict[str, float] | None = None,
        **extra: Any,
    ) -> None:
        self._record_reports(r)
        if values is not None:
            extra["values"] = values
        self._set(r.trial, state, detail, value=value, best=r.best, step=r.step,
                  finished=time.time(), **extra)  # fmt: skip
        config = self.rows[r.trial]["config"]
        if self.plan.metrics:  # a strategy of one objective is never called with values=
            ordered = None if values is None else [values[m] for m in self.plan.metrics]
            self.plan.strategy.complete(r.trial, config, state, value, values=ordered)
        else:
            self.plan.strategy.complete(r.trial, config, state, value)
        self.plan.scheduler.on_complete(r.trial, state, value)
        with contextlib.suppress(FileNotFoundError):
            os.remove(r.control)

    def _failed(self, r: _Running, error: str, *, retry: bool = True) -> None:
        failures = self.rows[r.trial]["failures"] + 1
        if retry and failures <= self.plan.max_failures:
            self._record_reports(r)
            self._set(
                r.trial, TrialState.PENDING, "failed; retrying", failures=failures, error=error
            )
            bisect.insort(self.pending, r.trial)
            return
        self._final(r, TrialState.FAILED, None, None, failures=failures, error=error)

    def _requeue(self, r: _Running, why: str, detail: str) -> None:
        self._record_reports(r)
        self._set(r.trial, TrialState.PENDING, f"{why}: {detail}")
        bisect.insort(self.pending, r.trial)

    def _set(
        self, trial_id: int, state: TrialState, detail: str | None = None, **fields: Any
    ) -> None:
        self.store.update(self.plan.name, trial_id, state, detail, **fields)
        self.rows[trial_id].update(fields, state=state)

    # -- view --------------------------------------------------------------------------------
    def _refresh(self, *, force: bool = False, final: bool = False) -> None:
        if self.view is None:
            return
        now = time.monotonic()
        if not force and now - getattr(self, "_shown", 0.0) < _VIEW_EVERY:
            return
        self._shown = now
        for r in self.running:
            self.rows[r.trial].update(step=r.step, value=r.last, best=r.best)
        rows = list(self.rows.values())
        waiting = {r.trial for r in self._waiting()}
        if waiting:  # "running" in the store (a resume reruns them), "queued" on screen
            rows = [
                dict(row, state=TrialState.QUEUED) if row["id"] in waiting else row for row in rows
            ]
        self.view.update(rows, self.curves, final=final)


def _drop(keys: list[str]) -> None:
    from workbench import engine_store

    for k in keys:
        engine_store.drop(k)
