"""Micro-benchmarks of the runtime, named and shaped after Go's runtime benchmarks.

Each :class:`Benchmark` times ``loops`` operations on a fresh ``rt.run(procs=...)`` and, where
Python has one, the same work in asyncio in the same process, so the ratio is measured in one
sitting. The timed region excludes run start-up and G creation that is set-up, not the
operation (as ``b.ResetTimer`` does). ``runner.py micro`` imports :data:`BENCHMARKS`;
``python -m goruntime.micro [--procs 1,2] [--filter RE]`` prints a table.

Ops, per benchmark (Go's name; what one op is):

* CreateGoroutines -- spawn one G that ends at once, and join it (WaitGroup); asyncio:
  ``create_task`` + ``gather``.
* ChanSync -- one round trip of a value between two Gs over one unbuffered channel;
  asyncio: two ``Queue(1)``.
* ChanProdCons0/10/100 -- one value from a producer G to a consumer G through a channel of
  capacity 0/10/100; asyncio: ``Queue(maxsize)`` (1 for 0).
* SelectUncontended -- one 2-case select that is ready at once, on channels of one G.
* SelectSyncContended -- one handoff between 2 sender and 2 receiver Gs that all select over
  the same two unbuffered channels.
* PingPongHog -- one ChanSync round trip while a third G burns CPU and yields (gosched);
  asyncio: the hog does ``sleep(0)``.
* MutexContended -- one lock+unlock by one of 4 Gs; every 8th holder yields while holding
  it, so the others find it locked and park; asyncio.Lock, same shape.
* Gosched -- one yield by one of 4 Gs; asyncio: ``sleep(0)``.
* NetpollRoundTrip -- 64 bytes written to a socketpair, echoed by a G on the other end and
  read back: two netpoll wakeups per op; asyncio: ``sock_sendall``/``sock_recv``.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import re
import socket
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from . import net as _net
from . import proc
from .chan import Chan
from .main import run
from .select import recv, select, send
from .sync import Mutex, WaitGroup

__all__ = ["BENCHMARKS", "Benchmark", "main"]


@dataclass
class Benchmark:
    """One micro-benchmark: ``run`` times goruntime, ``run_asyncio`` the asyncio counterpart.

    ``body(loops)`` is an async function run as main G; it returns the seconds its timed
    region took. ``abody`` is its asyncio twin (or None).
    """

    name: str
    doc: str
    body: Callable[[int], Any] = field(repr=False)
    abody: Callable[[int], Any] | None = field(default=None, repr=False)
    unit: str = "us/op"

    def run(self, loops: int, procs: int) -> float:
        """Seconds for ``loops`` ops on a fresh ``rt.run(procs=procs)``."""
        gc.collect()
        return run(self.body(loops), procs=procs)

    def run_asyncio(self, loops: int) -> float | None:
        """Seconds for ``loops`` ops of the asyncio counterpart, or None if there is none."""
        if self.abody is None:
            return None
        gc.collect()
        return asyncio.run(self.abody(loops))


# ---------------------------------------------------------------- goruntime bodies


def _split(loops: int, k: int) -> list[int]:
    """``loops`` ops shared exactly among k workers."""
    return [loops // k + (1 if i < loops % k else 0) for i in range(k)]


def _check_ops(done: int, loops: int, what: str) -> None:
    """A body's postcondition: it did exactly ``loops`` ops (else its time means nothing)."""
    if done != loops:
        raise AssertionError(f"{what}: {done} of {loops} ops done")


async def _create_goroutines(loops: int) -> float:
    wg = WaitGroup()

    async def f() -> None:
        wg.done()

    go = proc.go
    t0 = time.perf_counter()
    wg.add(loops)
    for _ in range(loops):
        go(f)
    await wg.wait()
    return time.perf_counter() - t0


async def _chan_sync(loops: int) -> float:
    c = Chan(0)
    done = Chan(0)

    async def pong() -> None:
        for _ in range(loops):
            v = await c.recv()
            await c.send(v)
        await done.send(None)

    proc.go(pong)
    t0 = time.perf_counter()
    for i in range(loops):
        await c.send(i)
        await c.recv()
    await done.recv()
    return time.perf_counter() - t0


def _prodcons(cap: int) -> Callable[[int], Any]:
    async def body(loops: int) -> float:
        c = Chan(cap)
        done = Chan(0)

        async def consumer() -> None:
            n = 0
            while (await c.recv2())[1]:
                n += 1
            await done.send(n)

        proc.go(consumer)
        t0 = time.perf_counter()
        for i in range(loops):
            await c.send(i)
        c.close()
        n = await done.recv()
        dt = time.perf_counter() - t0
        _check_ops(n, loops, "consumer")
        return dt

    return body


async def _select_uncontended(loops: int) -> float:
    c1, c2 = Chan(1), Chan(1)
    await c1.send(0)
    r1, r2 = recv(c1), recv(c2)
    t0 = time.perf_counter()
    for _ in range(loops):
        i, _v, _ok = await select(r1, r2)
        if i == 0:
            await c2.send(0)
        else:
            await c1.send(0)
    return time.perf_counter() - t0


