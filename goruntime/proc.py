"""G, M, P and the scheduler (Go's runtime/proc.go).

A G is an ``async def`` coroutine; an M is an OS thread that drives Gs with ``coro.send``; a
P is the right to run Gs (``procs`` of them). Exactly one awaitable, :func:`gopark`, yields a
G back to its M's schedule loop; :func:`goready` is its other half. Every blocking operation
in the runtime (channels, select, sleep, mutex, syscall, netpoll wait) is built on the pair.

Run queues follow Go: per-P local queue of 256 plus ``runnext``, a global queue taken every
61st schedtick, stealing half of a random victim's queue, spinning Ms bounded to half the busy
Ps, idle Ms parked on a per-M note and reused, one M blocked in netpoll (or, with no
netpoller, on its note) until the next timer. M0 is the thread that called ``run``, so
Python's signal handlers run (its note and netpoll waits are interruptible).

Concurrency without atomics: CPython's GIL makes single C-level operations on builtins
atomic (``deque.append``/``popleft``, ``list.pop``/``append``). The local run queue is a
deque only its owner appends to; ``runnext`` is a list of at most one G, taken with
``pop()`` by its owner or a thief (Go's CAS); everything else shared (global queue, idle P
and M lists, spinning count) is under ``sched.lock``. With ``procs=1`` only the M holding
the P runs G code, so channel operations skip their lock (``chan.set_procs``): a channel
handoff and a schedule from ``runnext`` take no lock at all.

Deviations from Go, made because of the GIL:
* ``goready`` and ``go`` wake an idle P (``wakep``) only when the P's local queue holds
  work beyond ``runnext``: a G handed to ``runnext`` is usually run by this M at once (the
  readier is about to park), and waking a second M for it would only trade the GIL.
* A thief steals ``runnext`` only from a P whose running G sysmon has marked as a long
  run (Go sleeps 3 µs first and steals it anyway); sysmon also wakes an idle P then.
* Preemption is cooperative only (Go before 1.14): see sysmon.py.

The netpoller (netpoll.py) and everything else that blocks use this interface: ``getg()``
(the G running on this thread's M); ``gopark(unlockf, reason)`` and ``goready(g, value,
exc)``; ``ready_param(g, value, exc)`` sets what a G's gopark evaluates to before
``injectglist(gs)`` queues a batch of such Gs (and starts Ms for idle Ps); ``sched.netpoller``
is ``None`` until the first fd is registered, and the scheduler reaches the netpoller only
through ``netpoll(delay)`` (-1 block, 0 poll, > 0 block at most that long; returns the Gs made
ready), ``netpoll_break()`` (wake the M blocked in it) and ``waiting()`` (Gs parked on fds:
not a deadlock). ``wakeNetPoller(when)`` is what ``timers.addtimer`` calls;
``preempted()``/``preempt_yield()`` serve gopark-free fast paths.
"""

from __future__ import annotations

import inspect
import itertools
import os
import random
import threading
import types
from collections import deque
from collections.abc import Awaitable, Callable, Coroutine
from time import monotonic
from typing import Any

from .errors import Deadlock

# P status (Go's _Pidle, _Prunning, _Psyscall).
_Pidle, _Prunning, _Psyscall = 0, 1, 2

RUNQ_SIZE = 256  # Go's len(p.runq)
STEAL_TRIES = 4  # Go's stealTries

# Values a G's coroutine yields to its M besides a park request.
_GOSCHED = object()
_PREEMPT = object()
_EXITSYSCALL = object()
_EXITED = object()  # not yielded: the M loop's note that the G returned

preemptreq = False  # set by sysmon when it has marked some G; checked by fast paths


class G:
    """A goroutine: a coroutine plus the state the scheduler keeps for it."""

    __slots__ = (
        "goid", "coro", "param", "exc", "waitreason", "preempt", "elem", "ok", "sel",
        "__weakref__",
    )

    def __init__(self, goid: int, coro: Coroutine) -> None:
        self.goid = goid
        self.coro = coro
        self.param: Any = None  # value handed over by goready
        self.exc: BaseException | None = None  # exception handed over by goready
        self.waitreason: str | None = None  # why it is parked (None: runnable or running)
        self.preempt = False  # sysmon asks it to yield at its next runtime call
        self.elem: Any = None  # value a parked sender offers (chan.py)
        self.ok = False  # chan.py: the operation it was woken for completed
        self.sel = None  # always None for a G; a select's sudog has its shared claim here

    def __repr__(self) -> str:
        return f"<G{self.goid} {self.waitreason or 'runnable'}>"


