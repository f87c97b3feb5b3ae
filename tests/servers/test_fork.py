"""The fork server: a child per connection, reaped; none outlives the server."""

from __future__ import annotations

import signal
import time

import psutil
import pytest

from tests.servers.support import roundtrip


def _children(pid: int) -> list[psutil.Process]:
    try:
        return psutil.Process(pid).children()
    except psutil.NoSuchProcess:
        return []


def _states(procs: list[psutil.Process]) -> list[str]:
    states = []
    for p in procs:
        try:
            states.append(p.status())
        except psutil.NoSuchProcess:
            pass
    return states


@pytest.mark.timeout(180)
def test_1000_short_connections_leave_no_zombie_and_no_descriptor(launch):
    server = launch(["fork", "--port", "0"])
    with server.connect() as c:
        assert roundtrip(c, b"warm") == b"warm"
    time.sleep(0.3)
    fds_before = server.ps.num_fds()
    most_zombies = 0
    for i in range(1000):
        with server.connect() as c:
            assert roundtrip(c, b"%d" % i) == b"%d" % i
        if i % 100 == 99:
            most_zombies = max(most_zombies, _states(_children(server.pid)).count("zombie"))
    deadline = time.monotonic() + 10
    while _children(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _states(_children(server.pid)) == []
    assert most_zombies < 50, f"{most_zombies} zombies at once: children are not reaped"
    assert server.ps.num_fds() == fds_before, "the parent kept copies of connections"


def test_each_connection_is_served_by_its_own_child(launch):
    server = launch(["fork", "--port", "0"])
    conns = [server.connect() for _ in range(3)]
    for c in conns:
        assert roundtrip(c, b"hi") == b"hi"
    time.sleep(0.2)
    assert len(_children(server.pid)) == 3
    for c in conns:
        c.close()
    deadline = time.monotonic() + 5
    while _children(server.pid) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert _children(server.pid) == []


@pytest.mark.timeout(60)
def test_children_die_with_a_sigkilled_parent(launch):
    server = launch(["fork", "--port", "0"])
    conns = [server.connect() for _ in range(3)]
    for c in conns:
        assert roundtrip(c, b"hi") == b"hi"
    time.sleep(0.2)
    children = _children(server.pid)
    assert len(children) == 3
    server.proc.send_signal(signal.SIGKILL)
    server.proc.wait(10)
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        alive = [s for s in _states(children) if s != "zombie"]
        if not alive:
            break
        time.sleep(0.05)
    assert alive == [], "children outlived their SIGKILLed parent"
    for c in conns:
        c.close()
