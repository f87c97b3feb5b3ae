"""Timers: sleep, after, Timer (stop/reset), Ticker, and the internal addtimer API."""

import time

import pytest

import goruntime as rt
from goruntime import proc

pytestmark = pytest.mark.timeout(60)


def test_sleep_lasts_at_least_the_duration(procs):
    async def main():
        t0 = time.monotonic()
        await rt.sleep(0.05)
        return time.monotonic() - t0

    assert rt.run(main(), procs=procs) >= 0.05


def test_sleep_zero_or_negative_returns_at_once(procs):
    async def main():
        await rt.sleep(0)
        await rt.sleep(-1)
        return "ok"

    assert rt.run(main(), procs=procs) == "ok"


def test_sleepers_wake_in_deadline_order(procs):
    async def main():
        out = rt.Chan(10)

        async def s(d):
            deadline = time.monotonic() + d
            await rt.sleep(d)
            await out.send((deadline, time.monotonic()))

        for d in (0.06, 0.02, 0.04, 0.01, 0.05):
            rt.go(s, d)
        return [await out.recv() for _ in range(5)]

    got = rt.run(main(), procs=procs)
    assert all(woke >= deadline for deadline, woke in got)
    # Woken in deadline order (each G's deadline counts from when it started sleeping).
    assert [d for d, _ in got] == sorted(d for d, _ in got)


def test_after_delivers_one_value_after_the_duration(procs):
    async def main():
        t0 = time.monotonic()
        c = rt.after(0.03)
        v = await c.recv()
        return v - t0, c.cap(), c.len()

    dt, cap, ln = rt.run(main(), procs=procs)
    assert dt >= 0.03 and cap == 1 and ln == 0


def test_timer_stop_prevents_firing_and_reports_whether_it_was_pending(procs):
    async def main():
        t = rt.Timer(0.03)
        first = t.stop()
        second = t.stop()
        i, _, _ = await rt.select(rt.recv(t.C), rt.recv(rt.after(0.08)))
        return first, second, i

    assert rt.run(main(), procs=procs) == (True, False, 1)


def test_timer_reset_moves_the_deadline(procs):
    async def main():
        t0 = time.monotonic()
        t = rt.Timer(0.01)
        assert t.reset(0.08) is True
        v = await t.C.recv()
        return v - t0

    assert rt.run(main(), procs=procs) >= 0.08


def test_after_func_runs_in_a_new_goroutine(procs):
    async def main():
        c = rt.Chan()

        async def f(x):
            await c.send(x)

        rt.after_func(0.01, f, "fired")
        return await c.recv()

    assert rt.run(main(), procs=procs) == "fired"


def test_ticker_ticks_periodically_until_stopped(procs):
    async def main():
        t0 = time.monotonic()
        tk = rt.Ticker(0.02)
        ticks = [await tk.C.recv() - t0 for _ in range(4)]
        tk.stop()
        i, _, _ = await rt.select(rt.recv(tk.C), rt.recv(rt.after(0.06)))
        return ticks, i

    ticks, i = rt.run(main(), procs=procs)
    assert ticks[0] >= 0.02 and ticks[3] >= 0.08
    assert ticks == sorted(ticks)
    assert i == 1  # no tick after stop


def test_ticker_rejects_non_positive_interval(procs):
    async def main():
        try:
            rt.Ticker(0)
        except rt.Panic as e:
            return str(e)

    assert rt.run(main(), procs=procs) == "non-positive interval for NewTicker"


def test_addtimer_internal_api_runs_f_in_scheduler_context(procs):
    async def main():
        fired = []
        g = proc.getg()

        def f(arg):
            fired.append((arg, proc.getg()))
            proc.goready(g, arg)

        t = proc.addtimer(time.monotonic() + 0.01, f, "a")
        v = await proc.gopark(None, None, "test")
        t2 = proc.addtimer(time.monotonic() + 10, f, "never")
        assert t2.stop() is True and t2.stop() is False
        t3 = proc.addtimer(time.monotonic() + 10, f, "b")
        assert proc.modtimer(t3, time.monotonic() + 0.01) is True
        v3 = await proc.gopark(None, None, "test")
        return v, v3, fired, t.stop()

    v, v3, fired, stopped = rt.run(main(), procs=procs)
    assert (v, v3) == ("a", "b")
    assert fired == [("a", None), ("b", None)]  # not inside a G
    assert stopped is False


def test_idle_m_wakes_for_an_earlier_timer_added_while_it_sleeps(procs):
    """A long timer is pending; a G readied from another thread adds a short one."""

    async def main():
        long = rt.after(5)
        short_done = rt.Chan(1)

        async def shorty():
            await rt.sleep(0.02)
            await short_done.send(time.monotonic())

        t0 = time.monotonic()
        rt.after_func(0.01, shorty)
        i, v, _ = await rt.select(rt.recv(long), rt.recv(short_done))
        return i, v - t0

    i, dt = rt.run(main(), procs=procs)
    assert i == 1 and dt < 3.0  # the long timer is 5 s


def test_pending_timer_is_not_a_deadlock_but_stopped_one_is(procs):
    async def main():
        t = rt.Timer(10)
        t.stop()
        await t.C.recv()

    t0 = time.monotonic()
    with pytest.raises(rt.Deadlock):
        rt.run(main(), procs=procs)
    assert time.monotonic() - t0 < 1.0


def test_reset_of_a_fired_timer_returns_false_and_rearms_it(procs):
    async def main():
        t = rt.Timer(0.01)
        first = await t.C.recv()
        was_pending = t.reset(0.02)
        second = await t.C.recv()
        return was_pending, second - first

    was_pending, gap = rt.run(main(), procs=procs)
    assert was_pending is False
    assert gap >= 0.02


def test_ticker_reset_changes_the_period(procs):
    async def main():
        tk = rt.Ticker(10)
        tk.reset(0.01)
        t0 = time.monotonic()
        await tk.C.recv()
        await tk.C.recv()
        tk.stop()
        return time.monotonic() - t0

    assert rt.run(main(), procs=procs) < 5
