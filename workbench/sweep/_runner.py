"""The notebook side of a sweep: keep every group of engines busy, apply the scheduler's
decisions, record everything in the store, survive failing trials and dying engines.

Trials go to whichever group of ``trial_ranks`` engines is idle, as soon as it is idle
(no waves). Trials so short that the round trip would dominate (under about 10 ms, with
no scheduler decisions to wait for) go several to a task. The runner is the only writer of
the store (through :class:`~workbench.sweep._records.Records`). When an engine dies the MPI
job is gone: the trial on it counts a failure, every other running trial goes back to
pending without one, the pool is restarted and the sweep goes on.
"""

from __future__ import annotations

import concurrent.futures as cf
import logging
import os
import queue
import sys
import time
from collections.abc import Sequence
from dataclasses import replace
from typing import TYPE_CHECKING, Any

from workbench import _timeouts
from workbench._util import new_key
from workbench.errors import PoolError
from workbench.pool import Failure, child_metadata, classify_failure, failure_details
from workbench.progress import KEY
from workbench.sweep._attempt import Attempt
from workbench.sweep._engines import Engines
from workbench.sweep._records import Records
from workbench.sweep._resume import Checkpoints
from workbench.sweep._state import CONTINUE, EXPLOIT, SKIP, STOP, TrialState
from workbench.sweep._trial import clear_decision, run_batch, run_trial, write_decision
from workbench.sweep.schedulers import FIFO

if TYPE_CHECKING:
    from workbench.pool import Pool
    from workbench.sweep._plan import Plan
    from workbench.sweep._store import SweepStore

__all__ = ["Runner"]

log = logging.getLogger("workbench.sweep")

_DEATH_CHECK = 0.2  # seconds between looks for dead engines
_VIEW_EVERY = 0.25  # seconds between two view refreshes
_OUTPUT_GRACE = 1.0  # seconds a finished task's last output may trail its result
_BATCH_SECONDS = 0.02  # short trials are grouped into tasks of about this long
_MAX_BATCH = 64


