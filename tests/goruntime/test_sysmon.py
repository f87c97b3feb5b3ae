"""sysmon: preemption marks honoured at the next runtime call, long runs counted, backoff."""

import socket
import threading
import time

import pytest

import goruntime as rt
from tests.goruntime.support import go_ping_pong, until

pytestmark = pytest.mark.timeout(60)


def test_long_running_g_is_preempted_at_its_next_runtime_call():
    """procs=1: a G looping on non-blocking channel ops yields after ~10 ms."""

    async def main():
        state = {"done": False, "loops": 0}
        c = rt.Chan(1)

        async def hog():
            while not state["done"]:
                await c.send(1)  # fast paths: never park
                await c.recv()
                state["loops"] += 1

        rt.go(hog)
        t0 = time.monotonic()
        await rt.sleep(0.001)  # the hog runs; main's timer fires only when the hog yields
        state["done"] = True
        return time.monotonic() - t0, state["loops"], rt.stats()

    dt, loops, st = rt.run(main(), procs=1)
    assert loops > 0
    assert dt < 5.0  # unpreempted, main would wait forever
    assert st["long_runs"] >= 1
    assert st["preemptions"] >= 1


def test_select_default_spinner_is_preempted(procs):
    """A G polling with select-default never parks; sysmon marks it after a time slice and
    it yields at its next select. procs=1: main runs again only because of that; procs=2:
    main waits on the other P until the preemption is counted."""

    async def main():
        done, res = rt.Chan(), rt.Chan(1)

        async def spinner():
            n = 0
            while True:
                i, _, _ = await rt.select(rt.recv(done), default=True)
                if i == 0:
                    await res.send(n)
                    return
                n += 1

        rt.go(spinner)
        await rt.sleep(0.001)
        try:
            await until(lambda: rt.stats()["preemptions"] > 0, timeout=10.0)
        finally:
            done.close()  # procs=2: the spinner stops even if it was never preempted
        return await res.recv(), rt.stats()["preemptions"]

    spins, preemptions = rt.run(main(), procs=procs)
    assert spins > 0
    assert preemptions > 0


def test_g_that_never_awaits_cannot_be_preempted_but_its_long_run_is_counted():
    async def main():
        order = []

        async def cpu():
            end = time.monotonic() + 0.25  # sysmon needs the GIL twice, 10 ms apart
            while time.monotonic() < end:
                pass
            order.append(("cpu done", time.monotonic()))

        async def other():
            order.append(("other", time.monotonic()))

        rt.go(other)
        rt.go(cpu)  # runnext: runs first, never yields
        await rt.sleep(0.4)
        return order, rt.stats()["long_runs"]

    order, long_runs = rt.run(main(), procs=1)
    assert [name for name, _ in order] == ["cpu done", "other"]
    assert long_runs >= 1


def test_sysmon_sleeps_while_every_p_is_idle(procs):
    """Go's sysmonwait: no ticks while nothing runs, only a wakeup for the next timer."""

    async def main():
        await rt.sleep(0.01)  # sysmon has settled
        w0 = rt.stats()["sysmon_wakeups"]
        await rt.sleep(0.3)
        return rt.stats()["sysmon_wakeups"] - w0

    assert rt.run(main(), procs=procs) <= 3  # ticking at 10 ms, it would be 30


async def _idle_until_a_byte_arrives(after: float) -> None:
    """Park on a socket (every P idle, no timer: sysmon sleeps) until a thread writes to it."""
    a, b = socket.socketpair()
    conn = rt.net.Conn(a)

    def write_later():
        time.sleep(after)
        b.send(b"x")
        b.close()

    t = threading.Thread(target=write_later)
    t.start()
    assert await conn.read(1) == b"x"
    conn.close()
    t.join()


def test_a_syscall_wakes_an_idle_sysmon_to_hand_the_p_off():
    """procs=1: a G blocks in a syscall right after every P was idle, and sysmon still
    retakes its P so that another G runs meanwhile (Go's entersyscall wakes sysmon)."""

    async def main():
        await _idle_until_a_byte_arrives(0.05)
        ran = []

        async def other():
            ran.append(time.monotonic())

        rt.go(other)  # in runnext, behind the syscall
        t0 = time.monotonic()
        await rt.syscall(time.sleep, 0.5)
        return ran[0] - t0 if ran else None, rt.stats()["handoffs"]

    waited, handoffs = rt.run(main(), procs=1)
    assert handoffs >= 1
    assert waited is not None and waited < 0.4


def test_sustained_work_after_idling_wakes_sysmon():
    """procs=1: sysmon sleeps (every P idle, no timer); then a ping-pong pair runs, which
    only sysmon can end. Its parks poke sysmon awake, so a G waiting in the global queue
    runs within a few time slices, not after sysmon's longest sleep (1 s)."""

    async def main():
        state = {"done": None}

        async def waiter():
            state["done"] = time.monotonic()

        def spawn_waiter_later():
            time.sleep(0.02)
            rt.go(waiter)  # from outside the run: to the global queue

        await _idle_until_a_byte_arrives(0.05)
        t0 = time.monotonic()
        go_ping_pong(lambda: state["done"] is None)
        t = threading.Thread(target=spawn_waiter_later)
        t.start()
        while state["done"] is None:
            await rt.gosched()
        t.join()
        return state["done"] - t0, rt.stats()["long_runs"]

    took, long_runs = rt.run(main(), procs=1)
    assert long_runs >= 1
    assert took < 0.5


def test_g_in_runnext_behind_a_cpu_hog_is_stolen_by_another_m():
    """procs=2: G2 readied into runnext by a G that then never yields runs on the other M."""

    async def main():
        c = rt.Chan()
        res = rt.Chan(2)

        async def g2():
            await c.recv()
            await res.send(("g2", time.monotonic()))

        async def hog():
            await rt.sleep(0.01)  # g2 is parked on c by now
            await c.send(1)  # g2 -> this P's runnext; we keep the P
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                pass
            await res.send(("hog", time.monotonic()))

        rt.go(g2)
        rt.go(hog)
        return [await res.recv(), await res.recv()]

    got = rt.run(main(), procs=2)
    assert [name for name, _ in got] == ["g2", "hog"]
