"""The ipyparallel adapter (workbench/pool/_ipp.py) on a real pool: each reading of
ipyparallel internals agrees with its public fallback, and failed tasks are classified by
ipyparallel's own exception types."""

from __future__ import annotations

import time
import types

import pytest
from ipyparallel import error as ipp_error

from workbench.pool import Failure, _ipp, classify_failure, failure_details


def _sleep(seconds: float) -> float:
    import time

    time.sleep(seconds)
    return seconds


def _sleep_marked(path: str, seconds: float) -> None:
    """Sleep ``seconds`` once ``path`` says the task began."""
    import pathlib
    import time

    pathlib.Path(path).touch()
    time.sleep(seconds)


def _fail() -> None:
    raise ValueError("bad value on the engine")


def _wait_until(condition, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.05)


def test_child_metadata_private_and_public_paths_agree(live_pool):
    ar = live_pool.view([0, 1]).apply_async(_sleep, 0.5)
    # while it runs, the client's own record (updated live), not a copy
    assert _ipp.child_metadata(ar)[0] is live_pool.client.metadata[ar.msg_ids[0]]
    ar.get(timeout=30)
    private = _ipp.child_metadata(ar)
    public_only = types.SimpleNamespace(metadata=ar.metadata)  # no _metadata: the fallback
    public = _ipp.child_metadata(public_only)
    assert [m["engine_id"] for m in private] == [m["engine_id"] for m in public]
    single = live_pool.client[live_pool.engines[0].engine_id].apply_async(_sleep, 0.0)
    single.get(timeout=30)
    assert len(_ipp.child_metadata(types.SimpleNamespace(metadata=single.metadata))) == 1


def test_outstanding_requests_private_and_public_paths_agree(live_pool):
    client = live_pool.client
    busy_engine = live_pool.engines[1].engine_id
    ar = client[busy_engine].apply_async(_sleep, 1.5)
    try:  # (the controller lists a task once it has passed it on)
        _wait_until(lambda: client.queue_status(verbose=True)[busy_engine]["queue"])
        private = _ipp.engines_with_outstanding_requests(client)
        public_only = types.SimpleNamespace(
            outstanding=client.outstanding, queue_status=client.queue_status
        )
        public = _ipp.engines_with_outstanding_requests(public_only)
        assert private == public == {busy_engine}
    finally:
        ar.get(timeout=30)
    assert _ipp.engines_with_outstanding_requests(client) == set()


def test_ping_answers_for_live_engines(live_pool):
    ids = [e.engine_id for e in live_pool.engines]
    assert _ipp.ping(live_pool.client, ids, timeout=5.0) == set(ids)
    assert _ipp.ping(live_pool.client, [10_000], timeout=0.5) == set()  # not registered


def test_a_task_error_is_raised_with_its_details(live_pool):
    ar = live_pool.view([0]).apply_async(_fail)
    _wait_until(ar.ready)
    exc = ar.get(timeout=0, return_exceptions=True)[0]
    assert classify_failure(exc) is Failure.RAISED
    ename, evalue, trace, eid = failure_details(exc)
    assert (ename, evalue, eid) == ("ValueError", "bad value on the engine",
                                    live_pool.engines[0].engine_id)  # fmt: skip
    assert "_fail" in trace
    assert failure_details(OSError("local")) == ("OSError", "local", "", -1)


def test_an_interrupted_task_is_classified_interrupted(live_pool, tmp_path):
    began = tmp_path / "began"
    ar = live_pool.view([1]).apply_async(_sleep_marked, str(began), 30.0)
    _wait_until(began.exists)
    live_pool.interrupt([1])
    _wait_until(ar.ready)
    exc = ar.get(timeout=0, return_exceptions=True)[0]
    assert classify_failure(exc) is Failure.INTERRUPTED


def test_a_task_dropped_before_it_began_is_classified_aborted(live_pool, tmp_path):
    began = tmp_path / "began"
    running = live_pool.view([2]).apply_async(_sleep_marked, str(began), 30.0)
    queued = live_pool.view([2]).apply_async(_sleep, 0.0)
    _wait_until(began.exists)
    live_pool.interrupt([2], pending=[queued])
    _wait_until(lambda: running.ready() and queued.ready())
    exc = queued.get(timeout=0, return_exceptions=True)
    exc = exc[0] if isinstance(exc, list) else exc
    assert classify_failure(exc) is Failure.ABORTED


@pytest.mark.parametrize("raised", [ipp_error.EngineError, ipp_error.TaskAborted])
def test_wrapped_ipyparallel_errors_keep_their_kind(raised):
    """What a client receives is ipyparallel's own wrapping (wrap/unwrap_exception) of the
    error the hub or engine raised: a RemoteError that carries only the name."""
    try:
        raise raised("as the hub reports it")
    except raised:
        content = ipp_error.wrap_exception()
    wrapped = ipp_error.unwrap_exception(content)
    expected = Failure.ENGINE_DIED if raised is ipp_error.EngineError else Failure.ABORTED
    assert isinstance(wrapped, ipp_error.RemoteError)
    assert classify_failure(wrapped) is classify_failure(raised("direct")) is expected
    assert classify_failure(KeyboardInterrupt()) is Failure.INTERRUPTED
    assert classify_failure(RuntimeError("x")) is Failure.RAISED


def test_a_failed_cell_does_not_abort_the_next_one(live_pool):
    """ipykernel aborts what reaches an engine while it handles a failed execute_request
    (stop_on_error); a pool's cells ask it not to, so a cell sent right behind a failing
    one runs on every rank (after a Ctrl-C, under load, the next cell was TaskAborted on
    some ranks). Here the second cell is queued before the first fails: with ipykernel's
    default it is aborted every time (the first assertion shows it)."""
    failing = "import time\ntime.sleep(0.5)\n1 / 0"
    view = live_pool.view()
    view.execute(failing, silent=False, block=False)
    default = view.execute("after = -1", silent=False, block=False)
    assert {classify_failure(e) for e in default.get(timeout=30, return_exceptions=True)} == {
        Failure.ABORTED
    }
    _ipp.execute(view, failing)
    ours = _ipp.execute(view, "after = rank")
    ours.get(timeout=30)  # raises if any rank dropped it
    assert view.pull("after", block=True) == list(range(live_pool.size))


def test_execute_falls_back_to_the_public_call(live_pool):
    view = live_pool.view([0])
    public_only = types.SimpleNamespace(
        client=types.SimpleNamespace(), targets=view.targets, label=None, execute=view.execute
    )
    _ipp.execute(public_only, "fallback = 1").get(timeout=30)
    assert live_pool.view([0]).pull("fallback", block=True) == [1]