def _batch_size(trial_seconds: float, left: int, slots: int) -> int:
    """Trials per task when trials ran ``trial_seconds`` on average: about
    ``_BATCH_SECONDS`` of them, fewer near the end (``left`` trials to go) so that every one
    of ``slots`` places for a task still gets a share."""
    size = int(_BATCH_SECONDS / max(trial_seconds, 1e-5))
    return max(1, min(size, -(-left // slots), _MAX_BATCH))


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
        The live view (``update(trials, curves, final=...)`` with
        :class:`~workbench.trials.Trial` records; it gets ``on_stop`` and
        ``on_stop_trial``), or None.
    outlets
        Copies of the records kept elsewhere, updated like the view (the Optuna mirror,
        trackers: :class:`~workbench.sweep._outlet.Outlet`).
    """

    def __init__(
        self, plan: Plan, pool: Pool, store: SweepStore, view: Any, outlets: Sequence[Any] = ()
    ) -> None:
        self.plan, self.pool, self.view = plan, pool, view
        self.watchers = [view, *outlets] if view is not None else list(outlets)
        self.engines = Engines(plan, pool, new_key("sweep"))
        self.records = Records(store, plan.name)
        self.running: list[Attempt] = []  # in submission order; per group, first = on engine
        self.curves: dict[int, list[tuple[float, float]]] = {}
        self.exhausted = False
        self.stopping = False
        self.dropped_queued = False
        self.restarts = 0
        self.interrupts = 0
        self.timed_out = False
        self.t0 = time.monotonic()
        self._shown = 0.0  # when the view was last refreshed
        self._stop_asks: queue.SimpleQueue[int] = queue.SimpleQueue()
        # batching needs no decision mid-trial and one engine per trial
        self.batchable = (
            isinstance(plan.scheduler, FIFO) and plan.trial_ranks == 1 and not plan.checkpoint_dir
        )
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
                    r.stop(r.step or 0.0, "user")

    # -- the loop ----------------------------------------------------------------------------
    def run(self) -> None:
        """Run until ``n_trials`` trials are final, the strategy is exhausted, or stopped."""
        self._stop_orphans()
        self.engines.prepare()
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
            self.engines.cleanup()

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
        ranks = self.engines.ranks([r.group for r in self.running])
        self._drop_queued()
        if ranks:
            self.pool.interrupt(ranks)
        cf.wait([r.ar for r in self.running], timeout=_timeouts.INTERRUPT_GRACE)
        for r in list(self.running):
            self._requeue(r, "interrupted", "interrupted from the notebook")
        self.running.clear()

    def _waiting(self) -> list[Attempt]:
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
    def _engines_died(self, dead: dict[int, str]) -> None:
        """Fail the trials on dead engines, requeue the others, restart the pool (bounded)."""
        for r in [r for r in self.running if r.ar.done() and r.ar.exception() is None]:
            self._finish(r)  # completed before the death: keep its result
        blamed: set[int] = set()
        for r in self.running:
            lost = [rk for rk in self.engines.groups[r.group] if rk in dead]
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
        self.engines.prepare()

    def _stop_orphans(self) -> None:
        """Trials a previous session left running may still run on the engines: stop them."""
        for t in self.records.trials.values():
            if t.state == TrialState.RUNNING:
                write_decision(self.plan.control_file(t.id, t.attempt), 0.0, STOP)

    # -- trials ------------------------------------------------------------------------------
    def _next_trial(self) -> int | None:
        if self.records.pending:
            return self.records.pending.pop(0)
        if self.exhausted or self.records.next_id >= self.plan.n_trials:
            return None
        config = self.plan.strategy.suggest(self.records.next_id)
        if config is None:
            self.exhausted = True
            return None
        return self.records.add(config)

    def _fill(self) -> None:
        for level in range(self.plan.depth):
            for group in range(len(self.engines.groups)):
                if len({id(r.ar) for r in self.running if r.group == group}) > level:
                    continue
                ids: list[int] = []
                size = 1  # one trial per task, unless trials are so short that batching pays
                if self.batchable and not self.stopping and self.trial_seconds is not None:
                    left = max(0, self.plan.n_trials - self.records.next_id)
                    slots = len(self.engines.groups) * self.plan.depth
                    size = _batch_size(self.trial_seconds, len(self.records.pending) + left, slots)
                while len(ids) < size and (trial_id := self._next_trial()) is not None:
                    ids.append(trial_id)
                if not ids:
                    return
                self._submit(group, ids)

    def _submit(self, group: int, trial_ids: list[int]) -> None:
        items = []
        for trial_id in trial_ids:
            previous = self.records.trials[trial_id].attempt
            attempt = previous + 1
            if attempt > 1:
                self.plan.scheduler.forget(trial_id)
            control = self.plan.control_file(trial_id, attempt)
            clear_decision(control)
            checkpoint, carried = None, None
            if self.checkpoints is not None:  # resumes after its checkpoint, if it has one
                checkpoint, carried = self.checkpoints.prepare(trial_id, previous, attempt)
            self.records.set(trial_id, TrialState.RUNNING, attempt=attempt,
                             ranks=self.engines.groups[group], started=time.time(), step=None,
                             value=None, best=None)  # fmt: skip
            self.curves[trial_id] = []
            config = self.records.trials[trial_id].config
            items.append((trial_id, config, control, attempt, checkpoint, carried))
        view = self.engines.views[group]
        if len(items) == 1:
            trial_id, config, control, _, checkpoint, _ = items[0]
            spec = dict(self.engines.spec, control=control, checkpoint=checkpoint)
            ar = view.apply_async(run_trial, trial_id, config, spec)
        else:
            ar = view.apply_async(run_batch, [item[:3] for item in items], self.engines.spec)
        # the raw metadata dict of rank 0's task (the public one re-parses dates on every look)
        metadata = child_metadata(ar)[0]
        for i, (trial_id, _, control, attempt, _, carried) in enumerate(items):
            index = i if len(items) > 1 else None
            r = Attempt(trial_id, attempt, group, ar, control, metadata, index=index)
            self.running.append(r)
            if carried:  # resumed from its checkpoint: its curve up to it, not recorded again
                self._take_reports(r, carried, replay=True)
                r.curve0 = list(self.curves[trial_id])

    def _read_reports(self, r: Attempt) -> None:
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

    def _take_reports(self, r: Attempt, new: list[Any], *, replay: bool = False) -> None:
        """Record reports ``(step, metrics, time)`` and apply the scheduler's decisions
        (``replay``: the scheduler sees them, nothing is recorded or decided)."""
        if not replay:
            r.reports.extend(new)
        scheduler = self.plan.scheduler
        for step, metrics, _ in new:
            value, crossing = r.observe(self.plan, step, metrics)
            action = None
            if value is not None:
                self.curves[r.trial].append((step, value))
                action = scheduler.on_report(r.trial, step, value)
            if replay or r.stop_sent:
                continue
            donor = scheduler.target(r.trial) if action == EXPLOIT else None
            ck = self.checkpoints  # a donor without a checkpoint yet: nothing to copy, go on
            if donor is not None and ck is not None and ck.saved_step(donor) is not None:
                r.donor = donor  # it copies the donor's checkpoint once it stopped
                r.stop(step, "exploit")
            elif action == STOP:
                r.stop(step, "scheduler")
            elif crossing:
                write_decision(r.control, step, CONTINUE)
        self.records.show(r.trial, step=r.step, value=r.last, best=r.best)

    def _finish(self, r: Attempt) -> None:
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
        value = r.final_value(self.plan, res)
        if self.plan.metrics and state == TrialState.DONE:
            values, why = r.final_values(self.plan, res, value)
            if values is None:  # not retried: it would end the same way
                self._failed(r, why, retry=False)
            else:
                self._final(r, state, value, None, values=values)
        elif state == TrialState.DONE and value is None:
            what = "a metric value" if self.plan.metric is None else f"metric {self.plan.metric!r}"
            self._failed(
                r,
                f"ValueError: the objective returned {res.get('value')!r} and reported no "
                f"{what}: return a number (or a dict holding the metric) or call "
                f"report(step=..., {self.plan.metric or 'score'}=...)",
                retry=False,
            )
        elif state == TrialState.PRUNED and r.donor is not None:
            self._exploit(r, r.donor)
        else:
            detail = f"stopped by the {r.stopped_by}" if state == TrialState.PRUNED else None
            self._final(r, state, value, detail)

    def _exploit(self, r: Attempt, donor: int) -> None:
        """Trial ``r`` stopped to exploit trial ``donor`` (population-based training): copy
        its checkpoint, go on with the configuration the scheduler explores from the donor's,
        record the lineage; the trial runs again from the copied step."""
        assert self.checkpoints is not None  # only a scheduler that needs checkpoints exploits
        self.records.add_reports(r)
        step = self.checkpoints.copy(donor, r.trial)
        if step is None:
            why = f"trial {donor}'s checkpoint could not be copied; going on from its own"
            self._requeue(r, "exploit skipped", why)
            return
        config = self.plan.scheduler.explore(self.records.trials[donor].config)
        self.records.exploit(r.trial, donor, step, config)

    def _remote_error(self, r: Attempt, exc: BaseException) -> None:
        """The task of ``r`` gave no result: its engine died (the death path accounts for
        it), it was interrupted or aborted (back to pending), or it raised (a failure)."""
        failure = classify_failure(exc)
        dead = self.pool.dead_ranks()
        if failure is Failure.ENGINE_DIED or dead:
            self.running.insert(0, r)  # let the death path account for it with the others
            why = "its engine died while running the trial"
            self._engines_died(dead or dict.fromkeys(self.engines.groups[r.group], why))
        elif failure is Failure.INTERRUPTED:
            self._requeue(r, "interrupted", "interrupted on the engine")
        elif failure is Failure.ABORTED:
            self._requeue(r, "aborted", "its task was aborted before it began")
        else:
            ename, evalue, tb, _ = failure_details(exc)
            self._failed(r, tb or f"{ename}: {evalue}")

    def _final(
        self,
        r: Attempt,
        state: TrialState,
        value: float | None,
        detail: str | None,
        *,
        values: dict[str, float] | None = None,
        **fields: Any,
    ) -> None:
        self.records.add_reports(r)
        if values is not None:
            fields["values"] = values
        self.records.set(r.trial, state, detail, value=value, best=r.best, step=r.step,
                         finished=time.time(), **fields)  # fmt: skip
        config = self.records.trials[r.trial].config
        if self.plan.metrics:  # a strategy of one objective is never called with values=
            ordered = None if values is None else [values[m] for m in self.plan.metrics]
            self.plan.strategy.complete(r.trial, config, state, value, values=ordered)
        else:
            self.plan.strategy.complete(r.trial, config, state, value)
        self.plan.scheduler.on_complete(r.trial, state, value)
        clear_decision(r.control)

    def _failed(self, r: Attempt, error: str, *, retry: bool = True) -> None:
        failures = self.records.trials[r.trial].failures + 1
        if retry and failures <= self.plan.max_failures:
            self.records.add_reports(r)
            self.records.requeue(r.trial, "failed; retrying", failures=failures, error=error)
            return
        self._final(r, TrialState.FAILED, None, None, failures=failures, error=error)

    def _requeue(self, r: Attempt, why: str, detail: str) -> None:
        self.records.add_reports(r)
        self.records.requeue(r.trial, f"{why}: {detail}")

    # -- view --------------------------------------------------------------------------------
    def _refresh(self, *, force: bool = False, final: bool = False) -> None:
        if not self.watchers:
            return
        now = time.monotonic()
        if not force and now - self._shown < _VIEW_EVERY:
            return
        self._shown = now
        for r in self.running:
            self.records.show(r.trial, step=r.step, value=r.last, best=r.best)
        waiting = {r.trial for r in self._waiting()}
        # "running" in the store (a resume reruns them), "queued" on screen
        trials = [
            replace(t, state=TrialState.QUEUED) if t.id in waiting else t
            for t in self.records.trials.values()
        ]
        for watcher in self.watchers:
            watcher.update(trials, self.curves, final=final)
