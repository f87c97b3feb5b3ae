"""bench.netstat: the kernel's listen-queue counters, read and differenced.

The counters are machine-wide: other listeners can only add to them, so a delta is checked
against a lower bound the test itself causes.
"""

from __future__ import annotations

import socket
import time

import pytest

from bench import netstat

pytestmark = pytest.mark.timeout(60)

BURST = 16  # connects to a listener that never accepts
BACKLOG = 1  # Linux queues backlog + 1 finished connections, so BURST - 2 cannot fit


def _burst(port: int) -> list[socket.socket]:
    socks = []
    for _ in range(BURST):
        s = socket.socket()
        s.setblocking(False)
        s.connect_ex(("127.0.0.1", port))
        socks.append(s)
    return socks


def test_a_listen_queue_overflow_is_counted():
    """Every connect that finds the accept queue full is dropped at least once (its SYN or
    its final ACK): at least BURST - BACKLOG - 1 drops, each an overflow."""
    lst = socket.socket()
    lst.bind(("127.0.0.1", 0))
    lst.listen(BACKLOG)
    before = netstat.read()
    socks = _burst(lst.getsockname()[1])
    try:
        want = BURST - BACKLOG - 1
        deadline = time.monotonic() + 10
        while True:
            d = netstat.delta(before, netstat.read())
            if d["ListenOverflows"] >= want or time.monotonic() > deadline:
                break
            time.sleep(0.02)
    finally:
        for s in socks:
            s.close()
        lst.close()
    assert d["ListenOverflows"] >= want, d
    assert d["ListenDrops"] >= want, d  # every drop at a listener, overflows included


def test_delta_is_after_minus_before_and_none_where_a_side_is_missing():
    before = {"ListenOverflows": 5, "ListenDrops": None}
    after = {"ListenOverflows": 8, "ListenDrops": 3}
    assert netstat.delta(before, after) == {"ListenOverflows": 3, "ListenDrops": None}


def test_read_takes_the_tcpext_fields_and_none_for_what_is_missing(tmp_path):
    f = tmp_path / "netstat"
    f.write_text("TcpExt: SyncookiesSent ListenOverflows\nTcpExt: 4 17\n"
                 "IpExt: InNoRoutes\nIpExt: 0\n")
    assert netstat.read(str(f)) == {"ListenOverflows": 17, "ListenDrops": None}
    assert netstat.read(str(tmp_path / "missing")) == {"ListenOverflows": None,
                                                       "ListenDrops": None}
