"""The contract every allreduce algorithm meets, run over each registered one in process.

Like Optuna's ``testing/pytest_samplers.py``: one parametrised set of checks that a new
algorithm passes by being registered. The reductions themselves are checked under real
``mpiexec`` by ``tests/test_allreduce.py`` (``tests/mpi/``); here one rank suffices.
"""

from __future__ import annotations

import inspect
from typing import Any

import numpy as np
import pytest
from mpi4py import MPI

from workbench.comm import _config, _tuning
from workbench.comm.algorithms import _NAMED, Algorithm, get_algorithm
from workbench.comm.algorithms._base import CAPABILITIES
from workbench.comm.allreduce import allreduce, allreduce_async
from workbench.errors import InvalidValueError

NAMES = sorted(_NAMED)


@pytest.fixture(params=NAMES)
def algo(request: pytest.FixtureRequest) -> Algorithm:
    return _NAMED[request.param]


def test_registry_is_every_name_users_may_pass() -> None:
    assert set(_NAMED) == set(_config.ALGORITHM_NAMES)
    assert set(_tuning.MEASURABLE) == set(_NAMED) - {"auto"}  # what a tuning table may name


def test_implements_the_abstract_base(algo: Algorithm) -> None:
    cls = type(algo)
    assert isinstance(algo, Algorithm) and not inspect.isabstract(cls)
    assert cls.reduce is not Algorithm.reduce
    assert algo.name in _NAMED and get_algorithm(algo.name) is algo
    assert get_algorithm(algo) is algo


def test_declares_every_capability(algo: Algorithm) -> None:
    declared = set().union(*(vars(c) for c in type(algo).__mro__ if c is not Algorithm))
    assert set(CAPABILITIES) <= declared, f"{type(algo).__name__} leaves some to the base"
    assert all(type(getattr(algo, cap)) is bool for cap in CAPABILITIES if cap != "name")


def test_capabilities_agree_with_the_tuning_table(algo: Algorithm) -> None:
    """The table is read before any algorithm is built, so it names them by its own sets."""
    if algo.name == "auto":
        return
    assert (algo.name in _tuning.WINDOW_ALGORITHMS) is not algo.team_safe
    two_nodes = _tuning.Layout(ranks=4, nodes=2, per_node=2)
    assert (algo.name in two_nodes.allowed()) is not algo.single_node


@pytest.mark.parametrize("op", ["sum", "max", "min"])
def test_one_rank_keeps_its_contribution(algo: Algorithm, op: str) -> None:
    src = np.arange(7, dtype=np.float64) - 3
    buf = np.empty_like(src)
    algo.reduce(buf, op, MPI.COMM_SELF, src=src)
    np.testing.assert_array_equal(buf, src)
    algo.reduce(buf, op, MPI.COMM_SELF)  # in place
    np.testing.assert_array_equal(buf, src)


def test_the_caller_asks_capabilities_not_names() -> None:
    class Plain(Algorithm):
        name = "plain-test"
        team_safe = False
        single_node = False
        shortcuts = False

        def __init__(self) -> None:
            self.calls = 0

        def reduce(self, buf: Any, op: str, comm: Any, *, src: Any = None) -> None:
            self.calls += 1
            if src is not None:
                np.copyto(buf, src)

    plain = Plain()
    x = np.ones(5, dtype=np.float32)
    np.testing.assert_array_equal(allreduce(x, comm=MPI.COMM_SELF, algorithm=plain), x)
    assert plain.calls == 1  # no shortcut taken: reduce() ran
    with pytest.raises(InvalidValueError, match="team"):
        allreduce_async(x, comm=MPI.COMM_SELF, algorithm=plain)


def test_an_algorithm_without_reduce_cannot_be_made() -> None:
    class Incomplete(Algorithm):
        name = "incomplete"

    with pytest.raises(TypeError, match="reduce"):
        Incomplete()
