"""What the sweep test modules share: the objectives they run on the pool (module level in
an importable module: the engines import them by reference; tests/ is on their PYTHONPATH),
the check that every trial of a sweep finished exactly once, and a watcher that acts on a
running sweep once a condition holds (a bounded poll, never a fixed sleep)."""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable

import numpy as np

from workbench.sweep import SweepStore, Trial, TrialPruned


def done_once(db: str, name: str, n: int) -> list[Trial]:
    """The trials of sweep ``name`` in store ``db``, checked: ids 0..n-1, each reached a
    final state exactly once (none lost, none finished twice)."""
    store = SweepStore(db)
    try:
        trials, events = store.trials(name), store.events(name)
    finally:
        store.close()
    assert [t.id for t in trials] == list(range(n))
    finals = Counter(i for i, _, state in events if state in ("done", "pruned", "failed"))
    assert all(finals[i] == 1 for i in range(n)), finals
    return trials


def when(condition: Callable[[], bool], action: Callable[[], None]) -> threading.Event:
    """Do ``action`` once ``condition()`` holds (polled, for at most 60 s) on a thread;
    the returned event is set when it was done."""
    done = threading.Event()

    def watch() -> None:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            if condition():
                action()
                done.set()
                return
            time.sleep(0.05)

    threading.Thread(target=watch, daemon=True).start()
    return done


def learning_curve(config, report):
    """Accuracy rising towards ``lr`` over 9 steps."""
    acc = 0.0
    for step in range(1, 10):
        acc = config["lr"] * (1 - 0.5**step)
        report(step=step, acc=acc)
    return acc


def quick(config, report):
    report(step=1, score=float(config.get("x", config.get("a", 0))))
    return float(config.get("x", config.get("a", 0)))


def sometimes_raises(config, report):
    if config["a"] == 2:
        raise ValueError(f"bad value a={config['a']}")
    return float(config["a"])


def slow(config, report):
    for step in range(1, 4):
        time.sleep(config["sleep"])
        report(step=step, score=config["a"] * step)
    return float(config["a"])


def distributed(config, report, comm):
    import workbench as wb

    total = wb.allreduce(np.array([comm.rank + 1.0]), op="sum", comm=comm)
    report(step=1, score=float(total[0]))
    assert report.comm is comm
    return {"score": float(total[0]), "size": float(comm.size)}


def two_reports(config, report):
    if config["a"] == 13:
        raise ValueError("thirteen")
    report(step=1, score=config["a"] * 0.5)
    report(step=2, score=float(config["a"]))
    return float(config["a"])


def distributed_slow(config, report, comm):
    import workbench as wb

    for step in range(1, 4):
        time.sleep(0.3)
        total = wb.allreduce(np.array([1.0]), op="sum", comm=comm)
        report(step=step, score=float(total[0]) * config["a"])
    return float(config["a"])


def prunes_itself(config, report):
    report(step=1, score=config["a"])
    if config["a"] == 1:
        raise TrialPruned("not promising")
    return config["a"]


def curve_or_fail(config, report):
    """A 9-step curve towards ``lr``; trials with ``a == 2`` fail at step 2, before they
    report it (after their report of step 1)."""
    acc = 0.0
    for step in range(1, 10):
        if config["a"] == 2 and step == 2:
            raise ValueError("a=2 breaks")
        acc = config["lr"] * (1 - 0.5**step) + 0.01 * config["k"]
        report(step=step, acc=acc)
    return acc


def tradeoff(config, report):
    """Accuracy grows with ``x``, latency with ``x`` squared plus ``c``: a Pareto front."""
    acc, ms = config["x"], 10 * config["x"] ** 2 + config["c"]
    report(step=1, acc=acc * 0.5, ms=ms)
    report(step=2, acc=acc)  # the last report of each metric counts
    return {"ms": ms}


def some_report_ms(config, report):
    """Reports ``ms`` only for odd ``a``."""
    if config["a"] % 2:
        report(step=1, acc=float(config["a"]), ms=1.0)
    else:
        report(step=1, acc=float(config["a"]))
    return float(config["a"])
