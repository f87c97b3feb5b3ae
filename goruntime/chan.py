"""Channels (Go's runtime/chan.go): an hchan with a ring buffer, recvq/sendq and a lock.

A waiting G is queued on the channel as itself (a G has the ``elem``/``ok`` fields a sudog
needs); only ``select`` queues separate :class:`sudog` objects, one per case, sharing a claim
list so that exactly one case can win (Go's ``selectDone``; ``list.pop`` is atomic under the
GIL). A waker pops a waiter under the channel lock, releases the lock, then goready's it.

Semantics, as Go:
* unbuffered send completes only when a receiver takes the value, handed directly to it;
* a receive from a full buffer with a waiting sender takes the head and moves the sender's
  value to the tail;
* ``close`` wakes every receiver with ``(None, False)`` and every sender with
  ``Panic("send on closed channel")``; closing twice panics ``close of closed channel``;
* a receive from a closed, drained channel returns ``None`` (``recv2``: ``(None, False)``).
"""

from __future__ import annotations

import threading
from collections import deque
from typing import Any

from . import proc as _proc
from .errors import Panic
from .proc import _tls, gopark, goready

# Go's makechan limit for 8-byte (pointer-sized) elements on linux/amd64: the buffer plus the
# hchan header must fit in maxAlloc (1 << heapAddrBits, 48 bits).
_MAX_ALLOC = 1 << 48
_HCHAN_SIZE = 96  # unsafe.Sizeof(hchan{}), already a multiple of maxAlign
_ELEM_SIZE = 8
MAX_CAP = (_MAX_ALLOC - _HCHAN_SIZE) // _ELEM_SIZE

_locking = True  # False while a run has one P: then only one thread ever runs G code
_p1: _proc.P | None = None  # that one P: the running G's M is _p1.m (no thread-local lookup)


def set_procs(procs: int, p0: _proc.P | None = None) -> None:
    """Called by run: with one P, channel operations skip the channel lock.

    With ``procs=1`` only the M holding the single P runs G code or timer functions (an M
    returning from a syscall runs nothing until it gets the P back; sysmon and the netpoller
    never touch channels), so every channel operation is already serialized and the lock
    could never be contended; and the M running any G is the one holding that P, so the
    current G and P are found without a thread-local lookup. ``select`` still locks (it is
    not the hot path), which is consistent: the lock is only ever held inside one
    uninterrupted operation of the one M. Code run by ``rt.syscall(fn)`` must not use
    channels (as in Go, a syscall is not Go code). Between runs: locking, no P.
    """
    global _locking, _p1
    _locking = procs > 1
    _p1 = p0 if procs == 1 else None


class sudog:
    """A G waiting in one case of a select (Go's sudog with isSelect)."""

    __slots__ = ("g", "elem", "ok", "sel", "idx", "c")

    def __init__(self, g: _proc.G, sel: list, idx: int, c: Chan, elem: Any = None) -> None:
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