class P:
    """A processor: a local run queue, runnext, a timer heap and counters."""

    __slots__ = (
        "id", "status", "runq", "runnext", "m", "schedtick", "syscalltick", "timers",
        "tlock", "ntimers", "steals",
    )

    def __init__(self, pid: int) -> None:
        self.id = pid
        self.status = _Pidle
        self.runq: deque[G] = deque()
        self.runnext: list[G] = []  # at most one G; pop() is the atomic take
        self.m: M | None = None
        self.schedtick = 0
        self.syscalltick = 0
        self.timers: list = []  # heap of (when, seq, timer); see timers.py
        self.tlock = threading.Lock()
        self.ntimers = 0  # live timers in the heap (stale entries are skipped)
        self.steals = 0


class M:
    """A machine: one OS thread running the schedule loop."""

    __slots__ = (
        "id", "p", "nextp", "oldp", "curg", "note", "spinning", "thread", "waketime",
        "parks", "spawns", "exits", "preempts", "blocked", "insyscall",
    )

    def __init__(self, mid: int) -> None:
        self.id = mid
        self.p: P | None = None
        self.nextp: P | None = None  # P handed over by startm before waking the note
        self.oldp: P | None = None  # P held when entering a syscall
        self.curg: G | None = None
        self.note = threading.Lock()  # held while asleep; release() is notewakeup
        self.note.acquire()
        self.spinning = False
        self.thread: threading.Thread | None = None
        self.waketime = 0.0  # when asleep as the timer sleeper: until when
        self.parks = 0
        self.spawns = 0
        self.exits = 0
        self.preempts = 0
        self.blocked = False
        self.insyscall = False


class _TLS(threading.local):
    m: M | None = None


_tls = _TLS()

sched: Sched | None = None  # the running scheduler (None outside run)
last_sched: Sched | None = None  # the previous run's, for stats() after run returns
_run_lock = threading.Lock()


class Sched:
    """Global scheduler state (Go's schedt) for one ``run``."""

    def __init__(self, procs: int) -> None:
        self.lock = threading.Lock()
        self.gomaxprocs = procs
        self.allp = [P(i) for i in range(procs)]
        self.pidle: list[P] = list(reversed(self.allp))
        self.npidle = procs
        self.allm: list[M] = []
        self.midle: list[M] = []
        self.nmspinning = 0
        self.globrunq: deque[G] = deque()
        self.goidgen = itertools.count(1)
        self.mcount = itertools.count(0)
        self.netpoller: Any = None  # set by netpoll.netpollGenericInit
        self.polling = False  # an M is blocked in netpoll
        self.pollUntil = 0.0
        self.lastpoll = monotonic()
        self.timer_m: M | None = None  # the M asleep on its note until the next timer
        self.stopping = False
        self.result: Any = None
        self.fatal: BaseException | None = None
        self.main_g: G | None = None
        self.ext_spawns = 0  # Gs made by go() outside any M (under lock)
        self.handoffs = 0  # sysmon-only counters
        self.long_runs = 0
        self.netpolls = 0
        self.sysmon_wakeups = 0
        self.steals_ext = 0
        self.starttime = monotonic()
        self.sysmon_event = threading.Event()
        self.sysmon_thread: threading.Thread | None = None
        self.allgs: Any = None  # weak set of Gs when scheddetail is on

    # --- idle P / M lists (sched.lock held) ---

    def pidleget(self) -> P | None:
        if self.pidle:
            p = self.pidle.pop()
            self.npidle -= 1
            return p
        return None

    def pidleput(self, p: P) -> None:
        p.status = _Pidle
        p.m = None
        self.pidle.append(p)
        self.npidle += 1

    def stop(self) -> None:
        """Make every M leave its loop (main returned, a G failed, or deadlock)."""
        with self.lock:
            self.stopping = True
            ms = list(self.midle)
            self.midle.clear()
            self.timer_m = None
        for m in ms:
            m.note.release()
        if self.netpoller is not None and self.polling:
            self.netpoller.netpoll_break()
        self.sysmon_event.set()

    def fail(self, exc: BaseException) -> None:
        if self.fatal is None:
            self.fatal = exc
        self.stop()


# ---------------------------------------------------------------- parking


@types.coroutine
def gopark(unlockf: Callable[[], Any] | None = None, reason: str = "") -> Any:
    """Suspend the calling G; evaluates to the value given to :func:`goready`.

    After the G is off its M, the M calls ``unlockf()`` if given; if that returns ``False``
    the G is made runnable again at once (as Go's park_m). If goready was given ``exc``, the
    await raises it instead.
    """
    return (yield (None, reason, unlockf))  # the M's park request is goparkg's triple


