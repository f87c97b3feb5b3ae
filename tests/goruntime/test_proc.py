"""The scheduler: go/run semantics, run queues, stealing, fairness, deadlock, threads."""

import dis
import socket
import sys
import threading
import time
import traceback

import pytest

import goruntime as rt
from goruntime import proc
from goruntime.net import Conn
from tests.goruntime.support import go_ping_pong

pytestmark = pytest.mark.timeout(60)


def test_run_returns_mains_value_and_can_run_again(procs):
    async def main(x):
        await rt.gosched()
        return x * 2

    assert rt.run(main(21), procs=procs) == 42
    assert rt.run(main(5), procs=procs) == 10


def test_run_accepts_an_async_function(procs):
    async def main():
        return "ok"

    assert rt.run(main, procs=procs) == "ok"


def test_other_goroutines_are_abandoned_when_main_returns(procs):
    async def forever():
        await rt.Chan().recv()

    async def main():
        for _ in range(10):
            rt.go(forever)
        await rt.sleep(0.01)
        return rt.num_goroutine()

    assert rt.run(main(), procs=procs) == 11


def test_exception_in_a_goroutine_ends_run_with_its_traceback(procs):
    async def failing_worker():
        await rt.sleep(0.01)
        raise KeyError("boom")

    async def main():
        rt.go(failing_worker)
        await rt.sleep(5)

    t0 = time.monotonic()
    with pytest.raises(KeyError) as ei:
        rt.run(main(), procs=procs)
    assert time.monotonic() - t0 < 2
    names = [f.name for f in traceback.extract_tb(ei.value.__traceback__)]
    assert "failing_worker" in names


def test_panic_is_recoverable_inside_the_goroutine(procs):
    async def main():
        try:
            raise rt.Panic("custom")
        except rt.Panic as e:
            return f"recovered: {e}"

    assert rt.run(main(), procs=procs) == "recovered: custom"


def test_go_puts_new_g_in_runnext_and_kicks_the_old_one_to_the_local_queue():
    order = []

    async def g(i):
        order.append(i)

    async def main():
        for i in (1, 2, 3):
            rt.go(g, i)
        await rt.sleep(0.02)

    rt.run(main(), procs=1)
    assert order == [3, 1, 2]  # runnext first, then the local queue in FIFO order


def test_go_outside_run_is_an_error():
    async def g():
        pass

    with pytest.raises(RuntimeError, match="outside goruntime.run"):
        rt.go(g)


def test_bad_procs_is_rejected():
    async def main():
        pass

    with pytest.raises(ValueError, match="procs must be a positive int"):
        rt.run(main(), procs=0)


def test_gomaxprocs_and_num_goroutine(procs):
    async def main():
        c = rt.Chan()
        for _ in range(5):
            rt.go(c.recv)
        await rt.sleep(0.01)
        return rt.gomaxprocs(), rt.num_goroutine()

    assert rt.run(main(), procs=procs) == (procs, 6)


def test_100k_goroutines_spawned_and_joined_with_waitgroup(procs):
    n = 100_000

    async def main():
        wg = rt.WaitGroup()
        counts = [0]

        async def w():
            await mu.lock()
            counts[0] += 1
            mu.unlock()
            wg.done()

        mu = rt.Mutex()
        wg.add(n)
        for _ in range(n):
            rt.go(w)
        await wg.wait()
        return counts[0], rt.stats()

    count, st = rt.run(main(), procs=procs)
    assert count == n
    assert st["spawns"] == n
    assert rt.stats()["goroutines"] == 0


def test_work_stealing_with_two_procs():
    """Gs queued on one P are stolen by the other P's M; both Ms run Gs."""

    async def main():
        wg = rt.WaitGroup()
        ran_on = set()

        async def w():
            x = 0
            for i in range(3000):
                x += i
            ran_on.add(threading.get_ident())
            await rt.gosched()
            wg.done()

        wg.add(400)
        for _ in range(400):
            rt.go(w)
        await wg.wait()
        return len(ran_on), rt.stats()

    nthreads, st = rt.run(main(), procs=2)
    assert st["steals"] > 0
    # Both Ps' Ms ran Gs (a third M may appear: an M between dropping its P and parking
    # is not idle yet when wakep looks for one, so startm makes a new one, as Go does)
    assert nthreads >= 2
    assert st["ms_ran_gs"] >= 2


