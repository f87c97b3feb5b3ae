"""The netpoller: epoll + pollDesc read/write semaphores, netpoll_break, deadlines, evict."""

from __future__ import annotations

import random
import socket
import threading
import time

import pytest

import goruntime as rt
from goruntime import netpoll, proc
from goruntime.net import Conn
from goruntime.netpoll import ErrNetClosing, Netpoller, Timeout, pdReady

pytestmark = pytest.mark.timeout(60)


async def _with_deadline(ch: rt.Chan, seconds: float, what: str):
    """Receive from ch, or fail the test (instead of hanging) if nothing comes in time."""
    i, v, _ = await rt.select(rt.recv(ch), rt.recv(rt.after(seconds)))
    assert i == 0, f"{what}: nothing after {seconds}s (lost wakeup?)"
    return v


def test_many_gs_random_sizes_no_lost_wakeup(procs):
    # 16 socketpairs; on each, a writer G writes random-sized chunks (1 B .. 256 KiB, so both
    # reads and writes park on EAGAIN) and an echo G writes them back; a reader G checks every
    # byte. Thousands of parks and wakeups; one lost wakeup hangs a pair and fails the test.
    pairs, rounds = 16, 150

    async def main():
        rng = random.Random(7)
        done = rt.Chan(pairs)

        async def echo(c: Conn) -> None:
            while data := await c.read(65536):
                await c.write(data)
            c.close()

        async def writer(c: Conn, chunks: list[bytes]) -> None:
            for b in chunks:
                await c.write(b)

        async def reader(c: Conn, want: bytes) -> None:
            got = bytearray()
            while len(got) < len(want):
                data = await c.read(rng.choice([1, 100, 4096, 65536]))
                assert data, "unexpected EOF"
                got += data
            assert got == want
            c.close()
            await done.send(len(got))

        for k in range(pairs):
            a, b = socket.socketpair()
            ca, cb = Conn(a), Conn(b)
            chunks = [bytes([k]) * rng.choice([1, 7, 1000, 70000, 262144]) for _ in range(rounds)]
            rt.go(echo, cb)
            rt.go(writer, ca, chunks)
            rt.go(reader, ca, b"".join(chunks))
        total = 0
        for _ in range(pairs):
            total += await _with_deadline(done, 45, "socketpair echo")
        return total

    assert rt.run(main(), procs=procs) > pairs * rounds


def test_event_before_park_is_not_lost(procs):
    # Readiness recorded while nobody waits (pdReady) makes the next wait return at once.
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        pd = c.pd
        assert pd.unblock("r", True) is None  # nobody waiting: just remember it
        assert pd.rg is pdReady
        await pd.wait("r")  # must not park: nothing would ever wake it
        assert pd.rg is None
        c.close()
        b.close()
        return True

    assert rt.run(main(), procs=procs)


def test_a_parked_g_is_woken_once(procs):
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        pd = c.pd
        parked = rt.Chan(1)
        woke = rt.Chan(3)

        async def waiter():
            await parked.send(None)
            await pd.wait("r")
            await woke.send(1)

        rt.go(waiter)
        await parked.recv()
        while not isinstance(pd.rg, proc.G):  # until its commit ran (None -> G)
            await rt.sleep(0.001)
        assert pd.poller.waiting() == 1
        g1 = pd.unblock("r", True)
        g2 = pd.unblock("r", True)  # a second event before the G ran
        assert isinstance(g1, proc.G) and g2 is None
        assert pd.rg is pdReady and pd.poller.waiting() == 0
        proc.goready(g1, True)  # as netpoll does: the wakeup value says "I/O ready"
        assert await _with_deadline(woke, 5, "woken waiter") == 1
        await rt.sleep(0.05)
        assert woke.len() == 0
        c.close()
        b.close()
        return True

    assert rt.run(main(), procs=procs)


def test_event_between_wait_and_commit_resumes_the_g_at_once(procs):
    # The G has decided to park (wait() returned gopark) but is not parked yet when the
    # event arrives: the commit must see pdReady and not park (a lost wakeup otherwise).
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        pd = c.pd
        aw = pd.wait("r")  # the G announces its wait...
        assert pd.unblock("r", True) is None  # ...an event arrives before it parks...
        assert pd.rg is pdReady
        await aw  # ...and the commit resumes it at once, consuming the event
        assert pd.rg is None and pd.poller.waiting() == 0
        c.close()
        b.close()
        return True

    assert rt.run(main(), procs=procs)


def test_close_between_wait_and_commit_resumes_the_g(procs):
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        aw = c.pd.wait("r")
        c.pd.evict()  # closing before the G parked: it must not park forever
        await aw
        with pytest.raises(ErrNetClosing):
            await c.pd.wait("r")
        c.close()
        b.close()
        return True

    assert rt.run(main(), procs=procs)


