"""Channels (Go's runtime/chan.go): an hchan with a buffer, recvq/sendq and a lock.

One implementation per operation, as Go's: :func:`chansend` and :func:`chanrecv` do
everything up to Go's ``if !block`` line on a locked channel -- hand over to a waiting
peer, use the buffer, see it closed -- and report "would block" with the channel still
locked. The caller then blocks (``Chan.send``/``recv``/``recv2``: queue the G and gopark,
the lock released by the park) or not (``select``'s first pass, :func:`selectnbsend`).
``select`` passes an unlock function that releases all of its channels.

A waiting G is queued on the channel as itself (a G has the ``elem``/``ok`` fields a sudog
needs); only ``select`` queues separate :class:`sudog` objects, one per case, sharing a claim
list so that exactly one case can win (Go's ``selectDone``; ``list.pop`` is atomic under the
GIL). A waker pops a waiter under the channel lock, releases the lock, then readies it.

Semantics, as Go:
* unbuffered send completes only when a receiver takes the value, handed directly to it;
* a receive from a full buffer with a waiting sender takes the head and moves the sender's
  value to the tail;
* ``close`` wakes every receiver with ``(None, False)`` and every sender with
  ``Panic("send on closed channel")``; closing twice panics ``close of closed channel``;
* a receive from a closed, drained channel returns ``None`` (``recv2``: ``(None, False)``);
* ``makechan`` accepts capacities ``0..MAX_CAP``, else panics ``makechan: size out of range``.
"""

from __future__ import annotations

import threading
from collections import deque
from collections.abc import Callable, Coroutine
from typing import Any

from . import runtime2 as _r
from .errors import Panic
from .proc import gopark, gopreempt, goready, parkunlock, preemptcheck, ready
from .runtime2 import G, tls

# Go's makechan limit for 8-byte (pointer-sized) elements on linux/amd64: the buffer plus the
# hchan header must fit in maxAlloc (1 << heapAddrBits, 48 bits).
_MAX_ALLOC = 1 << 48
_HCHAN_SIZE = 96  # unsafe.Sizeof(hchan{}), already a multiple of maxAlign
_ELEM_SIZE = 8
MAX_CAP = (_MAX_ALLOC - _HCHAN_SIZE) // _ELEM_SIZE


class sudog:
    """A G waiting in one case of a select (Go's sudog with isSelect)."""

    __slots__ = ("g", "elem", "ok", "sel", "idx", "c")

    def __init__(self, g: G, sel: list, idx: int, c: Chan, elem: Any = None) -> None:
        self.g = g
        self.sel = sel  # shared by the select's sudogs; pop() claims the select
        self.idx = idx
        self.c = c
        self.elem = elem
        self.ok = False


def dequeue(q: deque) -> Any:
    """Pop the first waiter of q that can still be woken (claiming a select); None if none."""
    while q:
        sg = q.popleft()
        sel = sg.sel
        if sel is None:
            return sg
        try:
            sel.pop()
        except IndexError:
            continue  # its select already completed through another case
        return sg
    return None


def _wake(sg: Any, value: Any = None) -> None:
    """Ready the G behind waiter sg from this M: a G gets value, a select the sudog itself."""
    p = _r.onep or tls.m.p
    if sg.sel is None:
        ready(p, sg, value)
    else:
        ready(p, sg.g, sg)


def _handoff(g: G, value: Any) -> None:
    """``_wake(g, value)`` for a G (not a select), with ``proc.ready``'s common case inlined:
    an empty runnext. It runs once per channel handoff (tests/goruntime/test_chan.py checks
    that it leaves what ``proc.ready`` leaves)."""
    p = _r.onep or tls.m.p
    rn = p.runnext
    if rn:
        ready(p, g, value)
        return
    assert g.waitreason is not None, f"{g!r} readied twice"
    g.param = value
    g.waitreason = None
    rn.append(g)