@types.coroutine
def goparkg(unlockf: Callable[[G, Any], bool], reason: str, arg: Any) -> Any:
    """:func:`gopark` with Go's unlockf signature: the M calls ``unlockf(g, arg)``.

    For a parker that must record which G parks (the netpoller): the M passes the G it
    took off, so the parker needs no ``getg()`` (a thread-local lookup) on its hot path.
    """
    return (yield (unlockf, reason, arg))


@types.coroutine
def gosched() -> Any:
    """Yield the processor: the G goes to the global run queue (Go's runtime.Gosched)."""
    yield _GOSCHED


@types.coroutine
def _preempt_yield() -> Any:
    yield _PREEMPT


def preempted() -> bool:
    """Should the calling G yield now? Consumes sysmon's request (fast paths call this).

    Clears the global hint; sysmon sets it again next tick while a marked G still runs.
    """
    global preemptreq
    preemptreq = False
    m = _tls.m
    g = m.curg if m is not None else None
    if g is not None and g.preempt:
        g.preempt = False
        return True
    return False


preempt_yield = _preempt_yield


async def checkpreempt() -> None:
    """Honour a preemption request from sysmon (for gopark-free fast paths)."""
    if preempted():
        await _preempt_yield()


def getg() -> G | None:
    """The G running on the calling thread's M (None outside a G)."""
    m = _tls.m
    return m.curg if m is not None else None


def ready_param(g: G, value: Any = None, exc: BaseException | None = None) -> None:
    """Set what g's gopark evaluates to (or raises) before g is put on a run queue."""
    g.param = value
    g.exc = exc
    g.waitreason = None


def goready(g: G, value: Any = None, exc: BaseException | None = None) -> None:
    """Make parked g runnable: into this P's runnext (from an M with a P) or the global queue.

    Callable from any thread. The G previously in runnext moves to the local queue; an idle
    P is woken only when the local queue then holds work (see the module docstring).
    """
    g.param = value
    if exc is not None:
        g.exc = exc
    g.waitreason = None
    m = _tls.m
    if m is not None:
        p = m.p
        if p is not None:
            rn = p.runnext
            if not rn:
                rn.append(g)
                return
            try:
                old = rn.pop()
            except IndexError:
                rn.append(g)
                return
            rn.append(g)
            runqput(p, old)
            s = sched
            if s.npidle and not s.nmspinning:
                wakep(s)
            return
    s = sched
    if s is None:
        return
    with s.lock:
        s.globrunq.append(g)
    wakep(s)


