"""The scheduler (Go's runtime/proc.go): parking, run queues, Ms, schedule, syscalls.

A G is an ``async def`` coroutine; an M is an OS thread that drives Gs with ``coro.send``; a
P is the right to run Gs (``procs`` of them). State is declared in runtime2.py; this module
moves Gs, Ms and Ps between its states.

Parking. A G leaves its M only by yielding a park request ``(unlockf, reason, arg)``: the
one awaitable :func:`gopark` yields it (net.Conn.read yields the same request itself, see
there). Once the G is off, the M calls ``unlockf(g, arg)`` (Go's unlockf): True keeps the
G parked, False makes it runnable again at once. ``unlockf`` is the park handler: it
commits the G to a wait queue (a channel's, a pollDesc's, a timer) or queues it somewhere
(:func:`gosched`, :func:`gopreempt`, the return from a syscall). :func:`goready` (any
thread) and :func:`ready` (from the M holding P) are the other half; a G is readied exactly
once per park (asserted).

Run queues follow Go: per-P local queue of 256 plus ``runnext`` (:func:`runqput` is the
only way onto them), a global queue taken every 61st schedtick, stealing half of a random
victim's queue, spinning Ms bounded to half the busy Ps, idle Ms parked on their note and
reused, one M blocked in netpoll (or, with no netpoller, on its note) until the next timer.
M0 is the thread that called ``run``, so Python's signal handlers run.

Concurrency without atomics: CPython's GIL makes single C-level operations on builtins
atomic (``deque.append``/``popleft``, ``list.pop``/``append``); everything else shared is
under ``Sched.lock``. With ``procs=1`` only the M holding the P runs G code, so channel and
sync operations take no lock at all (runtime2.onep).

Deviations from Go, made because of the GIL:
* a G readied into ``runnext`` wakes an idle P (``wakep``) only when the G it displaced
  lands in the local queue: the readier is usually about to park and this M runs the G at
  once, while a second M would only trade the GIL with it;
* a thief steals ``runnext`` only from a P whose running G sysmon has marked as a long run
  (Go sleeps 3 µs first and steals it anyway); sysmon also wakes an idle P then;
* preemption is cooperative only (Go before 1.14): see sysmon.py;
* findrunnable's netpoll(0) backs off after finding nothing, and with one P an M whose Gs
  have all parked sleeps in netpoll from :func:`execute` itself: at a light load each
  message costs one poll and no trip through schedule (both measured per message).

Interface for the netpoller (netpoll.py): ``sched.netpoller`` is ``None`` until the first
fd is registered; the scheduler reaches it only through ``netpoll(delay)`` (-1 block, 0
poll, > 0 block at most that long; returns the Gs made ready, their wakeup value set),
``netpoll_break()`` (wake the M blocked in it), ``waiters`` (one entry per G parked on an
fd: not a deadlock; ``waiting()`` counts them) and ``calls`` (polls so far). Timers:
:func:`addtimer`/:func:`modtimer` (heap in timers.py).
"""

from __future__ import annotations

import random
import threading
import types
from collections.abc import Awaitable, Callable, Coroutine
from time import monotonic
from typing import Any

from . import runtime2 as _r
from .errors import Deadlock
from .runtime2 import RUNQ_SIZE, G, M, P, Sched, _Pidle, _Prunning, _Psyscall, tls
from .timers import nextwhen, push, runtimers, timer

STEAL_TRIES = 4  # Go's stealTries
POLL_BACKOFF = 63  # most of findrunnable's netpoll(0) calls skipped after ones that found nothing
_INF = float("inf")
SYSMON_POKES = 61  # parks and fast-path checks that wake a sleeping sysmon (see preemptcheck)

# ---------------------------------------------------------------- parking


@types.coroutine
def gopark(unlockf: Callable[[G, Any], bool] | None = None, arg: Any = None,
           reason: str = "") -> Any:
    """Suspend the calling G (Go's gopark); evaluates to the value the ready hands over.

    After the G is off its M, the M calls ``unlockf(g, arg)`` if given; False makes the G
    runnable again at once (keeping its time slice), as Go's park_m. If the ready gave an
    exception, the await raises it instead.
    """
    return (yield (unlockf, reason, arg))


