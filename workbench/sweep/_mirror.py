"""A running sweep mirrored into an Optuna study: ``sweep(..., optuna_storage=...)``.

Each trial becomes an Optuna trial when it starts (``RUNNING``, with its parameters), gets
its learning curve as intermediate values while it reports, and its state and values when
it ends, so ``optuna-dashboard`` (or jupyterlab-optuna) follows the sweep live. The mirror
watches the runner like the live view does (``update(trials, curves, final=...)``) and
writes only what changed since its last look; workbench's own store stays the record, and
the study is only ever written by the notebook. On resume the study is brought in line
with the store: trials it lacks are added, the ones it still shows running are finished.

Optuna trials carry the workbench id in ``user_attrs["workbench_trial"]``; the study is
marked with ``user_attrs["workbench_sweep"]`` (the sweep's name), and a study of that name
that belongs to something else is refused before the sweep starts.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Sequence
from typing import Any

from workbench.errors import InvalidValueError
from workbench.sweep._export import frozen_trial, optuna_distributions, optuna_module, steps
from workbench.sweep._outlet import Outlet
from workbench.sweep._space import Domain
from workbench.trials import Trial, TrialState

__all__ = ["OptunaMirror", "open_storage"]

_MARK = "workbench_sweep"


def open_storage(optuna: Any, storage: Any) -> Any:
    """An Optuna storage from what ``sweep(optuna_storage=...)`` got: a URL
    (``"sqlite:///optuna.db"``), a path of a journal file (``"optuna.log"``, the
    ``JournalStorage`` that several processes may share), or a storage object."""
    if isinstance(storage, (str, os.PathLike)):
        text = os.fspath(storage)
        if "://" in text:
            return optuna.storages.get_storage(text)
        journal = getattr(optuna.storages, "journal", None)
        if journal is not None and hasattr(journal, "JournalFileBackend"):  # optuna >= 4
            return journal.JournalStorage(journal.JournalFileBackend(text))
        return optuna.storages.JournalStorage(optuna.storages.JournalFileStorage(text))
    if isinstance(storage, optuna.storages.BaseStorage):
        return storage
    raise InvalidValueError(
        "optuna_storage must be an Optuna storage URL ('sqlite:///optuna.db'), the path of a "
        f"journal file ('optuna.log') or an optuna storage object, got {storage!r}"
    )


class OptunaMirror(Outlet):
    """The Optuna study ``name`` in ``storage`` kept in line with the sweep of that name.

    ``objectives``: metric -> mode, in order (one entry for a sweep of one objective);
    ``domains``: the searched parameters (their Optuna distributions); ``trial_ids``: the
    ids of the trials the store already has (a study with any other trial is refused).
    """

    def __init__(
        self,
        storage: Any,
        name: str,
        objectives: dict[str, str],
        domains: dict[str, Domain],
        trial_ids: Sequence[int],
    ) -> None:
        optuna = self.optuna = optuna_module("sweep(optuna_storage=...)")
        shown = storage if isinstance(storage, str) else repr(storage)
        self.where = f"the Optuna study {name!r} in {shown}"
        self.storage = open_storage(optuna, storage)
        self.metrics = list(objectives)
        directions = ["maximize" if m == "max" else "minimize" for m in objectives.values()]
        study = optuna.create_study(
            storage=self.storage, study_name=name, directions=directions, load_if_exists=True
        )
        self.study_id = self.storage.get_study_id_from_name(name)
        self._check(study, name, directions, set(trial_ids))
        if not study.user_attrs.get(_MARK):
            study.set_user_attr(_MARK, name)
            with warnings.catch_warnings():  # set_metric_names is marked experimental
                warnings.simplefilter("ignore")
                study.set_metric_names(self.metrics)
        self.dists = optuna_distributions(optuna, domains, [])
        # workbench id -> (optuna trial id, finished there, intermediate values written)
        self.mirrored: dict[int, tuple[int, bool, dict[int, float]]] = {}
        for ft in self.storage.get_all_trials(self.study_id, deepcopy=False):
            wid = ft.user_attrs.get("workbench_trial")
            if wid is not None:
                tid = self.storage.get_trial_id_from_study_id_trial_number(self.study_id, ft.number)
                self.mirrored[int(wid)] = (
                    tid,
                    ft.state.is_finished(),
                    dict(ft.intermediate_values),
                )

    def _check(self, study: Any, name: str, directions: list[str], known: set[int]) -> None:
        mark = study.user_attrs.get(_MARK)
        theirs = [d.name.lower() for d in study.directions]
        ids = [t.user_attrs.get("workbench_trial") for t in study.get_trials(deepcopy=False)]
        strangers = [i for i in ids if i not in known]
        foreign = (mark is not None and mark != name) or (mark is None and ids) or strangers
        if foreign or theirs != directions:
            why = (
                f"its directions are {theirs}, the sweep's {directions}"
                if theirs != directions
                else f"it holds {len(strangers) or len(ids)} trials that are not this sweep's"
            )
            raise InvalidValueError(
                f"{self.where} cannot mirror sweep {name!r}: "
                f"{why}. Pass another sweep name=, or delete the study with "
                f"optuna.delete_study(study_name={name!r}, storage=...)"
            )

    def trial(self, t: Trial, curve: list[tuple[float, float]]) -> None:
        """Trial ``t`` in the study: created when first seen running, then its curve, its end."""
        if t.state in (TrialState.PENDING, TrialState.QUEUED):
            return
        known = self.mirrored.get(t.id)
        if known is None:  # a new trial (or one the study lacks, on resume): whole
            ours = frozen_trial(self.optuna, t, self.metrics, self.dists, curve)
            tid = self.storage.create_new_trial(self.study_id, template_trial=ours)
            self.mirrored[t.id] = (tid, t.state.is_finished(), dict(ours.intermediate_values))
            return
        tid, done, written = known
        if done:
            return
        for step, value in steps(curve).items():
            if written.get(step) != value:
                self.storage.set_trial_intermediate_value(tid, step, value)
                written[step] = value
        if t.state.is_finished():
            ours = frozen_trial(self.optuna, t, self.metrics, self.dists, [])
            self.storage.set_trial_user_attr(tid, "attempt", t.attempt)
            if t.error:
                self.storage.set_trial_user_attr(tid, "error", ours.user_attrs["error"])
            self.storage.set_trial_state_values(tid, ours.state, ours.values)
            self.mirrored[t.id] = (tid, True, written)