def test_gosched_loop_cannot_starve_a_goroutine_in_the_global_queue(procs):
    """B comes back from a syscall to the global queue while A loops on gosched."""

    async def main():
        state = {"done": False, "spins": 0}

        async def a():
            while not state["done"]:
                state["spins"] += 1
                await rt.gosched()

        async def b():
            await rt.syscall(time.sleep, 0.05)
            state["done"] = True

        rt.go(a)
        rt.go(b)
        t0 = time.monotonic()
        while not state["done"]:
            await rt.sleep(0.005)
        return time.monotonic() - t0, state["spins"]

    elapsed, spins = rt.run(main(), procs=procs)
    assert elapsed < 5.0  # starved, it would wait forever (the test's timeout)
    assert spins > 0


def test_ping_pong_pair_cannot_starve_a_goroutine_in_the_global_queue():
    """A runnext ping-pong pair inherits one time slice; sysmon ends it after 10 ms."""

    async def main():
        state = {"done": False}

        async def waiter():
            await rt.syscall(time.sleep, 0.02)  # comes back to the global queue
            state["done"] = True

        go_ping_pong(lambda: not state["done"])
        rt.go(waiter)
        t0 = time.monotonic()
        while not state["done"]:
            await rt.syscall(time.sleep, 0.01)
        return time.monotonic() - t0

    assert rt.run(main(), procs=1) < 5.0  # starved, it would wait forever
    assert rt.stats()["long_runs"] >= 1


@pytest.mark.parametrize("case", ["recv_nobody_sends", "waitgroup_never_done", "mutual_wait",
                                  "mutex_relock"])
def test_deadlock_detected_within_a_second(procs, case):
    async def main():
        if case == "recv_nobody_sends":
            await rt.Chan().recv()
        elif case == "waitgroup_never_done":
            wg = rt.WaitGroup()
            wg.add(1)
            await wg.wait()
        elif case == "mutual_wait":
            a, b = rt.Chan(), rt.Chan()

            async def other():
                await a.recv()
                await b.send(1)

            rt.go(other)
            await b.recv()
            await a.send(1)
        else:
            mu = rt.Mutex()
            await mu.lock()
            await mu.lock()

    t0 = time.monotonic()
    with pytest.raises(rt.Deadlock, match="^all goroutines are asleep - deadlock!$"):
        rt.run(main(), procs=procs)
    assert time.monotonic() - t0 < 1.0


def test_sleeping_goroutine_is_not_a_deadlock(procs):
    async def main():
        c = rt.Chan()

        async def later():
            await rt.sleep(0.1)
            await c.send("late")

        rt.go(later)
        return await c.recv()

    assert rt.run(main(), procs=procs) == "late"


def test_no_thread_left_after_run(procs):
    before = {t.ident for t in threading.enumerate()}

    async def main():
        wg = rt.WaitGroup()
        for _ in range(50):
            wg.add(1)

            async def w():
                await rt.sleep(0.001)
                wg.done()

            rt.go(w)
        await wg.wait()
        await rt.syscall(time.sleep, 0.03)
        return rt.stats()["threads"]

    rt.run(main(), procs=procs)
    after = {t.ident for t in threading.enumerate()}
    assert after <= before


def test_run_is_the_calling_thread_m0(procs):
    async def main():
        return threading.get_ident()

    assert rt.run(main(), procs=procs) == threading.get_ident()


def test_idle_runtime_does_not_burn_cpu_while_sleeping(procs):
    async def main():
        c0 = time.process_time()
        await rt.sleep(0.5)
        return time.process_time() - c0

    assert rt.run(main(), procs=procs) < 0.2