class Chan:
    """A Go channel of capacity ``cap`` (0: unbuffered).

    ``cap`` must be an int in ``0..MAX_CAP`` (what Go's makechan accepts for 8-byte elements);
    anything else panics ``makechan: size out of range``. The buffer grows as it fills, so a
    large capacity costs nothing until used.
    """

    __slots__ = ("_cap", "_buf", "_recvq", "_sendq", "_closed", "_lock", "_unlock", "__weakref__")

    def __init__(self, cap: int = 0) -> None:
        if not isinstance(cap, int) or not 0 <= cap <= MAX_CAP:
            raise Panic("makechan: size out of range")
        self._cap = cap
        self._buf: deque = deque()
        self._recvq: deque = deque()
        self._sendq: deque = deque()
        self._closed = False
        self._lock = threading.Lock()
        self._unlock = self._lock.release

    def __repr__(self) -> str:
        st = " closed" if self._closed else ""
        return f"<Chan cap={self._cap} len={len(self._buf)}{st}>"

    def __len__(self) -> int:
        return len(self._buf)

    def len(self) -> int:
        """Number of values queued in the buffer (Go's len(ch))."""
        return len(self._buf)

    def cap(self) -> int:
        """Capacity of the buffer (Go's cap(ch))."""
        return self._cap

    @property
    def closed(self) -> bool:
        return self._closed

    # send and recv inline the commonest cases of chansend and chanrecv, with proc.ready's
    # for an empty runnext: a G parked on the other side takes or hands over the value; the
    # buffer; nobody there (wait). A function call costs about as much as such an
    # operation. Everything else goes through chansend/chanrecv. tests/goruntime/
    # test_chan.py checks that both paths give the same results.

    async def send(self, v: Any) -> None:
        """Send v; blocks until a receiver takes it or there is buffer space.

        Raises ``Panic("send on closed channel")`` if the channel is or becomes closed.
        """
        onep = _r.onep  # procs=1: no locks (runtime2)
        if onep is None:
            self._lock.acquire()
        rq = self._recvq
        if rq and not self._closed:
            g = rq.popleft()
            if g.sel is None:  # a G waits to receive: hand v over
                if onep is None:
                    self._lock.release()
                g.ok = True
                p = onep or tls.m.p
                rn = p.runnext
                if rn:
                    ready(p, g, v)
                else:
                    assert g.waitreason is not None, f"{g!r} readied twice"
                    g.param = v
                    g.waitreason = None
                    rn.append(g)
                if _r.preemptreq and preemptcheck():
                    await gopreempt()
                return
            rq.appendleft(g)  # a select's sudog: chansend claims it, or one behind it
        if rq or self._closed:
            done = chansend(self, v, self._unlock if onep is None else None)
        elif len(self._buf) < self._cap:
            done = True
            self._buf.append(v)
            if onep is None:
                self._lock.release()
        else:
            done = False
        if done:
            if _r.preemptreq and preemptcheck():
                await gopreempt()
            return
        # wait until a receiver takes v
        g = (onep.m if onep is not None else tls.m).curg
        g.elem = v
        self._sendq.append(g)
        await gopark(parkunlock if onep is None else None, self._lock, "chan send")
        g.elem = None
        if not g.ok:
            raise Panic("send on closed channel")

    def _recv(withok: bool) -> Callable[[Chan], Coroutine[Any, Any, Any]]:
        # One body for recv and recv2, made twice: a wrapper would cost a call per receive.
        async def recv(self: Chan) -> Any:
            onep = _r.onep  # procs=1: no locks (runtime2)
            if onep is None:
                self._lock.acquire()
            sq = self._sendq
            if sq:
                g = sq.popleft()
                if g.sel is None and not self._buf:  # a G waits to send: take its value
                    if onep is None:
                        self._lock.release()
                    v = g.elem
                    g.ok = True
                    p = onep or tls.m.p
                    rn = p.runnext
                    if rn:
                        ready(p, g)
                    else:
                        assert g.waitreason is not None, f"{g!r} readied twice"
                        g.param = None
                        g.waitreason = None
                        rn.append(g)
                    if _r.preemptreq and preemptcheck():
                        await gopreempt()
                    return (v, True) if withok else v
                sq.appendleft(g)  # behind a full buffer, or a select's sudog
                r = chanrecv(self, self._unlock if onep is None else None)
                if r is not None:
                    if _r.preemptreq and preemptcheck():
                        await gopreempt()
                    return r if withok else r[0]
                # only selects that are done were waiting to send: wait below
            elif self._buf:  # a buffered value, no sender to refill its slot
                v = self._buf.popleft()
                if onep is None:
                    self._lock.release()
                if _r.preemptreq and preemptcheck():
                    await gopreempt()
                return (v, True) if withok else v
            elif self._closed:
                if onep is None:
                    self._lock.release()
                return (None, False) if withok else None
            # wait until a sender hands a value over
            g = (onep.m if onep is not None else tls.m).curg
            self._recvq.append(g)
            v = await gopark(parkunlock if onep is None else None, self._lock, "chan receive")
            return (v, g.ok) if withok else v

        recv.__name__ = "recv2" if withok else "recv"
        recv.__qualname__ = f"Chan.{recv.__name__}"
        recv.__doc__ = (
            "Receive ``(value, ok)``; ``ok`` is False once the channel is closed and drained."
            if withok else "Receive a value; ``None`` once the channel is closed and drained.")
        return recv

    recv = _recv(False)
    recv2 = _recv(True)
    del _recv

    def close(self) -> None:
        """Close the channel: wake every waiting receiver and sender (senders panic).

        May be called from any thread.
        """
        lock = self._lock
        lock.acquire()
        if self._closed:
            lock.release()
            raise Panic("close of closed channel")
        self._closed = True
        woken = []
        for q in (self._recvq, self._sendq):
            while True:
                sg = dequeue(q)
                if sg is None:
                    break
                sg.ok = False
                sg.elem = None
                woken.append(sg)
        lock.release()
        for sg in woken:
            if sg.sel is None:
                goready(sg)
            else:
                goready(sg.g, sg)

    def __aiter__(self) -> Chan:
        return self

    async def __anext__(self) -> Any:
        v, ok = await self.recv2()
        if not ok:
            raise StopAsyncIteration
        return v