async def _select_sync_contended(loops: int) -> float:
    c1, c2 = Chan(0), Chan(0)
    wg = WaitGroup()
    received: list[int] = []  # one entry per receiver (append is atomic across Ms)

    async def sender(per: int) -> None:
        s1, s2 = send(c1, 1), send(c2, 2)
        for _ in range(per):
            await select(s1, s2)
        wg.done()

    async def receiver(per: int) -> None:
        r1, r2 = recv(c1), recv(c2)
        for _ in range(per):
            await select(r1, r2)
        received.append(per)
        wg.done()

    wg.add(4)
    t0 = time.perf_counter()
    for per in _split(loops, 2):
        proc.go(sender, per)
        proc.go(receiver, per)
    await wg.wait()
    dt = time.perf_counter() - t0
    _check_ops(sum(received), loops, "receivers")
    return dt


def _hog_work() -> int:
    x = 0
    for k in range(200):
        x += k
    return x


async def _ping_pong_hog(loops: int) -> float:
    stop = False

    async def hog() -> None:
        while not stop:
            _hog_work()
            await proc.gosched()

    proc.go(hog)
    dt = await _chan_sync(loops)
    stop = True
    return dt


async def _mutex_contended(loops: int) -> float:
    mu = Mutex()
    wg = WaitGroup()
    counter = [0]
    gosched = proc.gosched

    async def worker(per: int) -> None:
        for i in range(per):
            await mu.lock()
            counter[0] += 1
            if i % 8 == 0:
                await gosched()  # hold it across a yield now and then: others must park
            mu.unlock()
        wg.done()

    wg.add(4)
    t0 = time.perf_counter()
    for per in _split(loops, 4):
        proc.go(worker, per)
    await wg.wait()
    dt = time.perf_counter() - t0
    _check_ops(counter[0], loops, "mutex holders")
    return dt


async def _gosched(loops: int) -> float:
    wg = WaitGroup()
    gosched = proc.gosched
    yielded: list[int] = []  # one entry per worker (append is atomic across Ms)

    async def worker(per: int) -> None:
        for _ in range(per):
            await gosched()
        yielded.append(per)
        wg.done()

    wg.add(4)
    t0 = time.perf_counter()
    for per in _split(loops, 4):
        proc.go(worker, per)
    await wg.wait()
    dt = time.perf_counter() - t0
    _check_ops(sum(yielded), loops, "gosched workers")
    return dt


_MSG = bytes(range(64))


async def _netpoll_round_trip(loops: int) -> float:
    a, b = socket.socketpair()
    ca, cb = _net.Conn(a), _net.Conn(b)

    async def echo() -> None:
        while data := await cb.read(65536):
            await cb.write(data)
        cb.close()

    proc.go(echo)
    n = len(_MSG)
    t0 = time.perf_counter()
    for _ in range(loops):
        await ca.write(_MSG)
        got = 0
        while got < n:
            got += len(await ca.read(65536))
    dt = time.perf_counter() - t0
    ca.close()
    return dt


# ---------------------------------------------------------------- asyncio bodies


async def _a_create(loops: int) -> float:
    async def f() -> None:
        pass

    ct = asyncio.create_task
    t0 = time.perf_counter()
    await asyncio.gather(*[ct(f()) for _ in range(loops)])
    return time.perf_counter() - t0


async def _a_pingpong(loops: int, hog: bool = False) -> float:
    q1: asyncio.Queue = asyncio.Queue(1)
    q2: asyncio.Queue = asyncio.Queue(1)
    stop = False

    async def pong() -> None:
        for _ in range(loops):
            await q2.put(await q1.get())

    async def hogger() -> None:
        while not stop:
            _hog_work()
            await asyncio.sleep(0)

    th = asyncio.create_task(hogger()) if hog else None
    t = asyncio.create_task(pong())
    t0 = time.perf_counter()
    for i in range(loops):
        await q1.put(i)
        await q2.get()
    await t
    dt = time.perf_counter() - t0
    stop = True
    if th is not None:
        await th
    return dt


def _a_prodcons(cap: int) -> Callable[[int], Any]:
    async def body(loops: int) -> float:
        q: asyncio.Queue = asyncio.Queue(max(cap, 1))
        end = object()

        async def consumer() -> int:
            n = 0
            while await q.get() is not end:
                n += 1
            return n

        t = asyncio.create_task(consumer())
        t0 = time.perf_counter()
        for i in range(loops):
            await q.put(i)
        await q.put(end)
        n = await t
        dt = time.perf_counter() - t0
        _check_ops(n, loops, "consumer")
        return dt

    return body


async def _a_mutex(loops: int) -> float:
    mu = asyncio.Lock()
    counter = [0]

    async def worker(per: int) -> None:
        for i in range(per):
            async with mu:
                counter[0] += 1
                if i % 8 == 0:
                    await asyncio.sleep(0)

    t0 = time.perf_counter()
    await asyncio.gather(*[worker(per) for per in _split(loops, 4)])
    dt = time.perf_counter() - t0
    _check_ops(counter[0], loops, "lock holders")
    return dt