def _wake(sg: Any, value: Any = None) -> None:
    """goready the G behind waiter sg (a G itself, or a select's sudog)."""
    if sg.sel is None:
        goready(sg, value)
    else:
        goready(sg.g, sg)


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

    async def send(self, v: Any) -> None:
        """Send v; blocks until a receiver takes it or there is buffer space.

        Raises ``Panic("send on closed channel")`` if the channel is or becomes closed.
        """
        lock = self._lock
        if _locking:
            lock.acquire()
        if self._closed:
            if _locking:
                lock.release()
            raise Panic("send on closed channel")
        rq = self._recvq
        while rq:
            sg = rq.popleft()
            if sg.sel is None:
                if _locking:
                    lock.release()
                sg.ok = True
                # goready(sg, v), inlined for the common case of an empty runnext
                rn = (_p1 or _tls.m.p).runnext
                if rn:
                    goready(sg, v)
                else:
                    sg.param = v
                    sg.waitreason = None
                    rn.append(sg)
                break
            try:
                sg.sel.pop()
            except IndexError:
                continue
            if _locking:
                lock.release()
            sg.elem = v
            sg.ok = True
            goready(sg.g, sg)
            break
        else:
            buf = self._buf
            if len(buf) < self._cap:
                buf.append(v)
                if _locking:
                    lock.release()
            else:
                g = (_p1.m if _p1 is not None else _tls.m).curg
                g.elem = v
                self._sendq.append(g)
                await gopark(self._unlock if _locking else None, "chan send")
                g.elem = None
                if not g.ok:
                    raise Panic("send on closed channel")
                return
        if _proc.preemptreq and _proc.preempted():
            await _proc.preempt_yield()

    async def recv(self) -> Any:
        """Receive a value; ``None`` once the channel is closed and drained."""
        lock = self._lock
        if _locking:
            lock.acquire()
        buf = self._buf
        if buf:
            v = buf.popleft()
            sq = self._sendq
            while sq:
                sg = sq.popleft()
                if sg.sel is None:
                    buf.append(sg.elem)
                    if _locking:
                        lock.release()
                    sg.ok = True
                    goready(sg)
                    break
                try:
                    sg.sel.pop()
                except IndexError:
                    continue
                buf.append(sg.elem)
                if _locking:
                    lock.release()
                sg.ok = True
                goready(sg.g, sg)
                break
            else:
                if _locking:
                    lock.release()
        else:
            sq = self._sendq
            while sq:
                sg = sq.popleft()
                if sg.sel is None:
                    if _locking:
                        lock.release()
                    v = sg.elem
                    sg.ok = True
                    # goready(sg), inlined for the common case of an empty runnext
                    rn = (_p1 or _tls.m.p).runnext
                    if rn:
                        goready(sg)
                    else:
                        sg.param = None
                        sg.waitreason = None
                        rn.append(sg)
                    break
                try:
                    sg.sel.pop()
                except IndexError:
                    continue
                if _locking:
                    lock.release()
                v = sg.elem
                sg.ok = True
                goready(sg.g, sg)
                break
            else:
                if self._closed:
                    if _locking:
                        lock.release()
                    return None
                g = (_p1.m if _p1 is not None else _tls.m).curg
                self._recvq.append(g)
                return await gopark(self._unlock if _locking else None, "chan receive")
        if _proc.preemptreq and _proc.preempted():
            await _proc.preempt_yield()
        return v

    async def recv2(self) -> tuple[Any, bool]:
        """Receive ``(value, ok)``; ``ok`` is False once the channel is closed and drained."""
        lock = self._lock
        if _locking:
            lock.acquire()
        buf = self._buf
        if buf:
            v = buf.popleft()
            sg = dequeue(self._sendq)
            if sg is not None:
                buf.append(sg.elem)
                if _locking:
                    lock.release()
                sg.ok = True
                _wake(sg)
            else:
                if _locking:
                    lock.release()
        else:
            sg = dequeue(self._sendq)
            if sg is not None:
                if _locking:
                    lock.release()
                v = sg.elem
                sg.ok = True
                _wake(sg)
            else:
                if self._closed:
                    if _locking:
                        lock.release()
                    return None, False
                g = (_p1.m if _p1 is not None else _tls.m).curg
                self._recvq.append(g)
                v = await gopark(self._unlock if _locking else None, "chan receive")
                return v, g.ok
        if _proc.preemptreq and _proc.preempted():
            await _proc.preempt_yield()
        return v, True

    def _trysend(self, v: Any) -> bool:
        """Send without blocking (select with default); False if it would block."""
        lock = self._lock
        if _locking:
            lock.acquire()
        if self._closed:
            if _locking:
                lock.release()
            raise Panic("send on closed channel")
        sg = dequeue(self._recvq)
        if sg is not None:
            if _locking:
                lock.release()
            sg.ok = True
            if sg.sel is None:
                goready(sg, v)
            else:
                sg.elem = v
                goready(sg.g, sg)
            return True
        if len(self._buf) < self._cap:
            self._buf.append(v)
            if _locking:
                lock.release()
            return True
        if _locking:
            lock.release()
        return False

    def close(self) -> None:
        """Close the channel: wake every waiting receiver and sender (senders panic)."""
        lock = self._lock
        if _locking:
            lock.acquire()
        if self._closed:
            if _locking:
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
        if _locking:
            lock.release()
        for sg in woken:
            _wake(sg)

    def __aiter__(self) -> Chan:
        return self

    async def __anext__(self) -> Any:
        v, ok = await self.recv2()
        if not ok:
            raise StopAsyncIteration
        return v


def close(c: Chan | None) -> None:
    """Go's ``close(c)``, including ``close of nil channel`` for ``None``."""
    if c is None:
        raise Panic("close of nil channel")
    c.close()
