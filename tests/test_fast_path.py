"""The cached small-call path of the allreduce (``workbench.comm._fast``), in process.

Its protocol on several ranks (mismatches and stalls against the general path, a rank that
dies) is checked under ``mpiexec`` by ``tests/test_allreduce.py``; here: what is cached,
under which key, and that a cached call gives what the general path gives.
"""

from __future__ import annotations

import numpy as np
import pytest

from workbench import _spans
from workbench.comm import _fast
from workbench.comm.allreduce import allreduce
from workbench.errors import InvalidValueError


@pytest.fixture(autouse=True)
def empty_cache():
    _fast._plans.clear()
    yield
    _fast._plans.clear()


def test_a_call_shape_is_cached_after_its_first_general_call_and_gives_the_same():
    x = np.arange(6, dtype=np.float32).reshape(2, 3)
    first = allreduce(x)
    assert len(_fast._plans) == 1
    (call,) = _fast._plans.values()
    assert isinstance(call, _fast.Copy)  # one rank: the reduction is a copy
    again = allreduce(x)
    assert again is not x and again.shape == x.shape
    np.testing.assert_array_equal(again, first)
    out = np.empty_like(x)
    assert allreduce(x, out=out) is out and allreduce(x, out=out) is out
    np.testing.assert_array_equal(out, x)
    assert allreduce(x, out=x) is x
    assert len(_fast._plans) == 3  # new output, another output, in place: three shapes


def test_the_key_tells_apart_op_dtype_layout_arguments_and_environment(monkeypatch):
    x = np.ones(4)
    keys = {
        _fast.key(x, "sum", None, None, None, None, None),
        _fast.key(x, "max", None, None, None, None, None),
        _fast.key(x.astype(np.float32), "sum", None, None, None, None, None),
        _fast.key(np.ones((2, 2)), "sum", None, None, None, None, None),
        _fast.key(np.ones(8)[::2], "sum", None, None, None, None, None),
        _fast.key(x, "sum", None, None, "ring", None, None),
        _fast.key(x, "sum", None, None, None, False, None),
        _fast.key(x, "sum", None, x, None, None, None),
        _fast.key(x, "sum", None, np.ones(4), None, None, None),
        _fast.key(x, "sum", None, np.ones(4, np.float32), None, None, None),
    }
    assert len(keys) == 10
    # the environment is not in the key: a change of it empties the cache
    k = _fast.key(x, "sum", None, None, None, None, None)
    _fast.remember(k, _fast.Copy())
    assert _fast.key(x, "sum", None, None, None, None, None) == k and k in _fast._plans
    monkeypatch.setenv("WORKBENCH_ALLREDUCE_CHECK", "0")
    assert _fast.key(x, "sum", None, None, None, None, None) == k and _fast._plans == {}
    readonly = np.ones(4)
    readonly.flags.writeable = False
    assert _fast.key(x, "sum", None, readonly, None, None, None) is None
    assert _fast.key(x, "sum", None, [1, 2], None, None, None) is None


def test_what_the_general_path_refuses_is_never_cached():
    with pytest.raises(TypeError, match="mean"):
        allreduce(np.ones(3, np.int64), op="mean")
    with pytest.raises(TypeError, match="mean"):
        allreduce(np.ones(3, np.int64), op="mean")
    with pytest.raises(InvalidValueError, match="unknown op"):
        allreduce(np.ones(3), op="prod")
    allreduce(np.ones(3, np.float16))  # float16 is reduced in float32: not on this path
    allreduce(np.ones(8)[::2])  # not contiguous
    assert _fast._plans == {}


def test_a_recorded_timeline_takes_the_general_path_with_its_spans():
    x = np.ones(5)
    allreduce(x)
    _spans.start()
    try:
        allreduce(x)
    finally:
        _spans.stop()
    names = [s[2] for s in _spans.take().spans]
    assert "allreduce" in names


def test_read_only_in_place_is_never_cached_and_symmetric_buffers_keep_their_protocol():
    from workbench.comm import empty

    x = np.ones(4)
    allreduce(x, out=x)
    allreduce(x, out=x)
    assert len(_fast._plans) == 1
    x.flags.writeable = False
    for _ in range(2):
        with pytest.raises(TypeError, match="is read-only"):
            allreduce(x, out=x)  # the general path's error, every time
    buf = empty(4, np.float64)
    buf[:] = 2
    for _ in range(3):
        assert allreduce(buf, out=buf) is buf
    assert (buf == 2).all()
    assert len(_fast._plans) == 2  # a symmetric buffer keeps its own zero-copy protocol
    k = _fast.key(buf, "sum", None, buf, None, None, None)
    assert type(_fast.lookup(k)) is _fast.SymmetricCall
    plain = buf.copy()  # the same call on a private array: another key (SmallCall or Copy)
    assert k != _fast.key(plain, "sum", None, plain, None, None, None)