def runqput(p: P, g: G) -> None:
    """Put g at the tail of p's local queue; on overflow move half of it to the global queue."""
    q = p.runq
    if len(q) < RUNQ_SIZE:
        q.append(g)
        return
    # runqputslow: half the local queue plus g go to the global queue in one batch.
    popleft = q.popleft
    batch: list[G] = []
    take = batch.append
    for _ in range(len(q) // 2):
        try:
            take(popleft())
        except IndexError:  # thieves emptied it meanwhile
            break
    take(g)
    sched.globrunq.extend(batch)  # atomic; the caller holds p, so no wakeup is lost


def runqget(p: P) -> G | None:
    """Take runnext, else the head of the local queue (Go's runqget); None if both are empty.

    Looks before popping: a pop on an empty list raises, and raising costs more than the
    look. The pops stay guarded because a thief may empty either in between.
    """
    if p.runnext:
        try:
            return p.runnext.pop()
        except IndexError:
            pass
    if p.runq:
        try:
            return p.runq.popleft()
        except IndexError:
            pass
    return None


def globrunqget(s: Sched, p: P, max_: int = 0) -> G | None:
    """Take a batch from the global queue into p's local queue; return one G (lock held)."""
    gq = s.globrunq
    n = len(gq)
    if n == 0:
        return None
    k = min(n, n // s.gomaxprocs + 1)
    if max_ > 0:
        k = min(k, max_)
    k = min(k, RUNQ_SIZE // 2)
    g = gq.popleft()
    if k > 1:
        popleft = gq.popleft
        p.runq.extend([popleft() for _ in range(k - 1)])
    return g


def injectglist(gs: list[G]) -> None:
    """Make a batch of Gs runnable (their param already set) and start Ms for idle Ps.

    As Go's injectglist: as many Gs as there are idle Ps go to the global queue, each with
    an M started for it; the rest go to this M's local queue in one step. The netpoller hands
    over a whole epoll_wait's worth at once, so with no idle P (always, with procs=1) this
    takes no lock.
    """
    if not gs:
        return
    s = sched
    if s is None:
        return
    for g in gs:
        g.waitreason = None
    m = _tls.m
    p = m.p if m is not None else None
    if p is None:
        with s.lock:
            s.globrunq.extend(gs)
            n = min(len(gs), s.npidle)
        for _ in range(n):
            startm(s, None, False)
        return
    n = 0
    if s.npidle:
        with s.lock:
            n = min(len(gs), s.npidle)
            s.globrunq.extend(gs[:n])
        for _ in range(n):
            startm(s, None, False)
        gs = gs[n:]
    q = p.runq
    if len(q) + len(gs) <= RUNQ_SIZE:
        q.extend(gs)
    else:
        for g in gs:
            runqput(p, g)


# ---------------------------------------------------------------- Ms


def wakep(s: Sched) -> None:
    """Start a spinning M for an idle P, unless one is already spinning (Go's wakep)."""
    if not s.npidle or s.nmspinning:
        return
    with s.lock:
        if not s.npidle or s.nmspinning or s.stopping:
            return
        s.nmspinning += 1
    startm(s, None, True)


def startm(s: Sched, p: P | None, spinning: bool) -> None:
    """Run an M (an idle one, else a new thread) with p or an idle P (Go's startm).

    With spinning, the caller has already counted the M in ``nmspinning``.
    """
    with s.lock:
        if p is None:
            p = s.pidleget()
            if p is None:
                if spinning:
                    s.nmspinning -= 1
                return
        if s.stopping:
            s.pidleput(p)
            if spinning:
                s.nmspinning -= 1
            return
        if s.midle:
            midle = s.midle
            # Leave the timer sleeper asleep if another idle M can take the work.
            if midle[-1] is s.timer_m and len(midle) > 1:
                m = midle.pop(-2)
            else:
                m = midle.pop()
            if s.timer_m is m:
                s.timer_m = None
            m.nextp = p
            m.spinning = spinning
            m.note.release()
            return
        m = M(next(s.mcount))
        m.nextp = p
        m.spinning = spinning
        s.allm.append(m)
        # Started under the lock, so that run's exit never sees an M whose thread is not
        # started yet (start() returns before mstart runs; mstart needs no lock to begin).
        t = threading.Thread(target=mstart, args=(s, m), name=f"goruntime-M{m.id}", daemon=True)
        m.thread = t
        t.start()


def acquirep(m: M, p: P) -> None:
    m.p = p
    p.m = m
    p.status = _Prunning


def stopm(s: Sched, m: M, pollUntil: float) -> None:
    """Park m on its note until startm hands it a P (or, as timer sleeper, until pollUntil).

    The last M to go idle runs checkdead. Returns with ``m.p`` set or not; the caller
    retries. ``sched.lock`` is not held on entry.
    """
    timeout = -1.0
    with s.lock:
        if s.stopping:
            return
        s.midle.append(m)
        if pollUntil and (s.timer_m is None or s.timer_m.waketime > pollUntil):
            if s.timer_m is not None:
                # Hand the duty to us: the previous sleeper sleeps until its own turn anyway.
                s.timer_m = None
            s.timer_m = m
            m.waketime = pollUntil
            timeout = max(0.0, pollUntil - monotonic())
        elif len(s.midle) == len(s.allm):
            checkdead(s)
            if s.stopping:
                return  # checkdead emptied midle and released every note, ours too
    m.blocked = True
    got = m.note.acquire(True, timeout)
    m.blocked = False
    if not got:
        with s.lock:
            if m in s.midle:
                s.midle.remove(m)
                if s.timer_m is m:
                    s.timer_m = None
                return
        # Someone took us off midle and is about to release the note: consume it.
        m.note.acquire()
    p = m.nextp
    if p is not None:
        m.nextp = None
        acquirep(m, p)


def checkdead(s: Sched) -> None:
    """Called with sched.lock held when every M is idle: is any G able to run again?

    Not a deadlock while a G is runnable, a timer is pending, a G is parked on the network,
    or an M is in a syscall (such Ms are never idle, so we are not called then).
    """
    if s.stopping or s.polling:
        return
    if s.globrunq:
        return
    for p in s.allp:
        if p.runq or p.runnext or p.ntimers:
            return
    np = s.netpoller
    if np is not None and np.waiting() > 0:
        return
    if s.fatal is None:
        s.fatal = Deadlock()
    s.stopping = True
    ms = [m for m in s.midle]
    s.midle.clear()
    s.timer_m = None
    for m2 in ms:
        m2.note.release()
    s.sysmon_event.set()


def mstart(s: Sched, m: M) -> None:
    """Body of every M's thread (M0 runs it on the caller's thread)."""
    _tls.m = m
    try:
        p = m.nextp
        if p is not None:
            m.nextp = None
            acquirep(m, p)
        schedule(s, m)
    except BaseException as e:  # internal error, or KeyboardInterrupt on M0
        s.fail(e)
    finally:
        _tls.m = None
        p = m.p
        if p is not None:
            m.p = None


# ---------------------------------------------------------------- schedule


def schedule(s: Sched, m: M) -> None:
    """The M's loop: find a runnable G and run it until it parks, yields or exits.

    Hot path: a G made ready by the previous one sits in runnext and inherits its time
    slice (schedtick is not advanced, as in Go), so sysmon sees a ping-pong pair as one
    long run and can preempt it. That path stays in the inner loop below: it re-checks only
    what can change under it (stopping, the P, due timers, the 61st-tick global queue turn).
    """
    GOSCHED = _GOSCHED
    PREEMPT = _PREEMPT
    globrunq = s.globrunq
    parks = 0
    while not s.stopping:
        m.parks = parks
        m.curg = None
        p = m.p
        if p is None:
            g = findrunnable(s, m)
            if g is None:
                continue
            p = m.p
            p.schedtick += 1
        else:
            if p.ntimers and p.timers[0][0] <= monotonic():
                runtimers(p)
            g = None
            if globrunq and p.schedtick % 61 == 0:
                with s.lock:
                    g = globrunqget(s, p, 1)
            if g is None:
                g = runqget(p)
                if g is None:
                    g = findrunnable(s, m)
                    if g is None:
                        continue
                    p = m.p
            p.schedtick += 1
        rn = p.runnext
        while True:
            # execute g
            m.curg = g
            try:
                exc = g.exc
                if exc is None:
                    v = g.param
                    g.param = None
                    y = g.coro.send(v)
                else:
                    g.exc = None
                    y = g.coro.throw(exc)
            except StopIteration as e:
                m.curg = None
                m.exits += 1
                if g is s.main_g:
                    s.result = e.value
                    s.stop()
                    m.parks = parks
                    return
                y = _EXITED
                break
            except BaseException as e:
                m.curg = None
                m.exits += 1
                m.parks = parks
                s.fail(e)
                return
            if y.__class__ is not tuple:
                m.curg = None
                break
            # park g (m.curg keeps pointing at it until the next G or the outer loop: a
            # store saved on the hot path; nothing reads it in between)
            parks += 1
            parkf, g.waitreason, arg = y
            if parkf is not None:
                parked = parkf(g, arg)  # goparkg: Go's unlockf(gp, arg)
            else:
                parked = arg is None or arg() is not False  # gopark: unlockf()
            if not parked:
                # Not parked after all: g goes back into runnext and, as in Go's park_m,
                # keeps its time slice -- unless sysmon ended the slice (checked next).
                goready(g, g.param, g.exc)
            if preemptreq and g.preempt:
                # sysmon ended this time slice: the G it would pass to via runnext must not
                # inherit it, or a ping-pong pair would starve the global queue.
                g.preempt = False
                m.preempts += 1
                p = m.p
                if p is not None:
                    p.schedtick += 1
                    try:
                        g2 = p.runnext.pop()
                    except IndexError:
                        pass
                    else:
                        globrunq.append(g2)  # no lock needed, as for gosched below
                break
            if (
                s.stopping
                or m.p is not p
                or (p.ntimers and p.timers[0][0] <= monotonic())
                or (globrunq and p.schedtick % 61 == 0)
            ):
                break
            # Next G without going round the outer loop (its checks were just made): runnext
            # inherits the time slice, a G from the local queue starts a new one.
            if rn:
                try:
                    g = rn.pop()
                    continue
                except IndexError:  # a thief took it
                    pass
            try:
                g = p.runq.popleft()
            except IndexError:
                break
            p.schedtick += 1
        if y.__class__ is tuple or y is _EXITED:
            continue
        if y is GOSCHED or y is PREEMPT:
            if y is PREEMPT:
                m.preempts += 1
            # No lock: deque.append is atomic, and this M, holding a P, looks at the global
            # queue before it can sleep, so no wakeup can be lost (appends from threads
            # without a P take sched.lock and wakep).
            globrunq.append(g)
            continue
        if y is _EXITSYSCALL:
            # The G came back from a syscall and found no P: queue it globally, go idle.
            with s.lock:
                globrunq.append(g)
            wakep(s)
            continue
        m.parks = parks
        s.fail(RuntimeError(f"goroutine {g.goid} yielded {y!r}: await only runtime operations"))
        return
    m.parks = parks


def findrunnable(s: Sched, m: M) -> G | None:
    """Block until there is a G to run (Go's findRunnable); None means: look again.

    Order: own timers, local queue, global queue, netpoll(0) when fds are waited on, steal
    (spinning), then drop the P, re-check every queue, and sleep: one M in netpoll or on
    its note until the next timer, the rest on their notes.
    """
    while not s.stopping:
        p = m.p
        if p is None:
            with s.lock:
                p = s.pidleget()
            if p is None:
                stopm(s, m, 0.0)
                continue
            acquirep(m, p)
        now = monotonic()
        if p.ntimers:
            runtimers(p, now)
        try:
            g = p.runnext.pop()
            resetspinning(s, m)
            return g
        except IndexError:
            pass
        try:
            g = p.runq.popleft()
            resetspinning(s, m)
            return g
        except IndexError:
            pass
        if s.globrunq:
            with s.lock:
                g = globrunqget(s, p, 0)
            if g is not None:
                resetspinning(s, m)
                return g
        np = s.netpoller
        if np is not None and not s.polling and np.waiting() > 0:
            gs = np.netpoll(0)
            s.lastpoll = now
            s.netpolls += 1
            if gs:
                g = gs.pop(0)
                g.waitreason = None
                injectglist(gs)
                resetspinning(s, m)
                return g
        # Steal, if fewer than half the busy Ps have a spinning M already.
        if s.gomaxprocs > 1:
            if not m.spinning and 2 * s.nmspinning < s.gomaxprocs - s.npidle:
                with s.lock:
                    s.nmspinning += 1
                m.spinning = True
            if m.spinning:
                g = stealwork(s, m, p, now)
                if g is not None:
                    resetspinning(s, m)
                    return g
        # Due timers of other Ps (idle ones in particular) are ours to run, spinning or not.
        if s.gomaxprocs > 1:
            for p2 in s.allp:
                if p2 is not p and p2.ntimers and p2.timers and p2.timers[0][0] <= now:
                    runtimers(p2, now)
            try:
                g = p.runnext.pop()
                resetspinning(s, m)
                return g
            except IndexError:
                pass
        # Nothing: give up the P.
        with s.lock:
            if s.stopping:
                return None
            if s.globrunq:
                g = globrunqget(s, p, 0)
                if g is not None:
                    if m.spinning:
                        m.spinning = False
                        s.nmspinning -= 1
                    return g
            m.p = None
            s.pidleput(p)
            wasspinning = m.spinning
            if wasspinning:
                m.spinning = False
                s.nmspinning -= 1
        if wasspinning or s.gomaxprocs > 1:
            # Work may have been queued after we looked and before our P became idle.
            again = False
            for p2 in s.allp:
                if p2.runq or p2.runnext:
                    again = True
                    break
            if again:
                with s.lock:
                    p = s.pidleget()
                    if p is not None:
                        s.nmspinning += 1
                if p is not None:
                    acquirep(m, p)
                    m.spinning = True
                    continue
        pollUntil = nexttimer(s)
        np = s.netpoller
        if np is not None and (pollUntil or np.waiting() > 0):
            with s.lock:
                claim = not s.polling and not s.stopping
                if claim:
                    s.polling = True
                    s.pollUntil = pollUntil or float("inf")
            if claim:
                delay = -1.0 if not pollUntil else max(0.0, pollUntil - monotonic())
                m.blocked = True
                try:
                    gs = np.netpoll(delay)
                finally:
                    m.blocked = False
                    with s.lock:
                        s.polling = False
                        s.pollUntil = 0.0
                s.lastpoll = monotonic()
                s.netpolls += 1
                with s.lock:
                    p = s.pidleget()
                if p is None:
                    injectglist(gs)
                    continue
                acquirep(m, p)
                if gs:
                    g = gs.pop(0)
                    g.waitreason = None
                    injectglist(gs)
                    return g
                continue
        stopm(s, m, 0.0 if s.polling else pollUntil)  # the poller wakes for timers
    return None


def resetspinning(s: Sched, m: M) -> None:
    """A spinning M found work: stop spinning; wake another if work remains (Go's)."""
    if not m.spinning:
        return
    m.spinning = False
    with s.lock:
        s.nmspinning -= 1
        n = s.nmspinning
    if n == 0 and s.npidle and (s.globrunq or any(p.runq for p in s.allp)):
        wakep(s)


def stealwork(s: Sched, m: M, p: P, now: float) -> G | None:
    """Try STEAL_TRIES times over all Ps in random order; the last try also runs their timers."""
    allp = s.allp
    n = len(allp)
    for i in range(STEAL_TRIES):
        last = i == STEAL_TRIES - 1
        start = random.randrange(n)
        for k in range(n):
            p2 = allp[(start + k) % n]
            if p2 is p:
                continue
            if last and p2.ntimers:
                runtimers(p2, now)
                try:
                    return p.runnext.pop()
                except IndexError:
                    pass
                try:
                    return p.runq.popleft()
                except IndexError:
                    pass
            g = runqsteal(p, p2, last)
            if g is not None:
                p.steals += 1
                return g
        if s.stopping:
            return None
    return None


def runqsteal(p: P, p2: P, stealnext: bool) -> G | None:
    """Move half of p2's local queue to p's; return one of the stolen Gs (Go's runqsteal)."""
    q2 = p2.runq
    n = len(q2) - len(q2) // 2
    if n == 0:
        if stealnext and p2.status == _Prunning:
            m2 = p2.m
            cg = m2.curg if m2 is not None else None
            if cg is not None and cg.preempt:
                try:
                    return p2.runnext.pop()
                except IndexError:
                    return None
        return None
    got = None
    q = p.runq
    for _ in range(n):
        try:
            g = q2.popleft()
        except IndexError:
            break
        if got is not None:
            q.append(got)
        got = g
    return got


# ---------------------------------------------------------------- timers (heap in timers.py)


def runtimers(p: P, now: float | None = None) -> None:
    from .timers import runtimers as _rt

    _rt(p, monotonic() if now is None else now)


def nexttimer(s: Sched) -> float:
    """Earliest pending timer over all Ps (0.0 if none)."""
    from .timers import nextwhen

    best = 0.0
    for p in s.allp:
        if p.ntimers:
            w = nextwhen(p)
            if w and (not best or w < best):
                best = w
    return best


def wakeNetPoller(when: float) -> None:
    """A timer for ``when`` was added: wake whoever sleeps past it (Go's wakeNetPoller)."""
    s = sched
    if s is None or s.stopping:
        return
    if s.polling:
        if s.pollUntil > when and s.netpoller is not None:
            s.netpoller.netpoll_break()
        return
    tm = s.timer_m
    if tm is not None:
        if tm.waketime > when:
            with s.lock:
                if s.timer_m is tm and tm in s.midle:
                    s.midle.remove(tm)
                    s.timer_m = None
                    tm.nextp = None
                    tm.note.release()
        return
    m = _tls.m
    if m is None or m.p is None:
        wakep(s)
    elif s.npidle and not s.nmspinning:
        # All other Ms sleep without a deadline; let one of them become the timer sleeper.
        wakep(s)


# ---------------------------------------------------------------- go / syscall


_CoroutineType = types.CoroutineType


def go(fn: Callable[..., Awaitable[Any]] | Coroutine, *args: Any) -> G:
    """Start ``fn(*args)`` (or a coroutine object) as a new G, like Go's ``go`` statement.

    The new G goes into this P's runnext; the G it displaces goes to the local queue.
    """
    if fn.__class__ is _CoroutineType:
        coro = fn
    else:
        coro = fn(*args)
        if coro.__class__ is not _CoroutineType and not isinstance(coro, Coroutine):
            raise TypeError(f"go() needs an async function or a coroutine, got {fn!r}")
    s = sched
    if s is None:
        coro.close()
        raise RuntimeError("go() called outside goruntime.run()")
    g = G(next(s.goidgen), coro)
    if s.allgs is not None:
        s.allgs.add(g)
    m = _tls.m
    p = m.p if m is not None else None
    if p is not None:
        m.spawns += 1
        rn = p.runnext
        try:
            old = rn.pop()
        except IndexError:
            rn.append(g)
            return g
        rn.append(g)
        q = p.runq
        if len(q) < RUNQ_SIZE:
            q.append(old)
        else:
            runqput(p, old)
        if s.npidle and not s.nmspinning:
            wakep(s)
        return g
    with s.lock:
        s.ext_spawns += 1
        s.globrunq.append(g)
    wakep(s)
    return g


def entersyscall(m: M) -> None:
    """The M is about to block outside the runtime: its P becomes retakable by sysmon."""
    p = m.p
    m.oldp = p
    m.insyscall = True
    p.syscalltick += 1
    p.status = _Psyscall


def exitsyscall(s: Sched, m: M) -> bool:
    """Back from the syscall: keep the old P if sysmon did not take it, else an idle P.

    Returns False when no P was free: the caller must yield _EXITSYSCALL so that the G is
    queued globally and the M parks.
    """
    m.insyscall = False
    p = m.oldp
    m.oldp = None
    with s.lock:
        if p.status == _Psyscall and p.m is m:
            p.status = _Prunning
            return True
        m.p = None
        p2 = s.pidleget()
    if p2 is not None:
        acquirep(m, p2)
        return True
    return False


@types.coroutine
def _exitsyscall_park() -> Any:
    yield _EXITSYSCALL


async def syscall(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking ``fn(*args)`` on this M while its P may be handed to another M.

    If the call blocks for more than a sysmon tick while other work exists, sysmon retakes
    the P and starts (or wakes) another M for it, so other Gs keep running. On return the M
    takes back its P, else an idle one, else queues the G globally and parks.
    """
    m = _tls.m
    s = sched
    if m is None or m.curg is None or s is None:
        raise RuntimeError("syscall() must be awaited inside a goroutine")
    entersyscall(m)
    try:
        return fn(*args)
    finally:
        if not exitsyscall(s, m):
            await _exitsyscall_park()


# ---------------------------------------------------------------- run


def default_procs() -> int:
    v = os.environ.get("GOMAXPROCS", "")
    if v.strip():
        try:
            n = int(v)
        except ValueError:
            n = 0
        if n > 0:
            return n
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def run(main: Coroutine | Callable[[], Coroutine], procs: int | None = None) -> Any:
    """Run ``main`` as the main G on ``procs`` Ps (GOMAXPROCS); return its result.

    The calling thread is M0. Other Gs are abandoned when main returns (as in Go): never
    started ones are closed, parked ones are left to the garbage collector. Raises the
    exception that escaped any G (a panic ends the program), with that G's traceback, or
    ``Deadlock`` when no G can ever run again (none runnable, no timer pending, none in a
    syscall, none parked on the network). Every M thread and sysmon have exited when this
    returns; it waits for Ms blocked in ``syscall`` to come back (Go would just exit), and
    a G that never awaits keeps its M, and so ``run``, from finishing. ``run`` may be called
    again afterwards; only one run at a time per process.
    """
    global sched, last_sched, preemptreq
    if not isinstance(main, Coroutine):
        main = main()
    if procs is None:
        procs = default_procs()
    if not isinstance(procs, int) or procs < 1:
        main.close()
        raise ValueError(f"procs must be a positive int, got {procs!r}")
    if not _run_lock.acquire(blocking=False):
        main.close()
        raise RuntimeError("goruntime.run() is already running")
    from . import chan, sysmon, trace

    try:
        s = Sched(procs)
        chan.set_procs(procs, s.allp[0])
        preemptreq = False
        trace.configure(s)
        g = G(next(s.goidgen), main)
        s.main_g = g
        if s.allgs is not None:
            s.allgs.add(g)
        m0 = M(next(s.mcount))
        s.allm.append(m0)
        p0 = s.pidleget()
        p0.runnext.append(g)
        m0.nextp = p0
        sched = s
        s.sysmon_thread = threading.Thread(
            target=sysmon.sysmon, args=(s,), name="goruntime-sysmon", daemon=True
        )
        s.sysmon_thread.start()
        try:
            mstart(s, m0)
        finally:
            s.stop()
            with s.lock:  # stopping is set: startm makes no new M from now on
                threads = [m.thread for m in s.allm] + [s.sysmon_thread]
            for t in threads:
                if t is not None:
                    t.join()
            if s.netpoller is not None:
                try:
                    s.netpoller.close()
                except Exception:  # noqa: BLE001 - closing is best effort after the run
                    pass
            sched = None
            chan.set_procs(2)  # outside a run: lock, and no P to lean on
            last_sched = s
            _drop_unstarted(s)
        if s.fatal is not None:
            raise s.fatal
        return s.result
    finally:
        _run_lock.release()


def _drop_unstarted(s: Sched) -> None:
    """Close never-started coroutines left in run queues (avoids 'never awaited' warnings)."""
    qs: list = [s.globrunq]
    for p in s.allp:
        qs.append(p.runq)
        qs.append(p.runnext)
    for q in qs:
        for g in q:
            if inspect.getcoroutinestate(g.coro) == inspect.CORO_CREATED:
                g.coro.close()
        q.clear()


def num_goroutine(s: Sched | None = None) -> int:
    """Gs that exist now (Go's runtime.NumGoroutine); 0 outside run."""
    if s is None:
        s = sched
    if s is None:
        return 0
    made = 1 + s.ext_spawns
    ended = 0
    for m in list(s.allm):
        made += m.spawns
        ended += m.exits
    return made - ended


def gomaxprocs() -> int:
    s = sched
    return s.gomaxprocs if s is not None else default_procs()