@pytest.mark.parametrize("sleep", ["sleepm_onep", "sleepm"])
def test_a_light_load_polls_the_network_about_once_per_message(sleep, monkeypatch):
    # One P, messages 2 ms apart: a netpoll(0) before blocking would find nothing every
    # time. After one that finds nothing the next ones are skipped, so an idle M polls once
    # per message (the blocking poll) instead of twice.
    monkeypatch.setattr(proc, "sleepm_onep", getattr(proc, sleep))
    procs = 1
    n = 100
    ln = socket.create_server(("127.0.0.1", 0))  # TCP: a socketpair also reports each
    b = socket.create_connection(ln.getsockname())  # echo's buffer space freed (EPOLLOUT)
    a, _ = ln.accept()
    ln.close()
    b.settimeout(10)  # the client ends even if the server does not answer

    def client() -> None:
        for _ in range(n):
            time.sleep(0.002)
            b.sendall(b"x")
            assert b.recv(64) == b"x"
        b.close()

    async def main():
        c = Conn(a)
        t = threading.Thread(target=client)
        t.start()
        while await c.read(64):
            await c.write(b"x")
        c.close()
        return t

    rt.run(main(), procs=procs).join()
    assert rt.stats()["netpolls"] <= 1.25 * n


def test_getg_and_internal_gopark_goready(procs):
    async def main():
        me = proc.getg()
        assert me is not None and me.goid >= 1

        async def waker(g):
            proc.goready(g, "woken")

        rt.go(waker, me)
        v = await proc.gopark(None, None, "test")
        exc = ValueError("x")

        async def thrower(g):
            proc.goready(g, exc=exc)

        rt.go(thrower, me)
        try:
            await proc.gopark(None, None, "test")
        except ValueError as e:
            return v, e is exc
        return v, False

    assert rt.run(main(), procs=procs) == ("woken", True)
    assert proc.getg() is None


def test_gopark_unlockf_returning_false_resumes_at_once(procs):
    async def main():
        return await proc.gopark(lambda g, arg: False, None, "test")

    assert rt.run(main(), procs=procs) is None


def test_ping_pong_hog(procs):
    """As Go's TestPingPongHog: a pair doing long work per handoff and a pair doing short
    work share the P fairly, because a G readied into runnext inherits the time slice and
    sysmon ends the slice after 10 ms. Without that, counts would differ ~20x."""
    hog_limit, light_limit = 20_000, 1_000

    async def main():
        done = rt.Chan()
        hog_chan, light_chan = rt.Chan(), rt.Chan()
        counts = {"hog": 0, "light": 0}

        async def run(limit, key, wake):
            while True:
                i, _, _ = await rt.select(rt.recv(done), rt.recv(wake))
                if i == 0:
                    return
                n = 0
                for _ in range(limit):
                    n += 1
                counts[key] += n
                await rt.select(rt.send(wake, True), rt.recv(done))

        for _ in range(2):
            rt.go(run, hog_limit, "hog", hog_chan)
        for _ in range(2):
            rt.go(run, light_limit, "light", light_chan)
        await hog_chan.send(True)
        await light_chan.send(True)
        await rt.sleep(0.3)
        done.close()
        return counts

    counts = rt.run(main(), procs=procs)
    hog, light = counts["hog"], counts["light"]
    # Go runs this with GOMAXPROCS=1, where the factor is the scheduler's. With 2 Ps each
    # pair usually settles on its own M and CPython's GIL, not the scheduler, shares the
    # time: the thread doing many short lock operations (the light pair's) gets well under
    # half of it. There we check only that neither pair is starved.
    factor = 2 if procs == 1 else 25
    assert hog > 0 and light > 0
    assert hog <= factor * light and light <= factor * hog, counts


SIGINT_PROG = """
import signal, sys, threading
signal.signal(signal.SIGINT, signal.default_int_handler)  # not inherited as ignored
import goruntime as rt

async def spin():
    while True:
        await rt.gosched()

async def main():
    c = rt.Chan()
    for _ in range(3):
        rt.go(c.recv)
    if sys.argv[1] == "spin":
        rt.go(spin)
    print("started", flush=True)
    await rt.sleep(30)

try:
    rt.run(main(), procs=int(sys.argv[2]))
except KeyboardInterrupt:
    print("interrupted", [t.name for t in threading.enumerate()], flush=True)
    sys.exit(130)
"""


