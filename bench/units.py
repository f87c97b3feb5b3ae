"""What one unit of concurrency costs on this machine, measured in the process that runs this.

``python -m bench.units UNIT FIGURE [options]`` measures one figure of one unit and prints
one JSON line (``runner.py units`` runs it in fresh processes and keeps the medians).

Units (:data:`UNITS`), each the thing one bench strategy spends per connection:

* ``goroutine``: a G of goruntime on one P (``rt.run(procs=1)``);
* ``asyncio``: an ``asyncio`` Task;
* ``gevent``: a gevent Greenlet;
* ``thread``: a ``threading.Thread`` with the default stack (glibc takes ``ulimit -s``);
* ``thread-256k``: the same after ``threading.stack_size(256 KiB)``, the thread server's stack;
* ``process``: an ``os.fork()`` child made as the fork server makes one: ``gc.freeze()``
  first, SIGTERM/SIGINT blocked across the fork, handlers reset, ``PR_SET_PDEATHSIG`` set.

Figures (:data:`FIGURES`):

* ``create``: spawn n units that end at once, then wait for all; µs per unit.
* ``switch``: ping-pong between two units through the cheapest handoff each has (goroutine:
  one unbuffered Chan; asyncio: a Future per hop; gevent: one unbuffered Channel; thread and
  process: a pipe pair); µs per switch, one switch being one hop (a round trip is two), and
  the kernel context switches (voluntary + involuntary) per switch.

Both give wall time and CPU time (user + system, ``getrusage``) of what does the work: the
calling thread for the user-space units (goruntime's sysmon thread is left out), the whole
process for threads, parent and reaped children for processes. CPU time is the figure a
loaded machine moves least: waiting for a CPU is not in it.
* ``memory``: n units parked (blocked on an event that comes only at release); the growth of
  RSS per unit (PSS over parent and children for processes, the honest figure for
  copy-on-write), and beside it the growth of the machine's ``KernelStack + PageTables`` per
  unit (``/proc/meminfo``: kernel memory that no RSS shows; machine-wide, so noisy).
* ``hold``: park more units in doubling steps, each step cut so that it stays inside the
  :class:`Budget` (memory, time, kernel tasks) by the cost per unit measured so far; stop when
  no unit fits, the machine's available memory falls under the floor, or the OS refuses one.
  All units are then released and reaped: ``left`` counts threads or children still alive
  (must be 0).

One memory or hold figure per process: a second one in the same process would reuse the
memory the first freed. Exit 0 with the JSON line, 1 with one line on stderr if the
measurement failed, 2 on bad arguments.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import resource
import signal
import sys
import threading
import time
from abc import ABC, abstractmethod
from collections.abc import Callable, Coroutine, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from typing import Any, ClassVar

from bench.micro_worker import calibrate
from bench.worker import emit
from common.proc import set_parent_death_signal

FIGURES = ("create", "switch", "memory", "hold")
GIB = 1 << 30
FIRST_STEP = 1  # units parked by the hold search's first step; then it doubles
MARGIN = 0.9  # share of a budget's projected room that one step may take
SMALL_STACK = 256 * 1024  # servers/thread.py's default --thread-stack
_PAGE = os.sysconf("SC_PAGE_SIZE")


# ---------------------------------------------------------------- readings


def rss_bytes(pid: int | str = "self") -> int:
    """Resident set size of one process (``/proc/PID/statm``)."""
    with open(f"/proc/{pid}/statm") as f:
        return int(f.read().split()[1]) * _PAGE


def pss_bytes(pid: int | str = "self") -> int:
    """Proportional set size of one process (``/proc/PID/smaps_rollup``): each shared page
    counted once across the processes that map it."""
    with open(f"/proc/{pid}/smaps_rollup") as f:
        for line in f:
            if line.startswith("Pss:"):
                return int(line.split()[1]) * 1024
    raise OSError(f"no Pss line in /proc/{pid}/smaps_rollup")


def meminfo(*fields: str) -> int:
    """The sum of the named ``/proc/meminfo`` fields, in bytes."""
    total = 0
    with open("/proc/meminfo") as f:
        for line in f:
            name, _, rest = line.partition(":")
            if name in fields:
                total += int(rest.split()[0]) * 1024
    return total


def kernel_bytes() -> int:
    """Machine-wide kernel memory that grows with tasks: kernel stacks and page tables."""
    return meminfo("KernelStack", "PageTables")


_CLOCKS = {resource.RUSAGE_THREAD: time.thread_time, resource.RUSAGE_SELF: time.process_time}


def usage(scopes: tuple[int, ...]) -> tuple[float, int]:
    """CPU seconds (user + system) and context switches (voluntary + involuntary) so far,
    summed over ``scopes`` (``resource.RUSAGE_*``). CPU time of this thread or process is
    read from its nanosecond clock: ``getrusage`` can report no time at all for a short span."""
    cpu, switches = 0.0, 0
    for scope in scopes:
        ru = resource.getrusage(scope)
        clock = _CLOCKS.get(scope)
        cpu += clock() if clock else ru.ru_utime + ru.ru_stime
        switches += ru.ru_nvcsw + ru.ru_nivcsw
    return cpu, switches


class Meter:
    """Wall time, CPU time and context switches of ``scopes`` between ``start`` and ``stop``.

    ``lap`` ends the wall time early: what follows it (closing, reaping a child) still counts
    to CPU and switches, which for a child are known only once it is reaped.
    """

    def __init__(self, scopes: tuple[int, ...]) -> None:
        self.scopes = scopes
        self.seconds = self.cpu = 0.0
        self.switches = 0
        self._t0: float | None = None

    def start(self) -> Meter:
        self._cpu0, self._cs0 = usage(self.scopes)
        self._t0 = time.perf_counter()
        return self

    def lap(self) -> None:
        assert self._t0 is not None, "lap before start"
        self.seconds = time.perf_counter() - self._t0

    def stop(self) -> Meter:
        if not self.seconds:
            self.lap()
        cpu, cs = usage(self.scopes)
        self.cpu, self.switches = cpu - self._cpu0, cs - self._cs0
        return self


# ---------------------------------------------------------------- units


class Pool(ABC):
    """Parked units of one kind: ``add`` parks more, ``release`` ends and waits for all."""

    def __init__(self) -> None:
        self.count = 0  # units parked now (those started before an error included)

    @abstractmethod
    async def add(self, k: int) -> None:
        """Park ``k`` more units; raise ``OSError``/``RuntimeError`` when the OS refuses one."""

    @abstractmethod
    async def release(self) -> None:
        """Wake every parked unit, let it end, and wait for it; the pool is then empty."""

    def footprint(self) -> int:
        """The memory the pool's units live in: this process's RSS unless overridden."""
        return rss_bytes()

    def left(self) -> int:
        """Threads or processes of the pool still alive (after ``release``: must be 0)."""
        return 0


class Unit(ABC):
    """One kind of unit: how to create, switch between and park it.

    ``run`` drives a coroutine the way the unit needs (inside ``rt.run``, ``asyncio.run``, or
    directly for units whose methods never suspend); every measurement is such a coroutine.
    """

    name: ClassVar[str]
    label: ClassVar[str]
    strategy: ClassVar[str | None] = None  # the bench strategy with one of these per connection
    kernel_task: ClassVar[bool] = False  # one kernel task (thread or process) per unit
    create_holds: ClassVar[bool] = False  # create keeps every unit's task until it waits
    metric: ClassVar[str] = "rss"
    memory_n: ClassVar[int] = 10_000  # units parked by the memory figure by default
    # Whose CPU time and switches count: the thread doing the work (sysmon is left out).
    scopes: ClassVar[tuple[int, ...]] = (resource.RUSAGE_THREAD,)

    def run(self, coro: Coroutine) -> Any:
        return drive(coro)

    def meter(self) -> Meter:
        return Meter(self.scopes)

    @abstractmethod
    async def create(self, n: int) -> Meter:
        """Spawn ``n`` units that end at once and wait for all of them, metered."""

    @abstractmethod
    async def switch(self, rounds: int) -> Meter:
        """``rounds`` round trips (2 switches each) between two units, metered."""

    @abstractmethod
    def pool(self) -> Pool: ...


def drive(coro: Coroutine) -> Any:
    """Run a coroutine that never suspends (its awaits are all plain calls) to its result."""
    try:
        coro.send(None)
    except StopIteration as stop:
        return stop.value
    coro.close()
    raise RuntimeError("a synchronous unit's coroutine suspended")


# -- goroutine


class Goroutine(Unit):
    name = "goroutine"
    label = "goroutine (goruntime, 1 P)"
    strategy = "goroutine"

    def run(self, coro: Coroutine) -> Any:
        import goruntime as rt

        return rt.run(coro, procs=1)

    async def create(self, n: int) -> Meter:
        import goruntime as rt

        wg = rt.WaitGroup()

        async def f() -> None:
            wg.done()

        m = self.meter().start()
        wg.add(n)
        for _ in range(n):
            rt.go(f)
        await wg.wait()
        return m.stop()

    async def switch(self, rounds: int) -> Meter:
        import goruntime as rt

        c = rt.Chan(0)

        async def pong() -> None:
            for _ in range(rounds):
                await c.send(await c.recv())

        rt.go(pong)
        m = self.meter().start()
        for i in range(rounds):
            await c.send(i)
            await c.recv()
        return m.stop()

    def pool(self) -> Pool:
        return _GoroutinePool()


class _GoroutinePool(Pool):
    """Gs parked receiving on one unbuffered Chan that nobody sends on; close wakes them."""

    def __init__(self) -> None:
        import goruntime as rt

        super().__init__()
        self._rt = rt
        self._gate = rt.Chan(0)
        self._ended = rt.WaitGroup()

    async def _park(self, started: Any) -> None:
        started.done()
        await self._gate.recv()
        self._ended.done()

    async def add(self, k: int) -> None:
        started = self._rt.WaitGroup()
        started.add(k)
        self._ended.add(k)
        for _ in range(k):
            self._rt.go(self._park, started)
            self.count += 1
        await started.wait()  # on one P the last G parks before main runs again

    async def release(self) -> None:
        self._gate.close()
        await self._ended.wait()
        self.count = 0


# -- asyncio


class AsyncioTask(Unit):
    name = "asyncio"
    label = "asyncio task"
    strategy = "asyncio"

    def run(self, coro: Coroutine) -> Any:
        return asyncio.run(coro)

    async def create(self, n: int) -> Meter:
        async def f() -> None:
            pass

        m = self.meter().start()
        await asyncio.gather(*[asyncio.create_task(f()) for _ in range(n)])
        return m.stop()

    async def switch(self, rounds: int) -> Meter:
        loop = asyncio.get_running_loop()
        hop = [loop.create_future(), loop.create_future()]  # [to pong, to ping]

        async def pong() -> None:
            for _ in range(rounds):
                await hop[0]
                hop[0] = loop.create_future()
                hop[1].set_result(None)

        task = asyncio.create_task(pong())
        await asyncio.sleep(0)  # pong waits on hop[0]
        m = self.meter().start()
        for _ in range(rounds):
            hop[0].set_result(None)
            await hop[1]
            hop[1] = loop.create_future()
        m.stop()
        await task
        return m

    def pool(self) -> Pool:
        return _TaskPool()


class _TaskPool(Pool):
    """Tasks parked on one ``asyncio.Event``."""

    def __init__(self) -> None:
        super().__init__()
        self._gate = asyncio.Event()
        self._tasks: list[asyncio.Task] = []
        self._started = 0

    async def _park(self) -> None:
        self._started += 1
        await self._gate.wait()

    async def add(self, k: int) -> None:
        for _ in range(k):
            self._tasks.append(asyncio.create_task(self._park()))
            self.count += 1
        while self._started < self.count:
            await asyncio.sleep(0)

    async def release(self) -> None:
        self._gate.set()
        await asyncio.gather(*self._tasks)
        self._tasks.clear()
        self.count = 0


# -- gevent


class Greenlet(Unit):
    name = "gevent"
    label = "gevent greenlet"
    strategy = "gevent"

    async def create(self, n: int) -> Meter:
        import gevent

        m = self.meter().start()
        gevent.joinall([gevent.spawn(_nothing) for _ in range(n)])
        return m.stop()

    async def switch(self, rounds: int) -> Meter:
        import gevent
        from gevent.queue import Channel

        c = Channel()

        def pong() -> None:
            for _ in range(rounds):
                c.put(c.get())

        g = gevent.spawn(pong)
        gevent.sleep(0)  # pong waits in get
        m = self.meter().start()
        for i in range(rounds):
            c.put(i)
            c.get()
        m.stop()
        g.join()
        return m

    def pool(self) -> Pool:
        return _GreenletPool()


class _GreenletPool(Pool):
    """Greenlets parked on one ``gevent.event.Event``."""

    def __init__(self) -> None:
        from gevent.event import Event

        super().__init__()
        self._gate = Event()
        self._greenlets: list = []
        self._started = 0

    def _park(self) -> None:
        self._started += 1
        self._gate.wait()

    async def add(self, k: int) -> None:
        import gevent

        for _ in range(k):
            self._greenlets.append(gevent.spawn(self._park))
            self.count += 1
        while self._started < self.count:
            gevent.sleep(0)

    async def release(self) -> None:
        import gevent

        self._gate.set()
        gevent.joinall(self._greenlets)
        self._greenlets.clear()
        self.count = 0


# -- thread


def _default_stack_text() -> str:
    """The stack glibc gives a thread when none is asked for: ``ulimit -s``, if finite."""
    soft = resource.getrlimit(resource.RLIMIT_STACK)[0]
    if soft == resource.RLIM_INFINITY:
        return "default stack"
    return f"default stack, ulimit -s {soft >> 20} MiB" if soft >= 1 << 20 else (
        f"default stack, ulimit -s {soft >> 10} KiB")


class Thread(Unit):
    name = "thread"
    label = f"OS thread ({_default_stack_text()})"
    strategy = "thread"
    kernel_task = True
    scopes = (resource.RUSAGE_SELF,)
    stack: ClassVar[int] = 0  # threading.stack_size: 0 is the platform default

    async def create(self, n: int) -> Meter:
        with _stack_size(self.stack):
            m = self.meter().start()
            threads = [threading.Thread(target=_nothing) for _ in range(n)]
            for t in threads:
                t.start()
            for t in threads:
                t.join()
            return m.stop()

    async def switch(self, rounds: int) -> Meter:
        with _stack_size(self.stack):
            ping, pong = os.pipe(), os.pipe()
            t = threading.Thread(target=_echo, args=(ping[0], pong[1]))
            t.start()
            return _pipe_ping_pong(rounds, ping, pong, t.join, self.meter())

    def pool(self) -> Pool:
        return _ThreadPool(self.stack)


class SmallStackThread(Thread):
    name = "thread-256k"
    label = "OS thread (256 KiB stack, as the thread server)"
    stack = SMALL_STACK


class _ThreadPool(Pool):
    """Threads parked each on a lock of its own, held by the pool; release wakes them one at
    a time and joins each before waking the next.

    Never all at once: 10,000 woken CPython threads storm the GIL (each waiter times out
    every 5 ms to demand it) and exit in minutes, not in a second; a ``threading.Event``,
    whose ``set`` wakes its waiters under the GIL and its Condition's lock, convoys too.
    """

    def __init__(self, stack: int) -> None:
        super().__init__()
        self._stack = stack
        self._parked: list[tuple[threading.Thread, Any]] = []

    async def add(self, k: int) -> None:
        with _stack_size(self._stack):
            for _ in range(k):
                gate = threading.Lock()
                gate.acquire()
                t = threading.Thread(target=gate.acquire, daemon=True)
                t.start()  # RuntimeError("can't start new thread") at a limit
                self._parked.append((t, gate))
                self.count += 1

    async def release(self) -> None:
        for t, gate in self._parked:
            gate.release()
            t.join()
        self.count = 0

    def left(self) -> int:
        return sum(t.is_alive() for t, _ in self._parked)


@contextmanager
def _stack_size(size: int) -> Iterator[None]:
    """``threading.stack_size(size)`` for the threads started inside, then the old size."""
    old = threading.stack_size(size)
    try:
        yield
    finally:
        threading.stack_size(old)


# -- process


class Process(Unit):
    name = "process"
    label = "process (fork, as the fork server)"
    strategy = "fork"
    kernel_task = True
    create_holds = True  # an exited child is a zombie until reaped
    metric = "pss"
    memory_n = 1_000
    scopes = (resource.RUSAGE_SELF, resource.RUSAGE_CHILDREN)  # children count once reaped

    async def create(self, n: int) -> Meter:
        with _frozen_heap():
            m = self.meter().start()
            pids = [fork_child(_nothing) for _ in range(n)]
            for pid in pids:
                os.waitpid(pid, 0)
            return m.stop()

    async def switch(self, rounds: int) -> Meter:
        ping, pong = os.pipe(), os.pipe()
        with _frozen_heap():
            pid = fork_child(lambda: _echo(ping[0], pong[1], close=(ping[1], pong[0])))
        os.close(ping[0])
        os.close(pong[1])
        return _pipe_ping_pong(rounds, ping, pong, lambda: os.waitpid(pid, 0), self.meter())

    def pool(self) -> Pool:
        return _ProcessPool()


class _ProcessPool(Pool):
    """Children parked reading a pipe whose write end only the parent keeps; closing it
    gives every child EOF, and it exits."""

    def __init__(self) -> None:
        super().__init__()
        self._r, self._w = os.pipe()
        self._pids: list[int] = []

    def _park(self) -> None:
        os.close(self._w)
        os.read(self._r, 1)

    async def add(self, k: int) -> None:
        with _frozen_heap():
            for _ in range(k):
                self._pids.append(fork_child(self._park))  # OSError(EAGAIN) at a limit
                self.count += 1

    async def release(self) -> None:
        if self._w >= 0:
            os.close(self._w)
            self._w = -1
        for pid in self._pids:
            os.waitpid(pid, 0)
        os.close(self._r)
        self._pids.clear()
        self.count = 0

    def footprint(self) -> int:
        return pss_bytes() + sum(pss_bytes(pid) for pid in self._pids)

    def left(self) -> int:
        return sum(os.path.exists(f"/proc/{pid}") for pid in self._pids)


@contextmanager
def _frozen_heap() -> Iterator[None]:
    """``gc.freeze()`` across forks, as the fork server does: a child's collector then never
    touches (and so never copies) the parent's objects."""
    gc.freeze()
    try:
        yield
    finally:
        gc.unfreeze()


