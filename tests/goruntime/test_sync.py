"""sync: WaitGroup, Mutex, RWMutex, Once."""

import pytest

import goruntime as rt

pytestmark = pytest.mark.timeout(60)


def test_waitgroup_waits_for_all(procs):
    async def main():
        wg = rt.WaitGroup()
        done = []

        async def w(i):
            await rt.sleep(0.001 * (i % 5))
            done.append(i)
            wg.done()

        for i in range(50):
            wg.add(1)
            rt.go(w, i)
        await wg.wait()
        n = len(done)
        await wg.wait()  # counter zero: returns at once
        return n

    assert rt.run(main(), procs=procs) == 50


def test_waitgroup_negative_counter_panics(procs):
    async def main():
        wg = rt.WaitGroup()
        wg.add(1)
        wg.done()
        try:
            wg.done()
        except rt.Panic as e:
            return str(e)

    assert rt.run(main(), procs=procs) == "sync: negative WaitGroup counter"


def test_mutex_gives_mutual_exclusion_across_awaits(procs):
    async def main():
        mu = rt.Mutex()
        wg = rt.WaitGroup()
        state = {"inside": 0, "max": 0, "count": 0}

        async def w():
            for _ in range(50):
                async with mu:
                    state["inside"] += 1
                    state["max"] = max(state["max"], state["inside"])
                    await rt.gosched()
                    state["count"] += 1
                    state["inside"] -= 1
            wg.done()

        for _ in range(10):
            wg.add(1)
            rt.go(w)
        await wg.wait()
        return state

    st = rt.run(main(), procs=procs)
    assert st["max"] == 1 and st["count"] == 500


def test_mutex_try_lock_and_locked(procs):
    async def main():
        mu = rt.Mutex()
        a = mu.try_lock()
        b = mu.try_lock()
        locked = mu.locked()
        mu.unlock()
        return a, b, locked, mu.locked()

    assert rt.run(main(), procs=procs) == (True, False, True, False)


def test_unlock_of_unlocked_mutex_is_gos_fatal_error(procs):
    async def main():
        mu = rt.Mutex()
        try:
            mu.unlock()
        except rt.Panic:
            return "recovered a fatal error?"

    with pytest.raises(rt.Fatal, match="^sync: unlock of unlocked mutex$"):
        rt.run(main(), procs=procs)


def test_rwmutex_readers_share_writers_exclude(procs):
    async def main():
        rw = rt.RWMutex()
        wg = rt.WaitGroup()
        st = {"readers": 0, "maxreaders": 0, "writer": False, "bad": 0}

        async def reader():
            for _ in range(20):
                await rw.rlock()
                st["readers"] += 1
                st["maxreaders"] = max(st["maxreaders"], st["readers"])
                if st["writer"]:
                    st["bad"] += 1
                await rt.sleep(0.001)
                st["readers"] -= 1
                rw.runlock()
            wg.done()

        async def writer():
            for _ in range(10):
                async with rw:
                    if st["readers"] or st["writer"]:
                        st["bad"] += 1
                    st["writer"] = True
                    await rt.sleep(0.001)
                    st["writer"] = False
            wg.done()

        for _ in range(5):
            wg.add(1)
            rt.go(reader)
        for _ in range(2):
            wg.add(1)
            rt.go(writer)
        await wg.wait()
        return st

    st = rt.run(main(), procs=procs)
    assert st["bad"] == 0
    assert st["maxreaders"] > 1


def test_rwmutex_misuse_is_fatal(procs):
    async def main():
        rt.RWMutex().runlock()

    with pytest.raises(rt.Fatal, match="sync: RUnlock of unlocked RWMutex"):
        rt.run(main(), procs=procs)


def test_once_runs_exactly_once_and_concurrent_callers_wait(procs):
    async def main():
        once = rt.Once()
        calls = []
        wg = rt.WaitGroup()
        seen = []

        async def init():
            await rt.sleep(0.02)
            calls.append(1)

        async def w():
            await once.do(init)
            seen.append(len(calls))
            wg.done()

        for _ in range(10):
            wg.add(1)
            rt.go(w)
        await wg.wait()
        return calls, seen

    calls, seen = rt.run(main(), procs=procs)
    assert calls == [1]
    assert seen == [1] * 10