def parkunlock(g: G, lock: Any) -> bool:
    """unlockf that releases ``lock`` (Go's parkunlock_c)."""
    lock.release()
    return True


def getg() -> G | None:
    """The G running on the calling thread's M (None outside a G)."""
    m = tls.m
    return m.curg if m is not None else None


def ready(p: P, g: G, value: Any = None) -> None:
    """Make parked g runnable in p's runnext; p must be the caller's own P (Go's ready).

    The G previously in runnext moves to the local queue; only then is an idle P woken
    (see the module docstring).
    """
    assert g.waitreason is not None, f"{g!r} readied twice"
    g.param = value
    g.waitreason = None
    rn = p.runnext
    if not rn:  # runqput(p, g, True) for its common case, inlined
        rn.append(g)
    elif runqput(p, g, True):
        s = _r.sched
        if s.npidle and not s.nmspinning:
            wakep(s)


def goready(g: G, value: Any = None, exc: BaseException | None = None) -> None:
    """Make parked g runnable, from any thread: :func:`ready` on this M's P, else the
    global queue (and wake an idle P for it). ``exc`` makes its gopark raise instead."""
    if exc is not None:
        g.exc = exc
    m = tls.m
    if m is not None:
        p = m.p
        if p is not None:
            ready(p, g, value)
            return
    s = _r.sched
    if s is None:
        return
    assert g.waitreason is not None, f"{g!r} readied twice"
    g.param = value
    g.waitreason = None
    with s.lock:
        s.globrunq.append(g)
    wakep(s)


def ready_param(g: G, value: Any = None, exc: BaseException | None = None) -> None:
    """Set what parked g's gopark evaluates to (or raises), before :func:`injectglist`."""
    g.param = value
    g.exc = exc


# -- yielding the processor: park handlers that queue the G at once


def _gosched_m(g: G, arg: Any) -> bool:
    # No lock: deque.append is atomic, and this M, holding a P, looks at the global queue
    # before it can sleep, so no wakeup is lost.
    g.waitreason = None
    _r.sched.globrunq.append(g)
    return True


def gosched() -> Awaitable[Any]:
    """Yield the processor: the G goes to the global run queue (Go's runtime.Gosched)."""
    return gopark(_gosched_m, None, "gosched")


def _gopreempt_m(g: G, arg: Any) -> bool:
    # Go's gopreempt_m: as gosched, and the next G starts a new time slice.
    m = tls.m
    m.preempts += 1
    m.p.schedtick += 1
    return _gosched_m(g, arg)


def gopreempt() -> Awaitable[Any]:
    """Honour sysmon's preemption request (after :func:`preemptcheck` said so)."""
    return gopark(_gopreempt_m, None, "preempted")


def preemptcheck() -> bool:
    """Should the calling G yield now? Called by fast paths when ``runtime2.preemptreq``.

    Consumes sysmon's request (sysmon sets it again next tick while a marked G still runs).
    While sysmon sleeps because every P was idle, counts a poke instead (see sysmonpoke).
    """
    s = _r.sched
    if s is None:
        return False
    if s.sysmonwait:
        sysmonpoke(s)
        return False
    _r.set_preemptreq(False)
    m = tls.m
    g = m.curg if m is not None else None
    if g is not None and g.preempt:
        g.preempt = False
        return True
    return False


def sysmonpoke(s: Sched) -> None:
    """Work is going on while sysmon sleeps in sysmonwait: wake it after SYSMON_POKES.

    Sysmon sleeps while every P is idle and nothing wakes it when a P gets busy again (a
    wakeup per network event would cost more than the event under the GIL). Parks and
    fast-path preemption checks are counted instead, so sustained work (a ping-pong pair,
    a G looping on channel operations) has sysmon watching within SYSMON_POKES of them,
    while a light load wakes it only every SYSMON_POKES events.
    """
    s.sysmonpokes += 1
    if s.sysmonpokes >= SYSMON_POKES:
        with s.lock:
            s.sysmonwake()


# ---------------------------------------------------------------- run queues


