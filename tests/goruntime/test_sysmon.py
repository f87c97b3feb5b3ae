"""sysmon: preemption marks honoured at the next runtime call, long runs counted, backoff."""

import time

import pytest

import goruntime as rt
from tests.goruntime.support import until

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


def test_sysmon_backs_off_when_idle(procs):
    async def main():
        w0 = rt.stats()["sysmon_wakeups"]
        await rt.sleep(0.3)
        return rt.stats()["sysmon_wakeups"] - w0

    # 20 us ticks for ~1 ms, then doubling to 10 ms: far fewer than one per ms.
    assert rt.run(main(), procs=procs) < 150


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
