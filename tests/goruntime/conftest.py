"""Every goruntime test that takes ``procs`` runs with procs=1 and procs=2, and once more with
procs=1 where an idle M sleeps by the general path (``proc.sleepm``) instead of the one-P
copy (``proc.sleepm_onep``): the copy must behave as the general path does."""

import threading

import pytest

from goruntime import proc


@pytest.fixture(params=[1, 2, "1-sleepm"], ids=["procs1", "procs2", "procs1-sleepm"])
def procs(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> int:
    if request.param == "1-sleepm":
        monkeypatch.setattr(proc, "sleepm_onep", proc.sleepm)
        return 1
    return request.param


@pytest.fixture(autouse=True)
def no_runtime_threads_left():
    """After each test no M or sysmon thread of goruntime is alive."""
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("goruntime-")]
    assert left == [], f"goruntime threads still alive after the test: {left}"
