"""rt.syscall: the P is handed off while the M blocks (Go's entersyscall/exitsyscall)."""

import time

import pytest

import goruntime as rt

pytestmark = pytest.mark.timeout(60)


def test_blocking_syscall_does_not_stop_other_goroutines(procs):
    async def main():
        ticks = []
        done = rt.Chan(1)

        async def ticker():
            while True:
                ticks.append(time.monotonic())
                await rt.sleep(0.01)

        async def blocker():
            await rt.syscall(time.sleep, 0.5)
            await done.send(time.monotonic())

        rt.go(ticker)
        t0 = time.monotonic()
        rt.go(blocker)
        t1 = await done.recv()
        during = [t for t in ticks if t0 < t < t1]
        return len(during), t1 - t0, rt.stats()["handoffs"]

    n, dt, handoffs = rt.run(main(), procs=procs)
    assert dt >= 0.5
    assert n >= 10  # ~50 ticks of 10 ms fit in the 0.5 s the syscall blocked; 0 if stalled
    assert handoffs >= 1


def test_concurrent_syscalls_block_in_parallel_with_one_proc():
    async def main():
        wg = rt.WaitGroup()
        for _ in range(6):
            wg.add(1)

            async def w():
                await rt.syscall(time.sleep, 0.3)
                wg.done()

            rt.go(w)
        t0 = time.monotonic()
        await wg.wait()
        return time.monotonic() - t0

    assert rt.run(main(), procs=1) < 0.3 * 6 * 2 / 3  # one after another would take 1.8 s


def test_syscall_returns_the_value_and_propagates_exceptions(procs):
    def boom():
        raise OSError("disk on fire")

    async def main():
        v = await rt.syscall(sum, [1, 2, 3])
        try:
            await rt.syscall(boom)
        except OSError as e:
            return v, str(e)

    assert rt.run(main(), procs=procs) == (6, "disk on fire")


def test_goroutine_in_a_syscall_is_not_a_deadlock(procs):
    async def main():
        c = rt.Chan()

        async def slow():
            await rt.syscall(time.sleep, 0.1)
            await c.send("back")

        rt.go(slow)
        return await c.recv()

    assert rt.run(main(), procs=procs) == "back"


def test_syscall_outside_a_goroutine_is_an_error():
    with pytest.raises(RuntimeError, match="inside a goroutine"):
        rt.syscall(time.sleep, 0).send(None)