def fork_child(body: Callable[[], Any]) -> int:
    """Fork a child that runs ``body`` and ``_exit``s (0, or 1 if it raised); its pid.

    As the fork server: SIGTERM and SIGINT are blocked across the fork so the child never runs
    the parent's handlers; the child resets them, and dies with its parent
    (``PR_SET_PDEATHSIG``), so a killed measurement leaves no child behind.
    """
    parent = os.getpid()
    mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        pid = os.fork()
    except OSError:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        raise
    if pid:
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        return pid
    status = 1
    try:
        for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        set_parent_death_signal()
        if os.getppid() == parent:
            body()
            status = 0
    finally:
        os._exit(status)


# -- helpers shared by thread and process


def _nothing() -> None:
    pass


def _echo(r: int, w: int, close: tuple[int, ...] = ()) -> None:
    """Copy one byte at a time from ``r`` to ``w`` until EOF (the other end of a ping-pong)."""
    for fd in close:
        os.close(fd)
    while b := os.read(r, 1):
        os.write(w, b)
    os.close(r)
    os.close(w)


def _pipe_ping_pong(rounds: int, ping: tuple[int, int], pong: tuple[int, int],
                    wait: Callable[[], Any], m: Meter) -> Meter:
    """Ping-pong one byte ``rounds`` times with the echo at the far end of ``ping``/``pong``,
    metered; then close and ``wait`` for the echo to end (its CPU and switches, a child's
    start and end included, count; its time does not)."""
    os.write(ping[1], b"x")  # the echo is up: outside the timing
    os.read(pong[0], 1)
    m.start()
    for _ in range(rounds):
        os.write(ping[1], b"x")
        os.read(pong[0], 1)
    m.lap()
    os.close(ping[1])
    os.close(pong[0])
    wait()
    return m.stop()


