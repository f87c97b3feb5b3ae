"""Every goruntime test that takes ``procs`` runs once with procs=1 and once with procs=2."""

import threading

import pytest


@pytest.fixture(params=[1, 2], ids=["procs1", "procs2"])
def procs(request: pytest.FixtureRequest) -> int:
    return request.param


@pytest.fixture(autouse=True)
def no_runtime_threads_left():
    """After each test no M or sysmon thread of goruntime is alive."""
    yield
    left = [t.name for t in threading.enumerate() if t.name.startswith("goruntime-")]
    assert left == [], f"goruntime threads still alive after the test: {left}"