def runqput(p: P, g: G, next: bool) -> bool:
    """Put g on p's local queue, or into ``runnext`` with ``next`` (Go's runqput).

    The G that ``next`` displaces goes to the tail of the local queue; on overflow half of
    the queue moves to the global queue. Returns True if the local queue grew (the caller
    may then wake an idle P). Only p's owner calls it.
    """
    if next:
        rn = p.runnext
        if not rn:
            rn.append(g)
            return False
        try:
            old = rn.pop()
        except IndexError:  # a thief took it meanwhile
            rn.append(g)
            return False
        rn.append(g)
        g = old
    q = p.runq
    if len(q) < RUNQ_SIZE:
        q.append(g)
    else:
        runqputslow(p, g)
    return True


def runqputslow(p: P, g: G) -> None:
    """Move half of p's full local queue plus g to the global queue in one batch."""
    q = p.runq
    popleft = q.popleft
    batch: list[G] = []
    take = batch.append
    for _ in range(len(q) // 2):
        try:
            take(popleft())
        except IndexError:  # thieves emptied it meanwhile
            break
    take(g)
    _r.sched.globrunq.extend(batch)  # atomic; the caller holds p, so no wakeup is lost


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
    """Make a batch of parked Gs runnable (their param set) and start Ms for idle Ps.

    As Go's injectglist: as many Gs as there are idle Ps go to the global queue, each with
    an M started for it; the rest go to this M's local queue in one step. The netpoller
    hands over a whole epoll_wait's worth at once, so with no idle P (always, with
    procs=1) this takes no lock.
    """
    if not gs:
        return
    s = _r.sched
    if s is None:
        return
    for g in gs:
        assert g.waitreason is not None, f"{g!r} readied twice"
        g.waitreason = None
    m = tls.m
    p = m.p if m is not None else None
    if p is None:
        with s.lock:
            s.globrunq.extend(gs)
            n = min(len(gs), s.maxrunning - (s.gomaxprocs - s.npidle))
        for _ in range(n):
            startm(s, None, False)
        return
    if s.npidle and s.gomaxprocs - s.npidle < s.maxrunning:
        with s.lock:
            n = max(0, min(len(gs), s.maxrunning - (s.gomaxprocs - s.npidle)))
            s.globrunq.extend(gs[:n])
        for _ in range(n):
            startm(s, None, False)
        gs = gs[n:]
    q = p.runq
    if len(q) + len(gs) <= RUNQ_SIZE:
        q.extend(gs)
    else:
        for g in gs:
            runqput(p, g, False)


# ---------------------------------------------------------------- Ms and Ps


def wakep(s: Sched) -> None:
    """Start a spinning M for an idle P, unless one is already spinning (Go's wakep), or
    ``Sched.maxrunning`` Ps are busy already (there is no idle P then either)."""
    if s.nmspinning or s.gomaxprocs - s.npidle >= s.maxrunning:
        return
    with s.lock:
        if s.nmspinning or s.gomaxprocs - s.npidle >= s.maxrunning or s.stopping:
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
                    assert s.nmspinning >= 0
                return
        if s.stopping:
            s.pidleput(p)
            if spinning:
                s.nmspinning -= 1
                assert s.nmspinning >= 0
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
            # Take over the timer duty: the previous sleeper sleeps until its own turn anyway.
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
    s.stop_locked()  # nobody polls: we checked


def handoffp(s: Sched, p: P) -> None:
    """Give p, taken from an M blocked in a syscall, to another M if there is anything to
    do; else make it idle (Go's handoffp)."""
    if p.runq or p.runnext or s.globrunq:
        startm(s, p, False)
        return
    with s.lock:
        spin = s.nmspinning + s.npidle == 0
        if spin:
            s.nmspinning += 1
    if spin:
        startm(s, p, True)
        return
    np = s.netpoller
    if p.ntimers or (np is not None and not s.polling and np.waiting() > 0):
        startm(s, p, False)
        return
    with s.lock:
        s.pidleput(p)


def retakep(s: Sched, p: P, syscalltick: int) -> bool:
    """Take p from its M if that M is still in the syscall sysmon saw (``syscalltick``),
    and hand it off; False if the M came back meanwhile (Go's retake, for _Psyscall)."""
    with s.lock:
        if p.status != _Psyscall or p.syscalltick != syscalltick:
            return False
        p.status = _Pidle
        p.m = None
        s.handoffs += 1
    handoffp(s, p)
    return True


def mstart(s: Sched, m: M) -> None:
    """Body of every M's thread (M0 runs it on the caller's thread)."""
    tls.m = m
    try:
        p = m.nextp
        if p is not None:
            m.nextp = None
            acquirep(m, p)
        schedule(s, m)
    except BaseException as e:  # internal error, or KeyboardInterrupt on M0
        s.fail(e)
    finally:
        tls.m = None
        m.p = None


# ---------------------------------------------------------------- schedule


def schedule(s: Sched, m: M) -> None:
    """The M's loop (Go's schedule): find a runnable G, execute it, until the run stops.

    A G from the local queue or the global one starts a new time slice (schedtick
    advances); one taken from runnext inherits the slice of the G that readied it (see
    :func:`execute`).
    """
    while True:  # not `while not s.stopping`: only a JUMP_BACKWARD lets 3.11 specialise
        if s.stopping:
            return
        g = findrunnable(s, m)
        if g is None:
            continue
        m.p.schedtick += 1
        if not execute(s, m, g):
            return


def execute(s: Sched, m: M, g: G) -> bool:
    """Run g on m, then, without going back to schedule, the G it readied into runnext
    (inheriting the time slice) or the next one of the local queue, for as long as nothing
    that schedule checks has changed: stopping, the P, due timers, the 61st-tick global
    queue turn. With one P and nothing left to run, it sleeps as findrunnable would when
    that can only end in sleepm_onep, and runs what the network brings. Returns False when
    the run has ended (main returned or a G failed).
    """
    p = m.p
    rn = p.runnext
    globrunq = s.globrunq
    onep = s.gomaxprocs == 1
    parks = 0  # added to m.parks on the way out: a store saved per park
    while True:
        m.curg = g
        try:
            exc = g.exc
            if exc is None:
                v = g.param
                g.param = None
                req = g.coro.send(v)
            else:
                g.exc = None
                req = g.coro.throw(exc)
        except StopIteration as e:
            m.curg = None
            m.exits += 1
            if g is s.main_g:
                m.parks += parks
                s.result = e.value
                s.stop()
                return False
        except BaseException as e:
            m.curg = None
            m.exits += 1
            m.parks += parks
            s.fail(e)
            return False
        else:
            # Park g. m.curg keeps pointing at it until the next G: a store saved on the hot
            # path; nothing reads it in between.
            if req.__class__ is not tuple:
                m.parks += parks
                s.fail(RuntimeError(
                    f"goroutine {g.goid} yielded {req!r}: await only runtime operations"))
                return False
            parks += 1
            unlockf, g.waitreason, arg = req
            if unlockf is not None and not unlockf(g, arg):
                ready(m.p, g, g.param)  # not parked after all: back into runnext
            if _r.preemptreq:
                if g.preempt:
                    preemptpark(s, m, g)
                    break
                if s.sysmonwait:  # sysmonpoke(s), inlined: at a light load every park pokes
                    s.sysmonpokes += 1
                    if s.sysmonpokes >= SYSMON_POKES:
                        with s.lock:
                            s.sysmonwake()
        if (
            s.stopping
            or m.p is not p
            or (p.ntimers and p.timers[0][0] <= monotonic())
            or (globrunq and p.schedtick % 61 == 0)
        ):
            break
        if rn:
            try:
                g = rn.pop()
                continue
            except IndexError:  # a thief took it
                pass
        if not p.runq:
            if not onep or globrunq or not s.pollskip:
                break
            # One P, no G queued, no timer due, netpoll(0) backing off: findrunnable would
            # go straight to sleepm_onep. Sleep here instead: one event per message at a
            # light load, without the way back through schedule and findrunnable.
            s.pollskip -= 1
            m.curg = None
            g = sleepm_onep(s, m, p)
            if g is None:
                break
            p.schedtick += 1
            continue
        try:
            g = p.runq.popleft()
        except IndexError:
            break
        p.schedtick += 1
    m.curg = None
    m.parks += parks
    return True


def preemptpark(s: Sched, m: M, g: G) -> None:
    """g, marked by sysmon, parked: its time slice ends here.

    The G it readied into runnext must not inherit the slice, or a ping-pong pair would
    starve the global queue: that G goes to the global queue.
    """
    g.preempt = False
    m.preempts += 1
    p = m.p
    if p is not None:
        p.schedtick += 1
        if p.runnext:
            try:
                s.globrunq.append(p.runnext.pop())  # no lock needed, as for gosched
            except IndexError:
                pass


def findrunnable(s: Sched, m: M) -> G | None:
    """Block until there is a G to run (Go's findRunnable); None means: look again.

    Order: own due timers, the global queue every 61st schedtick, local queue, global
    queue, netpoll(0) when fds are waited on, steal
    (spinning), then drop the P, re-check every queue, and sleep: one M in netpoll until
    the next timer or an event, the others on their notes (one of them until the next timer
    when nobody polls).

    Deviation from Go, with one P: after a netpoll(0) that found nothing, the next 1, 3, 7,
    ... up to POLL_BACKOFF are skipped (``Sched.pollskip``) until one finds something: at a
    light load it finds nothing, and its syscall would be a good part of what an event
    costs. (With more Ps, skipping it left Gs that only the poll would find waiting for
    the blocked poller: shutdown at procs 2 took seconds.)
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
        if p.ntimers and p.timers[0][0] <= monotonic():
            runtimers(p, monotonic())
        g = None
        if s.globrunq and p.schedtick % 61 == 0:  # the global queue's turn, for fairness
            with s.lock:
                g = globrunqget(s, p, 1)
        if g is None and (p.runnext or p.runq):
            g = runqget(p)
        if g is None and s.globrunq:
            with s.lock:
                g = globrunqget(s, p, 0)
        np = s.netpoller
        if g is None and np is not None:
            if s.pollskip > 0 and s.gomaxprocs == 1:
                s.pollskip -= 1
            elif not s.polling and np.waiters:
                gs = np.netpoll(0)  # network work ready: no need to drop the P and block
                if gs:
                    s.pollbackoff = 0
                    g = gs.pop()
                    injectglist(gs)
                    _readyone(g)
                else:
                    s.pollskip = s.pollbackoff = min(2 * s.pollbackoff + 1, POLL_BACKOFF)
        if g is None and s.gomaxprocs > 1:
            g = findrunnable_others(s, m, p, monotonic())
        if g is not None:
            if m.spinning:
                resetspinning(s, m)
            return g
        return sleepm_onep(s, m, p) if s.gomaxprocs == 1 else sleepm(s, m, p)
    return None


def sleepm(s: Sched, m: M, p: P) -> G | None:
    """findrunnable's last step: give up the P, look at every P's queue once more, and sleep,
    in netpoll until an event or the next timer if no M polls yet, else on the M's note.
    Returns a G found on waking, or None: look again.
    """
    # acquire/release: `with` makes two bound methods a cycle.
    lock = s.lock
    lock.acquire()
    try:
        if s.stopping:
            return None
        if s.globrunq:
            g = globrunqget(s, p, 0)
            if g is not None:
                if m.spinning:
                    m.spinning = False
                    s.nmspinning -= 1
                    assert s.nmspinning >= 0
                return g
        m.p = None
        s.pidleput(p)
        if m.spinning:
            m.spinning = False
            s.nmspinning -= 1
            assert s.nmspinning >= 0
    finally:
        lock.release()
    if recheck(s, m):
        return None
    with s.lock:
        polling = claimpoll_locked(s)
    if polling:
        return netpollblock(s, m, s.netpoller, s.pollUntil)
    stopm(s, m, 0.0 if s.polling else nexttimer(s))  # the poller wakes for timers
    return None


def sleepm_onep(s: Sched, m: M, p: P) -> G | None:
    """:func:`sleepm` with one P, in one piece, as it runs once per event at a light load:
    nothing can be queued on a P once the only one is idle, so there is no recheck, and the
    poll is claimed in the lock section that drops the P (claimpoll_locked and pidleput
    inlined). Returns a G found on waking, or None: look again.
    """
    lock = s.lock
    lock.acquire()
    if s.stopping:
        lock.release()
        return None
    if s.globrunq:
        g = globrunqget(s, p, 0)
        lock.release()
        if g is not None and m.spinning:
            resetspinning(s, m)
        return g
    m.p = None
    p.status = _Pidle  # s.pidleput(p), inlined
    p.m = None
    s.pidle.append(p)
    s.npidle += 1
    if m.spinning:
        m.spinning = False
        s.nmspinning -= 1
        assert s.nmspinning >= 0
    np = s.netpoller
    when = nextwhen(p) if p.ntimers else 0.0  # nexttimer(s), with one P
    if np is None or s.polling or not (when or np.waiters):
        lock.release()
        stopm(s, m, 0.0 if s.polling else when)  # the poller wakes for timers
        return None
    s.polling = True  # claimpoll_locked(s), inlined
    s.pollUntil = until = when or _INF
    lock.release()
    return netpollblock(s, m, np, until)


def _readyone(g: G) -> None:
    # A G from netpoll that this M runs at once: readied here instead of by injectglist.
    assert g.waitreason is not None, f"{g!r} readied twice"
    g.waitreason = None


def findrunnable_others(s: Sched, m: M, p: P, now: float) -> G | None:
    """With more than one P: steal from the other busy Ps (when few Ms spin already), and
    run other Ps' due timers."""
    nbusy = s.gomaxprocs - s.npidle
    if not m.spinning and nbusy > 1 and 2 * s.nmspinning < nbusy:
        with s.lock:
            s.nmspinning += 1
        m.spinning = True
    if m.spinning:
        g = stealwork(s, m, p, now)
        if g is not None:
            return g
    # Due timers of other Ps (idle ones in particular) are ours to run, spinning or not.
    for p2 in s.allp:
        if p2 is not p and p2.ntimers and p2.timers and p2.timers[0][0] <= now:
            runtimers(p2, now)
    return runqget(p)


def recheck(s: Sched, m: M) -> bool:
    """After dropping the P: work queued on some P meanwhile? Then take an idle P, spin."""
    for p2 in s.allp:
        if p2.runq or p2.runnext:
            break
    else:
        return False
    with s.lock:
        p = s.pidleget()
        if p is not None:
            s.nmspinning += 1
    if p is None:
        return False
    acquirep(m, p)
    m.spinning = True
    return True


def claimpoll_locked(s: Sched) -> bool:
    """Become the M that blocks in netpoll until the next timer, if there is a netpoller
    with waiters or a timer, and no M polls yet (lock held)."""
    np = s.netpoller
    if np is None or s.polling or s.stopping:
        return False
    pollUntil = nexttimer(s)
    if not pollUntil and np.waiting() == 0:
        return False
    s.polling = True
    s.pollUntil = pollUntil or _INF
    return True


def netpollblock(s: Sched, m: M, np: Any, until: float) -> G | None:
    """As the claimed poller (``until`` is ``s.pollUntil``), block in ``np.netpoll`` until an
    event or ``until``; then take an idle P and return one G found (the rest injected), or
    None."""
    m.blocked = True
    try:
        gs = np.netpoll(-1.0 if until == _INF else max(0.0, until - monotonic()))
    finally:
        m.blocked = False
        lock = s.lock
        lock.acquire()
        s.polling = False
        s.pollUntil = 0.0
        pidle = s.pidle
        if pidle:  # s.pidleget(), inlined
            p = pidle.pop()
            s.npidle -= 1
        else:
            p = None
        lock.release()
    if p is None:
        injectglist(gs)
        return None
    m.p = p  # acquirep(m, p)
    p.m = m
    p.status = _Prunning
    if not gs:
        return None
    g = gs.pop()
    if gs:
        injectglist(gs)
    assert g.waitreason is not None, f"{g!r} readied twice"
    g.waitreason = None
    return g


def resetspinning(s: Sched, m: M) -> None:
    """A spinning M found work: stop spinning; wake another if work remains (Go's)."""
    m.spinning = False
    with s.lock:
        s.nmspinning -= 1
        assert s.nmspinning >= 0
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
            if p2 is p or (p2.status == _Pidle and not (last and p2.ntimers)):
                continue  # an idle P has nothing to steal (Go's idlepMask)
            if last and p2.ntimers:
                runtimers(p2, now)
                g = runqget(p)
                if g is not None:
                    return g
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
        if stealnext and p2.status == _Prunning and p2.runnext:
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


def addtimer(when: float, f: Callable[[Any], Any], arg: Any, period: float = 0.0) -> timer:
    """Run ``f(arg)`` on an M at monotonic time ``when`` (then every ``period`` s if > 0)."""
    t = timer(f, arg, period)
    _addtimer(t, when)
    return t


def modtimer(t: timer, when: float) -> bool:
    """Make t fire at ``when`` instead; True if it was pending (Go's Timer.Reset)."""
    active = t.stop()
    _addtimer(t, when)
    return active


def _addtimer(t: timer, when: float) -> None:
    s = _r.sched
    if s is None:
        raise RuntimeError("timers need a running goruntime.run()")
    m = tls.m
    p = m.p if m is not None and m.p is not None else s.allp[0]
    push(p, t, when)
    wakeNetPoller(s, when)


def nexttimer(s: Sched) -> float:
    """Earliest pending timer over all Ps (0.0 if none)."""
    best = 0.0
    for p in s.allp:
        if p.ntimers:
            w = nextwhen(p)
            if w and (not best or w < best):
                best = w
    return best


def wakeNetPoller(s: Sched, when: float) -> None:
    """A timer for ``when`` was added: wake whoever sleeps past it (Go's wakeNetPoller)."""
    if s.stopping:
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
    m = tls.m
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
    s = _r.sched
    if s is None:
        coro.close()
        raise RuntimeError("go() called outside goruntime.run()")
    g = G(next(s.goidgen), coro)
    if s.allgs is not None:
        s.allgs.add(g)
    m = tls.m
    p = m.p if m is not None else None
    if p is not None:
        m.spawns += 1
        if runqput(p, g, True) and s.npidle and not s.nmspinning:
            wakep(s)
        return g
    with s.lock:
        s.ext_spawns += 1
        s.globrunq.append(g)
    wakep(s)
    return g


def entersyscall(s: Sched, m: M) -> None:
    """The M is about to block outside the runtime: its P becomes retakable by sysmon."""
    p = m.p
    m.oldp = p
    m.insyscall = True
    p.syscalltick += 1
    p.status = _Psyscall
    if s.sysmonwait:  # sysmon must watch the syscall (Go's entersyscall_sysmon)
        with s.lock:
            s.sysmonwake(syscall=True)


def exitsyscall(s: Sched, m: M) -> bool:
    """Back from the syscall: keep the old P if sysmon did not take it, else an idle P.

    Returns False when no P was free: the caller must park with ``_exitsyscall_m``, which
    queues the G globally, and the M goes idle.
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
            s.sysmonwake(syscall=True)  # as Go's exitsyscallfast_pidle
    if p2 is not None:
        acquirep(m, p2)
        return True
    return False


def _exitsyscall_m(g: G, arg: Any) -> bool:
    # Go's exitsyscall0: the G came back from a syscall and found no P.
    s = _r.sched
    g.waitreason = None
    with s.lock:
        s.globrunq.append(g)
    wakep(s)
    return True


async def syscall(fn: Callable[..., Any], *args: Any) -> Any:
    """Run blocking ``fn(*args)`` on this M while its P may be handed to another M.

    If the call blocks for more than a sysmon tick while other work exists, sysmon retakes
    the P and starts (or wakes) another M for it, so other Gs keep running. On return the M
    takes back its P, else an idle one, else queues the G globally and parks.
    """
    m = tls.m
    s = _r.sched
    if m is None or m.curg is None or s is None:
        raise RuntimeError("syscall() must be awaited inside a goroutine")
    entersyscall(s, m)
    try:
        return fn(*args)
    finally:
        if not exitsyscall(s, m):
            await gopark(_exitsyscall_m, None, "syscall")