def chansend(c: Chan, v: Any, unlockf: Callable[[], Any] | None) -> bool:
    """Send v on locked c if that needs no wait (Go's chansend up to ``if !block``).

    True: handed to a waiting receiver or buffered, and c unlocked with ``unlockf()`` (None:
    nothing to unlock). False: it would block, and c is still locked. Panics ``send on closed
    channel`` (after unlocking).
    """
    if c._closed:
        if unlockf is not None:
            unlockf()
        raise Panic("send on closed channel")
    rq = c._recvq
    if rq:
        sg = rq[0]
        if sg.sel is None:  # dequeue(rq) and _wake(sg, v), inlined for a G
            rq.popleft()
            if unlockf is not None:
                unlockf()
            sg.ok = True
            _handoff(sg, v)
            return True
        sg = dequeue(rq)
        if sg is not None:
            if unlockf is not None:
                unlockf()
            sg.ok = True
            if sg.sel is not None:
                sg.elem = v
            _wake(sg, v)
            return True
    buf = c._buf
    if len(buf) < c._cap:
        buf.append(v)
        if unlockf is not None:
            unlockf()
        return True
    return False


def chanrecv(c: Chan, unlockf: Callable[[], Any] | None) -> tuple[Any, bool] | None:
    """Receive from locked c if that needs no wait (Go's chanrecv up to ``if !block``).

    ``(v, True)`` from the buffer (refilled from a waiting sender) or from a waiting sender;
    ``(None, False)`` if c is closed and drained; c is then unlocked with ``unlockf()``.
    None: it would block, and c is still locked.
    """
    buf = c._buf
    sq = c._sendq
    if not sq:
        if buf:
            v = buf.popleft()
            if unlockf is not None:
                unlockf()
            return v, True
        if not c._closed:
            return None
        if unlockf is not None:
            unlockf()
        return None, False
    sg = sq[0]
    if sg.sel is None:  # dequeue(sq), inlined for a G
        sq.popleft()
    else:
        sg = dequeue(sq)
        if sg is None:  # only selects that are done already
            return chanrecv(c, unlockf)
    if buf:
        v = buf.popleft()
        buf.append(sg.elem)
    else:
        v = sg.elem
    if unlockf is not None:
        unlockf()
    sg.ok = True
    if sg.sel is None:
        _handoff(sg, None)
    else:
        _wake(sg)
    return v, True


def selectnbsend(c: Chan, v: Any) -> bool:
    """Send v on c unless that would block (Go's selectnbsend); any M with a P may call it."""
    lock = c._lock
    lock.acquire()
    if chansend(c, v, lock.release):
        return True
    lock.release()
    return False


def close(c: Chan | None) -> None:
    """Go's ``close(c)``, including ``close of nil channel`` for ``None``."""
    if c is None:
        raise Panic("close of nil channel")
    c.close()