async def _a_gosched(loops: int) -> float:
    async def worker(per: int) -> int:
        for _ in range(per):
            await asyncio.sleep(0)
        return per

    t0 = time.perf_counter()
    done = await asyncio.gather(*[worker(per) for per in _split(loops, 4)])
    dt = time.perf_counter() - t0
    _check_ops(sum(done), loops, "sleep(0) workers")
    return dt


async def _a_netpoll(loops: int) -> float:
    loop = asyncio.get_running_loop()
    a, b = socket.socketpair()
    a.setblocking(False)
    b.setblocking(False)

    async def echo() -> None:
        while data := await loop.sock_recv(b, 65536):
            await loop.sock_sendall(b, data)

    t = asyncio.create_task(echo())
    n = len(_MSG)
    t0 = time.perf_counter()
    for _ in range(loops):
        await loop.sock_sendall(a, _MSG)
        got = 0
        while got < n:
            got += len(await loop.sock_recv(a, 65536))
    dt = time.perf_counter() - t0
    a.close()
    await t
    b.close()
    return dt


BENCHMARKS: dict[str, Benchmark] = {
    b.name: b
    for b in [
        Benchmark("CreateGoroutines", "spawn + join of one G (100k per run by default)",
                  _create_goroutines, _a_create),
        Benchmark("ChanSync", "round trip over one unbuffered channel", _chan_sync,
                  _a_pingpong),
        Benchmark("ChanProdCons0", "one value through a channel of capacity 0",
                  _prodcons(0), _a_prodcons(0)),
        Benchmark("ChanProdCons10", "one value through a channel of capacity 10",
                  _prodcons(10), _a_prodcons(10)),
        Benchmark("ChanProdCons100", "one value through a channel of capacity 100",
                  _prodcons(100), _a_prodcons(100)),
        Benchmark("SelectUncontended", "one ready 2-case select", _select_uncontended),
        Benchmark("SelectSyncContended", "one handoff among 2+2 Gs selecting on 2 channels",
                  _select_sync_contended),
        Benchmark("PingPongHog", "ChanSync round trip beside a CPU hog G", _ping_pong_hog,
                  lambda n: _a_pingpong(n, hog=True)),
        Benchmark("MutexContended", "lock+unlock by one of 4 contending Gs", _mutex_contended,
                  _a_mutex),
        Benchmark("Gosched", "one yield by one of 4 Gs", _gosched, _a_gosched),
        Benchmark("NetpollRoundTrip", "64 B echoed over a socketpair (2 netpoll wakeups)",
                  _netpoll_round_trip, _a_netpoll),
    ]
}

# Default loop counts: big enough to time, small enough for the whole table in ~1 minute.
DEFAULT_LOOPS = {
    "CreateGoroutines": 100_000,
    "NetpollRoundTrip": 20_000,
}


def _loops(name: str, scale: float) -> int:
    return max(1, int(DEFAULT_LOOPS.get(name, 50_000) * scale))


def _fmt(x: float | None) -> str:
    return "-" if x is None else f"{x:.2f}"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m goruntime.micro",
                                 description="goruntime micro-benchmarks vs asyncio")
    ap.add_argument("--procs", default="1", help="comma-separated GOMAXPROCS values (1,2)")
    ap.add_argument("--filter", default="", help="regular expression on benchmark names")
    ap.add_argument("--scale", type=float, default=1.0, help="multiply default loop counts")
    ap.add_argument("--repeat", type=int, default=1, help="runs per value; the best is shown")
    try:
        args = ap.parse_args(argv)
        procs = [int(x) for x in args.procs.split(",") if x.strip()]
        if not procs or min(procs) < 1:
            raise ValueError
    except ValueError:
        print("micro: --procs must be comma-separated positive integers, e.g. 1,2",
              file=sys.stderr)
        return 2
    try:
        rx = re.compile(args.filter)
    except re.error as e:
        print(f"micro: bad --filter regular expression: {e}", file=sys.stderr)
        return 2
    if args.scale <= 0 or args.repeat < 1:
        print("micro: --scale must be > 0 and --repeat >= 1", file=sys.stderr)
        return 2
    from tabulate import tabulate  # only the CLI needs it

    rows = []
    for name, b in BENCHMARKS.items():
        if not rx.search(name):
            continue
        loops = _loops(name, args.scale)
        a = None
        if b.abody is not None:
            a = min(b.run_asyncio(loops) for _ in range(args.repeat)) / loops * 1e6
        for p in procs:
            us = min(b.run(loops, p) for _ in range(args.repeat)) / loops * 1e6
            rows.append([name, p, loops, _fmt(us), _fmt(a),
                         "-" if a is None else f"{a / us:.2f}x"])
            print(f"{name} procs={p}: {us:.2f} us/op", file=sys.stderr, flush=True)
    print(tabulate(rows, headers=["benchmark", "procs", "loops", "goruntime us/op",
                                  "asyncio us/op", "speedup vs asyncio"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
