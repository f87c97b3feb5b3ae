"""select (Go's runtime/select.go).

``await select(recv(a), send(b, v), default=False)`` returns ``(index, value, ok)``:
``index`` of the case that ran (``-1`` for default); for a receive, the value and ``ok``
(False once that channel is closed and drained); for a send, ``(index, None, True)``.

As Go's selectgo: cases are polled in a random order (uniform choice among ready cases);
channels are locked in one global order (by ``id``), so two Ms selecting on the same channels
cannot deadlock; with nothing ready and no default, the G is queued on every case's channel
(one sudog per case, sharing one claim) and, when one case fires, removes itself from the
others. A ``None`` channel is never ready; ``select()`` with no cases blocks forever (a
deadlock if nothing else can run). A send case on a closed channel panics.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from typing import Any

from . import runtime2 as _r
from .chan import Chan, chanrecv, chansend, sudog
from .errors import Panic
from .proc import gopark, gopreempt, preemptcheck
from .runtime2 import G, tls


class recv:
    """A receive case: ``recv(ch)``."""

    __slots__ = ("c",)

    def __init__(self, c: Chan | None) -> None:
        self.c = c


class send:
    """A send case: ``send(ch, v)``."""

    __slots__ = ("c", "v")

    def __init__(self, c: Chan | None, v: Any) -> None:
        self.c = c
        self.v = v


_DEFAULT = (-1, None, False)


def _lockorder(cases: tuple) -> list[Chan]:
    seen = {}
    for cs in cases:
        c = cs.c
        if c is not None:
            seen[id(c)] = c
    return [seen[k] for k in sorted(seen)]


def _unlocker(lockorder: list[Chan]) -> Callable[[], None]:
    def unlockall() -> None:
        for c in reversed(lockorder):
            c._lock.release()

    return unlockall


def _parkunlockall(g: G, unlockall: Callable[[], None]) -> bool:
    unlockall()
    return True


async def select(*cases: recv | send, default: bool = False) -> tuple[int, Any, bool]:
    """Run one ready case (chosen uniformly at random), else default, else block."""
    n = len(cases)
    if n == 1:
        order: Any = (0,)
    elif n == 2:
        order = (0, 1) if random.random() < 0.5 else (1, 0)
    else:
        order = list(range(n))
        random.shuffle(order)
    if _r.locking:
        lockorder: list[Chan] | None = _lockorder(cases)
        for c in lockorder:
            c._lock.acquire()
        unlockall: Callable[[], None] | None = _unlocker(lockorder)
    else:
        lockorder = unlockall = None  # one P: operations are serialized already

    # Pass 1: look for a case that can proceed now (chansend/chanrecv unlock all if so).
    res: tuple | None = None
    for i in order:
        cs = cases[i]
        c = cs.c
        if c is None:
            continue
        if cs.__class__ is recv:
            r = chanrecv(c, unlockall)
            if r is not None:
                res = (i, r[0], r[1])
                break
        elif chansend(c, cs.v, unlockall):
            res = (i, None, True)
            break
    else:
        if default:
            if unlockall is not None:
                unlockall()
            res = _DEFAULT
    if res is not None:
        if _r.preemptreq and preemptcheck():
            await gopreempt()
        return res
    onep = _r.onep
    m = onep.m if onep is not None else tls.m
    g = m.curg if m is not None else None
    if g is None:
        if unlockall is not None:
            unlockall()
        raise RuntimeError("select() must be awaited inside a goroutine")
    # Pass 2: enqueue on every channel, then park.
    claim = [True]
    sgs = []
    for i in order:
        cs = cases[i]
        c = cs.c
        if c is None:
            continue
        if cs.__class__ is recv:
            sg = sudog(g, claim, i, c)
            c._recvq.append(sg)
        else:
            sg = sudog(g, claim, i, c, cs.v)
            c._sendq.append(sg)
        sgs.append(sg)
    if not sgs:  # every case's channel is None
        if unlockall is not None:
            unlockall()
        await gopark(None, None, "select (no cases)")
        raise AssertionError("unreachable: a select with no cases was woken")
    won = await gopark(None if unlockall is None else _parkunlockall, unlockall, "select")
    # Pass 3: dequeue from the channels whose cases did not fire.
    if lockorder is not None:
        for c in lockorder:
            c._lock.acquire()
    for sg in sgs:
        if sg is won:
            continue
        q = sg.c._recvq if cases[sg.idx].__class__ is recv else sg.c._sendq
        try:
            q.remove(sg)
        except ValueError:
            pass
    if unlockall is not None:
        unlockall()
    i = won.idx
    if cases[i].__class__ is recv:
        return i, won.elem, won.ok
    if not won.ok:
        raise Panic("send on closed channel")
    return i, None, True
