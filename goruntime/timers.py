"""Runtime timers: a heap per P (the heap half of Go's runtime/time.go).

A :class:`timer` runs ``f(arg)`` on an M in scheduler context (not in a G) once
``time.monotonic() >= when``; ``f`` must not block and may ready Gs. This module only keeps
the heaps: ``proc.addtimer``/``proc.modtimer`` put a timer on the caller's P and wake the
M that sleeps past it; the M that schedules on a P runs that P's due timers
(:func:`runtimers`), a spinning M runs other Ps' timers, and an idle M sleeps exactly until
the earliest one (:func:`nextwhen`). Stopped or reset timers leave a stale heap entry that
is skipped (``seq`` no longer matches), while ``P.ntimers`` counts only live timers, so the
deadlock check is exact. Package time (sleep, Timer, Ticker) is sleep.py.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from heapq import heappop, heappush
from typing import Any

from .runtime2 import P

_seq = itertools.count(1)


class timer:
    """A runtime timer (Go's runtime.timer); made by ``proc.addtimer``."""

    __slots__ = ("when", "period", "f", "arg", "p", "seq", "live")

    def __init__(self, f: Callable[[Any], Any], arg: Any, period: float = 0.0) -> None:
        self.f = f
        self.arg = arg
        self.period = period  # > 0: fire again every period s
        self.when = 0.0
        self.p: P | None = None
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


def push(p: P, t: timer, when: float) -> None:
    """Put stopped or fired timer t on p's heap, due at ``when``."""
    with p.tlock:
        assert not t.live, "timer added twice"
        t.p = p
        t.when = when
        t.seq = seq = next(_seq)
        t.live = True
        heappush(p.timers, (when, seq, t))
        p.ntimers += 1


def runtimers(p: P, now: float) -> None:
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


def nextwhen(p: P) -> float:
    """When p's earliest live timer is due (0.0 if none); drops stale heap tops."""
    h = p.timers
    with p.tlock:
        while h:
            when, seq, t = h[0]
            if t.seq == seq:
                return when
            heappop(h)
    return 0.0
