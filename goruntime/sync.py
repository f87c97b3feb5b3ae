"""Package sync: WaitGroup, Mutex, RWMutex, Once, built on gopark/goready (Go's sema.go).

Each primitive keeps its state and a FIFO of parked Gs under a small internal lock (skipped
for WaitGroup and Mutex with one P, as channels skip theirs: ``runtime2.onep``), and hands
ownership directly to the G it wakes (Go's starvation mode), so a woken G never has to
compete again. Misuse is reported with Go's messages: a negative WaitGroup counter is a
``Panic``; unlocking an unlocked (RW)Mutex is Go's unrecoverable ``fatal error``, raised as
``Fatal`` (not a Panic, so a ``recover``-style ``except Panic`` does not swallow it).
"""

from __future__ import annotations

import inspect
import threading
from collections import deque
from collections.abc import Callable
from typing import Any

from . import runtime2 as _r
from .errors import Fatal, Panic
from .proc import getg, gopark, gopreempt, goready, parkunlock, preemptcheck
from .runtime2 import G


def _curg() -> G:
    g = getg()
    if g is None:
        raise RuntimeError("sync primitives must be awaited inside a goroutine")
    return g


class WaitGroup:
    """Wait for a collection of Gs to finish (Go's sync.WaitGroup)."""

    __slots__ = ("_n", "_waiters", "_lk")

    def __init__(self) -> None:
        self._n = 0
        self._waiters: list[G] = []
        self._lk = threading.Lock()

    def add(self, delta: int) -> None:
        """Add delta to the counter; at zero every waiter is released.

        Raises ``Panic("sync: negative WaitGroup counter")`` if it goes below zero.
        """
        locking = _r.locking
        if locking:
            self._lk.acquire()
        try:
            n = self._n + delta
            if n < 0:
                self._n = 0
                raise Panic("sync: negative WaitGroup counter")
            self._n = n
            if n or not self._waiters:
                return
            ws = self._waiters
            self._waiters = []
        finally:
            if locking:
                self._lk.release()
        for g in ws:
            goready(g)

    def done(self) -> None:
        """Decrement the counter by one."""
        self.add(-1)

    async def wait(self) -> None:
        """Block until the counter is zero."""
        lk = self._lk
        locking = _r.locking
        if locking:
            lk.acquire()
        if self._n == 0:
            if locking:
                lk.release()
            return
        self._waiters.append(_curg())
        await gopark(parkunlock if locking else None, lk, "sync.WaitGroup.Wait")


class Mutex:
    """A mutual exclusion lock (Go's sync.Mutex); also ``async with mu:``."""

    __slots__ = ("_locked", "_waiters", "_lk")

    def __init__(self) -> None:
        self._locked = False
        self._waiters: deque[G] = deque()
        self._lk = threading.Lock()

    async def lock(self) -> None:
        """Acquire the mutex, parking until it is handed to us if it is held."""
        lk = self._lk
        locking = _r.locking
        if locking:
            lk.acquire()
        if not self._locked:
            self._locked = True
            if locking:
                lk.release()
            if _r.preemptreq and preemptcheck():
                await gopreempt()
            return
        self._waiters.append(_curg())
        await gopark(parkunlock if locking else None, lk, "sync.Mutex.Lock")

    def try_lock(self) -> bool:
        """Acquire the mutex if it is free; never blocks."""
        with self._lk:
            if self._locked:
                return False
            self._locked = True
            return True

    def unlock(self) -> None:
        """Release the mutex, handing it to the longest waiter if any.

        Raises ``Fatal("sync: unlock of unlocked mutex")`` if it is not locked.
        """
        lk = self._lk
        locking = _r.locking
        if locking:
            lk.acquire()
        if not self._locked:
            if locking:
                lk.release()
            raise Fatal("sync: unlock of unlocked mutex")
        if self._waiters:
            g = self._waiters.popleft()
            if locking:
                lk.release()
            goready(g)  # ownership passes to g: _locked stays True
            return
        self._locked = False
        if locking:
            lk.release()

    def locked(self) -> bool:
        return self._locked

    async def __aenter__(self) -> Mutex:
        await self.lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unlock()


class RWMutex:
    """A reader/writer lock (Go's sync.RWMutex): once a writer waits, new readers wait too."""

    __slots__ = ("_readers", "_writer", "_rwait", "_wwait", "_lk")

    def __init__(self) -> None:
        self._readers = 0
        self._writer = False
        self._rwait: list[G] = []
        self._wwait: deque[G] = deque()
        self._lk = threading.Lock()

    async def rlock(self) -> None:
        """Acquire for reading."""
        lk = self._lk
        lk.acquire()
        if not self._writer and not self._wwait:
            self._readers += 1
            lk.release()
            return
        self._rwait.append(_curg())
        await gopark(parkunlock, lk, "sync.RWMutex.RLock")

    def runlock(self) -> None:
        """Release a read lock. ``Fatal`` if not read-locked."""
        with self._lk:
            if self._readers <= 0:
                raise Fatal("sync: RUnlock of unlocked RWMutex")
            self._readers -= 1
            if self._readers or not self._wwait:
                return
            self._writer = True
            g = self._wwait.popleft()
        goready(g)

    async def lock(self) -> None:
        """Acquire for writing."""
        lk = self._lk
        lk.acquire()
        if not self._writer and self._readers == 0:
            self._writer = True
            lk.release()
            return
        self._wwait.append(_curg())
        await gopark(parkunlock, lk, "sync.RWMutex.Lock")

    def unlock(self) -> None:
        """Release the write lock, admitting every waiting reader, else the next writer."""
        with self._lk:
            if not self._writer:
                raise Fatal("sync: Unlock of unlocked RWMutex")
            self._writer = False
            if self._rwait:
                ws = self._rwait
                self._rwait = []
                self._readers = len(ws)
            elif self._wwait:
                self._writer = True
                ws = [self._wwait.popleft()]
            else:
                return
        for g in ws:
            goready(g)

    async def __aenter__(self) -> RWMutex:
        await self.lock()
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.unlock()


class Once:
    """Run a function exactly once (Go's sync.Once); concurrent callers wait for it."""

    __slots__ = ("_done", "_m")

    def __init__(self) -> None:
        self._done = False
        self._m = Mutex()

    async def do(self, f: Callable[..., Any], *args: Any) -> None:
        """Call ``f(*args)`` (awaiting it if it returns an awaitable) on the first call only.

        As Go, if f raises, it is still considered done.
        """
        if self._done:
            return
        async with self._m:
            if self._done:
                return
            try:
                r = f(*args)
                if inspect.isawaitable(r):
                    await r
            finally:
                self._done = True
