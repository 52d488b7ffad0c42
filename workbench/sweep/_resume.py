"""The notebook side of checkpoints: trial folders, resuming where a trial stopped, and
the copy behind population-based training's exploit (another trial's checkpoint).

Each trial of a sweep whose objective takes ``checkpoint`` has a folder
``<storage dir>/<sweep name>.checkpoints/trial-<id>/`` (a temporary folder for a
``":memory:"`` store), made before its first attempt. Before every later attempt the
runner reads the folder's marker (see :mod:`workbench.sweep._checkpoint`): the attempt
resumes after the marked step, starting with the trial's reports up to that step (those of
the previous attempt, and those the marker holds that never reached the notebook); the
previous attempt's reports after the step are dropped, since the new attempt makes them
again. So the store holds each step of the trial once, and the scheduler sees one
continuous learning curve.
"""

from __future__ import annotations

import logging
import os
import shutil
import tempfile
import time
from typing import TYPE_CHECKING, Any

from workbench.errors import InvalidValueError
from workbench.sweep._checkpoint import MARKER, read_marker, write_marker

if TYPE_CHECKING:
    from workbench.sweep._store import SweepStore

__all__ = ["Checkpoints", "checkpoint_root"]

log = logging.getLogger("workbench.sweep")

_COPY_TRIES = 5  # a donor saving while it is copied: copy again (bounded)


def checkpoint_root(storage: str, name: str) -> str:
    """The folder of sweep ``name``'s checkpoints next to ``storage``, made and checked
    writable; a clear error naming it when it is not."""
    if storage == ":memory:":
        return tempfile.mkdtemp(prefix=f"wb-sweep-{name}-checkpoints-")
    folder = os.path.join(os.path.dirname(os.path.abspath(storage)), f"{name}.checkpoints")
    try:
        os.makedirs(folder, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=folder, prefix=".wb-write-test-"):
            pass
    except OSError as e:
        raise InvalidValueError(
            f"the checkpoint folder {folder!r} of sweep {name!r} is not a writable folder "
            f"({e.strerror or e}); the objective takes `checkpoint`, so each trial saves its "
            "state there. Make it writable (or remove what is in its way), or pass storage= "
            "in a writable folder on storage every engine sees"
        ) from None
    return folder


class Checkpoints:
    """The checkpoint folders of one sweep (``root``), recorded in ``store`` under ``name``."""

    def __init__(self, root: str, store: SweepStore, name: str) -> None:
        self.root, self.store, self.name = root, store, name

    def folder(self, trial_id: int) -> str:
        """Trial ``trial_id``'s folder."""
        return os.path.join(self.root, f"trial-{trial_id}")

    def prepare(
        self, trial_id: int, old: int, new: int
    ) -> tuple[dict[str, Any], list[tuple[Any, ...]] | None]:
        """Before attempt ``new`` of trial ``trial_id`` (its previous one: ``old``, 0 if
        none): make its folder; when it holds a checkpoint, start attempt ``new`` with the
        reports up to it. Returns what the engine gets (``{"path", "step"}``) and those
        reports (None: no checkpoint, the trial starts from scratch)."""
        folder = self.folder(trial_id)
        if not old and os.path.lexists(folder):  # never ran: from another sweep of the name
            try:
                shutil.rmtree(folder)
            except OSError as e:  # else it would resume from that sweep's checkpoint
                raise InvalidValueError(
                    f"cannot clear the checkpoint folder {folder!r} of trial {trial_id}, left "
                    f"by an earlier sweep named {self.name!r} ({e.strerror or e}); remove it, "
                    "then resume the sweep"
                ) from None
        try:
            os.makedirs(folder, exist_ok=True)
        except OSError as e:
            raise InvalidValueError(
                f"cannot make the checkpoint folder {folder!r} of trial {trial_id} ({e}); "
                f"make {self.root!r} writable, then resume the sweep"
            ) from None
        marker = read_marker(folder)
        if marker is None:  # from scratch: the reports of an earlier attempt go
            if old:
                self.store.carry_reports(self.name, trial_id, old, new, [])
            return {"path": folder, "step": None}, None
        step = marker["step"]
        by_step = {float(r[0]): tuple(r) for r in marker["reports"] if r[0] <= step}
        if old:
            own = self.store.reports_of(self.name, trial_id, old)
            by_step.update((float(r[0]), r) for r in own if r[0] <= step)  # its own win
        rows = [by_step[s] for s in sorted(by_step)]
        self.store.carry_reports(self.name, trial_id, old, new, rows)
        return {"path": folder, "step": step}, rows

    def saved_step(self, trial_id: int) -> float | None:
        """The step of trial ``trial_id``'s checkpoint, or None when it has none."""
        marker = read_marker(self.folder(trial_id))
        return None if marker is None else marker["step"]

    def copy(self, donor: int, trial_id: int) -> float | None:
        """Exploit: replace trial ``trial_id``'s folder by a copy of trial ``donor``'s.

        The copy's marker says the donor's step and holds the donor's reports up to it
        (those the store has and those only the marker has), which fill the steps the
        trial itself never reported. Returns the step, or None when the donor has no
        checkpoint (or kept changing it while it was copied): nothing is changed then."""
        src, dst = self.folder(donor), self.folder(trial_id)
        for _ in range(_COPY_TRIES):
            before = read_marker(src)
            if before is None:
                return None
            tmp = f"{dst}.copy-{os.getpid()}"
            _remove_tree(tmp)
            try:
                shutil.copytree(src, tmp, ignore=shutil.ignore_patterns("*.tmp"))
            except (OSError, shutil.Error):
                log.debug("sweep %r: copying %s failed; trying again", self.name, src,
                          exc_info=True)  # fmt: skip
                _remove_tree(tmp)
                time.sleep(0.05)
                continue
            state = before.get("state")
            if read_marker(src) != before or (
                state and not os.path.exists(os.path.join(tmp, state))
            ):  # it saved meanwhile: files of two steps
                _remove_tree(tmp)
                continue
            step = before["step"]
            rows = {float(r[0]): tuple(r) for r in before["reports"] if r[0] <= step}
            stored = [r for r in self.store.reports(self.name, donor) if r["step"] <= step]
            rows.update((float(r["step"]), (r["step"], r["metrics"], r["t"])) for r in stored)
            with_marker = os.path.join(tmp, MARKER)
            if os.path.exists(with_marker):
                os.remove(with_marker)
            write_marker(tmp, step, [rows[s] for s in sorted(rows)], before.get("state"))
            _remove_tree(dst)
            os.replace(tmp, dst)  # raises if dst could not be removed
            return step
        return None


def _remove_tree(path: str) -> None:
    """Remove folder ``path`` if it is there; a failure is logged (debug), not raised: what
    stays is a copy no trial reads (or, for a trial's own folder, ``os.replace`` says so)."""
    if not os.path.lexists(path):
        return
    try:
        shutil.rmtree(path)
    except OSError:
        log.debug("could not remove %s", path, exc_info=True)