@pytest.mark.parametrize("mode", ["idle", "spin"])
def test_ctrl_c_ends_run_with_keyboardinterrupt_and_no_thread_left(procs, mode):
    import signal
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    p = subprocess.Popen(
        [sys.executable, "-c", SIGINT_PROG, mode, str(procs)], cwd=root,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    try:
        assert p.stdout.readline().strip() == "started"
        time.sleep(0.2)
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert out.strip() == "interrupted ['MainThread']"


@pytest.mark.parametrize("how", ["goready", "injectglist"])
def test_goready_and_injectglist_from_a_foreign_thread(procs, how):
    """Another thread (as sysmon or the netpoller) makes parked Gs runnable."""

    async def main():
        got = []
        parked = []

        async def waiter(i):
            parked.append(proc.getg())
            got.append((i, await proc.gopark(None, None, "test")))

        for i in range(5):
            rt.go(waiter, i)
        while len(parked) < 5:
            await rt.sleep(0.001)

        def wake():
            time.sleep(0.01)
            if how == "goready":
                for g in parked:
                    proc.goready(g, f"v{g.goid}")
            else:
                for g in parked:
                    proc.ready_param(g, f"v{g.goid}")
                proc.injectglist(list(parked))

        t = threading.Thread(target=wake)
        t.start()
        while len(got) < 5:
            await rt.sleep(0.001)
        t.join()
        return sorted(got), [g.goid for g in parked]

    got, goids = rt.run(main(), procs=procs)
    assert [v for _, v in got] == sorted(f"v{goid}" for goid in goids)


def test_readying_a_g_twice_for_one_park_is_caught(procs):
    """A G is readied exactly once per park (Go throws on a bad status); here an
    AssertionError ends the run instead of the G running twice."""

    async def main():
        me = proc.getg()

        async def waker():
            proc.goready(me, "once")
            proc.goready(me, "twice")

        rt.go(waker)
        await proc.gopark(None, None, "test")

    with pytest.raises(AssertionError, match="readied twice"):
        rt.run(main(), procs=procs)


PINNED_PROG = """
import os, sys
os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})
import goruntime as rt

async def main():
    wg = rt.WaitGroup()

    async def w():
        for _ in range(3):
            await rt.gosched()
        wg.done()

    for _ in range(20):  # bursts that would wake idle Ps' Ms
        wg.add(200)
        for _ in range(200):
            rt.go(w)
        await wg.wait()
    st = rt.stats()
    return st["threads"], st["ms_ran_gs"]

print(*rt.run(main(), procs=int(sys.argv[1])))
"""


@pytest.mark.parametrize("procs_", [1, 4])
def test_procs_above_the_cpus_start_no_more_ms_than_cpus(procs_):
    """Pinned to one CPU, procs=4 runs Gs on one M, as procs=1 does: the other Ps' Ms
    would only trade the GIL and the CPU (threads: that M and sysmon)."""
    import subprocess
    import sys
    from pathlib import Path

    root = Path(__file__).resolve().parents[2]
    out = subprocess.run([sys.executable, "-c", PINNED_PROG, str(procs_)], cwd=root,
                         capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    assert out.stdout.split() == ["2", "1"]


@pytest.mark.skipif(sys.version_info[:2] != (3, 11),
                    reason="checks CPython 3.11's quickening, which later versions do differently")
def test_the_m_and_sysmon_loops_are_specialised_by_the_interpreter():
    """schedule and sysmon run one long loop per thread; 3.11 specialises a function entered
    once only if its loop closes with a plain backward jump (``while True``), else every
    attribute look-up in it stays generic for the whole run."""
    from goruntime import sysmon

    async def main():
        t0 = time.monotonic()
        while time.monotonic() - t0 < 0.1:  # busy: sysmon ticks all along
            await proc.gosched()

    rt.run(main, procs=1)
    for f in (proc.schedule, sysmon._sysmon):
        generic = [i.opname for i in dis.get_instructions(f, adaptive=True)
                   if i.opname in ("LOAD_ATTR", "LOAD_GLOBAL")]
        assert generic == [], f"{f.__name__} was never quickened"