UNITS: dict[str, Unit] = {
    u.name: u for u in (Goroutine(), AsyncioTask(), Greenlet(), Thread(), SmallStackThread(),
                        Process())
}


# ---------------------------------------------------------------- figures


async def memory(unit: Unit, n: int) -> dict:
    """Park ``n`` units, read the growth, release them."""
    pool = unit.pool()
    gc.collect()
    before, kernel_before = pool.footprint(), kernel_bytes()
    try:
        await pool.add(n)
        gc.collect()
        after, kernel_after = pool.footprint(), kernel_bytes()
    finally:
        await pool.release()
    return {"n": n, "metric": unit.metric, "bytes": (after - before) / n,
            "kernel_bytes": (kernel_after - kernel_before) / n, "left": pool.left()}


def task_limit() -> tuple[int, int]:
    """(the most threads + processes the kernel lets this user have, how many exist now):
    the least of ``pid_max``, ``threads-max`` and ``ulimit -u``; the count from
    ``/proc/loadavg``."""
    limits = [int(open(f"/proc/sys/kernel/{f}").read()) for f in ("pid_max", "threads-max")]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    if nproc != resource.RLIM_INFINITY:
        limits.append(nproc)
    with open("/proc/loadavg") as f:
        in_use = int(f.read().split()[3].split("/")[1])
    return min(limits), in_use


