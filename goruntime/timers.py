"""Timers: a heap per P, run by the scheduler (Go's runtime/time.go and package time).

``addtimer(when, f, arg)`` is the internal API: ``f(arg)`` runs on an M in scheduler
context (not in a G) once ``time.monotonic() >= when``; it must not block and may call
goready. The M that schedules on a P runs that P's due timers; a spinning M runs other Ps'
timers; an idle M sleeps exactly until the earliest timer. Stopped or reset timers leave a
stale heap entry that is skipped (``seq`` no longer matches), while ``P.ntimers`` counts only
live timers so that the deadlock check is exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from heapq import heappop, heappush
from time import monotonic
from typing import Any

from . import proc
from .chan import Chan
from .errors import Panic

_seq = itertools.count(1)


class timer:
    """A runtime timer (Go's runtime.timer); returned by :func:`addtimer`."""

    __slots__ = ("when", "period", "f", "arg", "p", "seq", "live")

    def __init__(self, f: Callable[[Any], Any], arg: Any, period: float = 0.0) -> None:
        self.f = f
        self.arg = arg
        self.period = period
        self.when = 0.0
        self.p: proc.P | None = None
        self.seq = -1
        self.live = False

    def stop(self) -> bool:
        """Prevent the timer from firing; True if it was pending (Go's Timer.Stop)."""
        p = self.p
        if p is None:
            return False
        with p.tlock:
            if not self.live:
                return False
            self.live = False
            self.seq = -1
            p.ntimers -= 1
            return True

    def reset(self, when: float) -> bool:
        """Make the timer fire at ``when`` instead; True if it was pending."""
        active = self.stop()
        _add(self, when)
        return active


def addtimer(when: float, f: Callable[[Any], Any], arg: Any, period: float = 0.0) -> timer:
    """Run ``f(arg)`` at monotonic time ``when`` (then every ``period`` s if > 0)."""
    t = timer(f, arg, period)
    _add(t, when)
    return t


def _add(t: timer, when: float) -> None:
    s = proc.sched
    if s is None:
        raise RuntimeError("timers need a running goruntime.run()")
    m = proc._tls.m
    p = m.p if m is not None and m.p is not None else s.allp[0]
    with p.tlock:
        t.p = p
        t.when = when
        t.seq = seq = next(_seq)
        t.live = True
        heappush(p.timers, (when, seq, t))
        p.ntimers += 1
    proc.wakeNetPoller(when)


def runtimers(p: proc.P, now: float) -> None:
    """Run every timer of p that is due at ``now`` (Go's checkTimers/runtimer)."""
    h = p.timers
    lock = p.tlock
    while True:
        with lock:
            if not h:
                return
            when, seq, t = h[0]
            if t.seq != seq:
                heappop(h)
                continue
            if when > now:
                return
            heappop(h)
            if t.period > 0:
                n = 1 + int((now - when) / t.period)
                t.when = when + n * t.period
                t.seq = seq = next(_seq)
                heappush(h, (t.when, seq, t))
            else:
                t.live = False
                t.seq = -1
                p.ntimers -= 1
            f = t.f
            arg = t.arg
        f(arg)


def nextwhen(p: proc.P) -> float:
    """When p's earliest live timer is due (0.0 if none); drops stale heap tops."""
    h = p.timers
    with p.tlock:
        while h:
            when, seq, t = h[0]
            if t.seq == seq:
                return when
            heappop(h)
    return 0.0


# ---------------------------------------------------------------- package time


async def sleep(d: float) -> None:
    """Park the calling G for at least ``d`` seconds (returns at once if ``d <= 0``).

    The timer is added only after the G is off its M (in gopark's unlockf), so it cannot
    fire before the G has parked (Go's resetForSleep).
    """
    if d <= 0:
        if proc.preemptreq and proc.preempted():
            await proc.preempt_yield()
        return
    g = proc.getg()
    if g is None:
        raise RuntimeError("sleep() must be awaited inside a goroutine")
    when = monotonic() + d
    await proc.gopark(lambda: addtimer(when, proc.goready, g), "sleep")


def _sendtime(c: Chan) -> None:
    c._trysend(monotonic())


class Timer:
    """A single event (Go's time.Timer): ``C`` receives the monotonic time after ``d`` s.

    With ``f``, no channel is made and ``f(*args)`` is started as a new G instead (Go's
    AfterFunc).
    """

    def __init__(self, d: float, f: Callable[..., Any] | None = None, *args: Any) -> None:
        if f is None:
            self.C: Chan | None = Chan(1)
            self._t = addtimer(monotonic() + d, _sendtime, self.C)
        else:
            self.C = None
            self._t = addtimer(monotonic() + d, _gofunc, (f, args))

    def stop(self) -> bool:
        """Stop the timer; True if this call prevented it from firing."""
        return self._t.stop()

    def reset(self, d: float) -> bool:
        """Make the timer fire ``d`` s from now; True if it had been pending."""
        return self._t.reset(monotonic() + d)


def _gofunc(fa: tuple) -> None:
    f, args = fa
    proc.go(f, *args)


def after(d: float) -> Chan:
    """A channel that receives the monotonic time once, ``d`` s from now (Go's time.After)."""
    return Timer(d).C  # type: ignore[return-value]


def after_func(d: float, f: Callable[..., Any], *args: Any) -> Timer:
    """Start ``f(*args)`` as a G after ``d`` s (Go's time.AfterFunc)."""
    return Timer(d, f, *args)


class Ticker:
    """Ticks on ``C`` every ``d`` s (Go's time.Ticker); slow receivers miss ticks."""

    def __init__(self, d: float) -> None:
        if d <= 0:
            raise Panic("non-positive interval for NewTicker")
        self.C = Chan(1)
        self._d = d
        self._t = addtimer(monotonic() + d, _sendtime, self.C, period=d)

    def stop(self) -> None:
        """Turn the ticker off; no more ticks are sent."""
        self._t.stop()

    def reset(self, d: float) -> None:
        """Stop the ticker and restart it with period ``d``."""
        if d <= 0:
            raise Panic("non-positive interval for Ticker.Reset")
        self._t.period = d
        self._t.reset(monotonic() + d)
