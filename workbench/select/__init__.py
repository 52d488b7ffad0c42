"""Distributed feature selection on the engine pool, picking what scikit-learn would pick.

- :func:`univariate`: f_classif / f_regression / chi2 / binned mutual information from
  per-rank sufficient statistics combined with the shared ``wb.allreduce``.
- :func:`sequential`: greedy forward/backward selection, each step's candidates dealt
  over the ranks (same picks, same order as ``SequentialFeatureSelector``).
- :func:`rfe`: RFE, or RFECV with ``cv=`` (fold paths and the all-rows path concurrently).
- :func:`permutation_importance`: (column, repeat) pieces over the ranks, same seeds.

Wrapper methods take the data once per call, or once per session with :func:`place`.
Every method reports through ``wb.progress`` and returns a :class:`SelectionResult`.
"""

from __future__ import annotations

from workbench.select._permutation import permutation_importance
from workbench.select._placement import PlacedData, place
from workbench.select._result import SelectionResult
from workbench.select._rfe import rfe
from workbench.select._sequential import sequential
from workbench.select._univariate import SCORES, discretize, univariate

__all__ = [
    "SCORES",
    "PlacedData",
    "SelectionResult",
    "discretize",
    "permutation_importance",
    "place",
    "rfe",
    "sequential",
    "univariate",
]
