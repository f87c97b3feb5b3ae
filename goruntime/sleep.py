"""Package time over the runtime timers: sleep, Timer, after, after_func, Ticker.

Go's time/sleep.go and time/tick.go. Times are ``time.monotonic()`` seconds; a Timer's or
Ticker's channel ``C`` receives the monotonic time when it fires.
"""

from __future__ import annotations

from collections.abc import Callable
from time import monotonic
from typing import Any

from . import runtime2 as _r
from .chan import Chan, selectnbsend
from .errors import Panic
from .proc import addtimer, go, gopark, gopreempt, goready, modtimer, preemptcheck
from .runtime2 import G


async def sleep(d: float) -> None:
    """Park the calling G for at least ``d`` seconds (returns at once if ``d <= 0``).

    The timer is added only after the G is off its M (in gopark's unlockf), so it cannot
    fire before the G has parked (Go's resetForSleep). ``sleep(0)`` is a preemption point.
    """
    if d <= 0:
        if _r.preemptreq and preemptcheck():
            await gopreempt()
        return
    m = _r.tls.m
    if m is None or m.curg is None:
        raise RuntimeError("sleep() must be awaited inside a goroutine")
    await gopark(_resetForSleep, monotonic() + d, "sleep")


def _resetForSleep(g: G, when: float) -> bool:
    addtimer(when, goready, g)
    return True


def _sendtime(c: Chan) -> None:
    selectnbsend(c, monotonic())


def _gofunc(fa: tuple) -> None:
    f, args = fa
    go(f, *args)


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
        return modtimer(self._t, monotonic() + d)


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
        self._t = addtimer(monotonic() + d, _sendtime, self.C, period=d)

    def stop(self) -> None:
        """Turn the ticker off; no more ticks are sent."""
        self._t.stop()

    def reset(self, d: float) -> None:
        """Stop the ticker and restart it with period ``d``."""
        if d <= 0:
            raise Panic("non-positive interval for Ticker.Reset")
        self._t.period = d
        modtimer(self._t, monotonic() + d)