def default_tasks() -> int:
    """The hold search's task budget: 10,000 (the bench's largest count), or half the tasks
    the kernel has left, if fewer: the machine is shared, and others need pids too."""
    limit, in_use = task_limit()
    return max(1, min(10_000, (limit - in_use) // 2))


@dataclass(frozen=True)
class Budget:
    """What the hold search may spend: its own memory growth, time and kernel tasks, and how
    much memory the machine must keep available for everyone else."""

    bytes: int = 2 * GIB
    seconds: float = 60.0
    tasks: int = 10_000  # threads or processes (see default_tasks)
    floor: int = 4 * GIB  # MemAvailable below which no step is taken

    def __post_init__(self) -> None:
        assert self.bytes > 0 and self.seconds > 0 and self.tasks > 0 and self.floor >= 0


def next_step(count: int, used: int, elapsed: float, budget: Budget,
              kernel_task: bool) -> tuple[int, str | None]:
    """How many units the hold search parks next, or 0 and the budget that binds.

    Doubles (``FIRST_STEP`` first), cut to the tasks left and to ``MARGIN`` of the memory and
    time left at the cost per unit measured so far: the search closes in on the first budget
    to bind without passing it (by more than the error of that cost).
    """
    room = {"memory": float("inf"), "time": float("inf"),
            "tasks": budget.tasks - count if kernel_task else float("inf")}
    if count:
        if used > 0:
            room["memory"] = MARGIN * (budget.bytes - used) * count / used
        room["time"] = MARGIN * (budget.seconds - elapsed) * count / max(elapsed, 1e-9)
    step = max(FIRST_STEP, count)
    binding = min(room, key=room.__getitem__)
    k = int(min(step, room[binding]))
    return (k, None) if k >= 1 else (0, binding)


async def hold(unit: Unit, budget: Budget) -> dict:
    """Park as many units as the budget allows; where it stopped and why, then release all."""
    pool = unit.pool()
    gc.collect()
    base = pool.footprint()
    t0 = time.monotonic()
    stop: dict[str, str] = {}
    used = 0
    try:
        while not stop:
            used = pool.footprint() - base
            k, binding = next_step(pool.count, used, time.monotonic() - t0, budget,
                                   unit.kernel_task)
            available = meminfo("MemAvailable")
            if binding:
                stop = {"kind": binding, "detail": _budget_detail(binding, budget)}
            elif available < budget.floor:
                stop = {"kind": "machine",
                        "detail": f"machine MemAvailable {available / GIB:.1f} GiB < "
                                  f"floor {budget.floor / GIB:.1f} GiB"}
            else:
                try:
                    await pool.add(k)
                except (OSError, RuntimeError, MemoryError) as e:
                    stop = {"kind": "limit", "detail": f"{type(e).__name__}: {e}"}
                    used = pool.footprint() - base
    finally:
        held, seconds = pool.count, time.monotonic() - t0
        await pool.release()
    return {"held": held, "stop": stop, "seconds": seconds, "bytes": used, "left": pool.left(),
            "budget": asdict(budget)}


def _budget_detail(kind: str, b: Budget) -> str:
    size = f"{b.bytes / GIB:.3g} GiB" if b.bytes >= GIB else f"{b.bytes / (1 << 20):.3g} MiB"
    return {"memory": f"memory budget {size}",
            "time": f"time budget {b.seconds:g} s",
            "tasks": f"task budget {b.tasks:,} threads or processes"}[kind]


def timed(unit: Unit, figure: str, n: int | None, values: int, warmups: int,
          min_time: float) -> dict:
    """``values`` µs per unit (create) or per switch (switch) after ``warmups``, wall and CPU,
    each on a fresh runtime/loop; ``n`` units or rounds per value, calibrated to ``min_time``
    if None; for switch also the kernel context switches per switch."""
    per = 1 if figure == "create" else 2

    def once(k: int) -> Meter:
        return unit.run(unit.create(k) if figure == "create" else unit.switch(k))

    if n is None:
        gc.collect()
        n = calibrate(lambda k: once(k).seconds, min_time)
    meters = []
    for i in range(warmups + values):
        gc.collect()
        m = once(n)
        if i >= warmups:
            meters.append(m)
    ops = per * n
    res = {"n": n, "values": [m.seconds / ops * 1e6 for m in meters],
           "cpu_values": [m.cpu / ops * 1e6 for m in meters]}
    if figure == "switch":
        res["kernel_switches"] = [m.switches / ops for m in meters]
    return res


def over_budget(unit_name: str, figure: str, n: int | None, budget: Budget) -> str | None:
    """Why ``n`` units of this figure would hold more threads or processes at once than the
    task budget allows (memory parks n; create keeps n children until it reaps them, while
    its threads end at once), or None. Without n, calibration stops far below any budget
    (at the first 0.1 s value) and memory parks no more than the budget."""
    unit = UNITS[unit_name]
    holds = figure == "memory" or (figure == "create" and unit.create_holds)
    if unit.kernel_task and holds and n and n > budget.tasks:
        return (f"{unit_name} {figure} with n={n:,} would hold {n:,} threads or processes at "
                f"once; the task budget is {budget.tasks:,}")
    return None


def measure(unit_name: str, figure: str, n: int | None = None, values: int = 3,
            warmups: int = 1, min_time: float = 0.1, budget: Budget | None = None) -> dict:
    """One figure of one unit in this process: the dict ``python -m bench.units`` prints.

    Raises ``ValueError`` when :func:`over_budget` says n is too many."""
    budget = budget or Budget()
    if why := over_budget(unit_name, figure, n, budget):
        raise ValueError(why)
    unit = UNITS[unit_name]
    out: dict[str, Any] = {"unit": unit_name, "figure": figure}
    if figure in ("create", "switch"):
        out |= timed(unit, figure, n, values, warmups, min_time)
    elif figure == "memory":
        default = min(unit.memory_n, budget.tasks) if unit.kernel_task else unit.memory_n
        out |= unit.run(memory(unit, n or default))
    elif figure == "hold":
        out |= unit.run(hold(unit, budget))
    else:
        raise ValueError(f"no figure {figure!r}")
    return out


# ---------------------------------------------------------------- command line


def _positive(text: str) -> int:
    v = int(text)
    if v < 1:
        raise argparse.ArgumentTypeError(f"must be >= 1, not {v}")
    return v


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.units", description=__doc__.splitlines()[0])
    p.add_argument("unit", choices=list(UNITS))
    p.add_argument("figure", choices=FIGURES)
    p.add_argument("--n", type=_positive, help="units (rounds for switch); default: calibrated "
                   "for timings, the unit's memory_n for memory")
    p.add_argument("--values", type=_positive, default=3)
    p.add_argument("--warmups", type=int, default=1)
    p.add_argument("--min-time", type=float, default=0.1)
    p.add_argument("--budget-bytes", type=_positive, default=Budget.bytes)
    p.add_argument("--budget-s", type=float, default=Budget.seconds)
    p.add_argument("--budget-tasks", type=_positive, default=default_tasks())
    p.add_argument("--floor-bytes", type=int, default=Budget.floor)
    args = p.parse_args(argv)
    budget = Budget(args.budget_bytes, args.budget_s, args.budget_tasks, args.floor_bytes)
    return emit(f"units: {args.unit} {args.figure}", lambda: measure(
        args.unit, args.figure, args.n, args.values, max(0, args.warmups), args.min_time,
        budget))


if __name__ == "__main__":
    sys.exit(main())