def test_netpoll_break_wakes_a_blocked_poll():
    np = Netpoller()
    try:
        out: list = []
        t = threading.Thread(target=lambda: out.append(np.netpoll(-1)))
        t.start()
        time.sleep(0.05)
        np.netpoll_break()
        t.join(5)
        assert not t.is_alive(), "netpoll(-1) was not woken by netpoll_break"
        assert out == [[]]
    finally:
        np.close()


def test_netpoll_break_is_coalesced_and_drained_by_a_blocking_poll():
    np = Netpoller()
    try:
        for _ in range(3):
            np.netpoll_break()
        assert np.netpoll(0) == []  # a non-blocking poll leaves the wakeup in place
        assert np.wakesig is True
        t0 = time.monotonic()
        assert np.netpoll(-1) == []  # returns at once: the wakeup is pending
        assert time.monotonic() - t0 < 1.0
        assert np.wakesig is False
        # Three breaks made one eventfd write, now drained: this poll runs its full delay.
        t0 = time.monotonic()
        assert np.netpoll(0.05) == []
        assert time.monotonic() - t0 >= 0.04
    finally:
        np.close()


def test_netpoll_delay_zero_does_not_block():
    np = Netpoller()
    try:
        t0 = time.monotonic()
        assert np.netpoll(0) == []
        assert time.monotonic() - t0 < 1.0
    finally:
        np.close()


def test_read_deadline_fires_and_can_be_cleared(procs):
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        t0 = time.monotonic()
        c.set_read_deadline(t0 + 0.1)
        with pytest.raises(Timeout, match="i/o timeout"):
            await c.read(10)
        waited = time.monotonic() - t0
        # Expired: fails at once, without parking, until cleared.
        with pytest.raises(Timeout):
            await c.read(10)
        c.set_read_deadline(None)
        b.send(b"hi")
        assert await c.read(10) == b"hi"
        # A deadline in the past times out at once.
        c.set_read_deadline(time.monotonic() - 1)
        with pytest.raises(Timeout):
            await c.read(10)
        c.close()
        b.close()
        return waited

    waited = rt.run(main(), procs=procs)
    assert 0.09 <= waited < 5


def test_deadline_set_while_parked_wakes_the_reader(procs):
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        res = rt.Chan(1)

        async def reader():
            try:
                await c.read(10)
                await res.send("read")
            except Timeout:
                await res.send("timeout")

        rt.go(reader)
        await rt.sleep(0.05)  # the reader is parked with no deadline
        c.set_read_deadline(time.monotonic() - 1)
        v = await _with_deadline(res, 5, "reader after deadline")
        c.close()
        b.close()
        return v

    assert rt.run(main(), procs=procs) == "timeout"


def test_write_deadline_fires_when_the_peer_does_not_read(procs):
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        c.set_write_deadline(time.monotonic() + 0.1)
        with pytest.raises(Timeout):
            await c.write(b"x" * (16 << 20))
        c.close()
        b.close()
        return True

    assert rt.run(main(), procs=procs)


def test_close_wakes_parked_reader_and_writer(procs):
    async def main():
        a, b = socket.socketpair()
        ra, rb = socket.socketpair()
        cr, cw = Conn(a), Conn(ra)
        errs = rt.Chan(2)

        async def reader():
            try:
                await cr.read(10)
            except ErrNetClosing as e:
                await errs.send(str(e))

        async def writer():
            try:
                await cw.write(b"x" * (16 << 20))
            except ErrNetClosing as e:
                await errs.send(str(e))

        rt.go(reader)
        rt.go(writer)
        await rt.sleep(0.1)
        assert cr.pd.poller.waiting() == 2
        cr.close()
        cw.close()
        got = [await _with_deadline(errs, 5, "closed conn") for _ in range(2)]
        assert cr.pd.poller.waiting() == 0
        b.close()
        rb.close()
        return got

    assert rt.run(main(), procs=procs) == ["use of closed network connection"] * 2


def test_deadlock_check_counts_gs_parked_on_io(procs):
    # main parks on a channel that a G blocked in read will feed: not a deadlock while the G
    # waits on the fd; a plain thread supplies the bytes much later.
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        out = rt.Chan(0)

        async def reader():
            await out.send(await c.read(10))

        rt.go(reader)
        threading.Timer(0.3, b.send, (b"late",)).start()
        v = await out.recv()
        c.close()
        b.close()
        return v

    assert rt.run(main(), procs=procs) == b"late"


def test_net_outside_run_is_an_error():
    a, b = socket.socketpair()
    try:
        with pytest.raises(RuntimeError, match="rt.run"):
            netpoll.poll_open(a.fileno())
    finally:
        a.close()
        b.close()


def test_changing_one_deadline_keeps_the_other(procs):
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        c.set_deadline(time.monotonic() + 0.1)  # read and write: one timer
        c.set_read_deadline(None)  # the write deadline must still fire
        await rt.sleep(0.2)
        with pytest.raises(Timeout):
            await c.write(b"x")
        b.send(b"r")
        assert await c.read(1) == b"r"
        c.close()
        b.close()
        return True

    assert rt.run(main(), procs=procs)
