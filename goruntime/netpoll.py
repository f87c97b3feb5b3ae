"""The network poller: one epoll instance per run and a pollDesc per fd.

After Go's runtime/netpoll.go and netpoll_epoll.go. Every fd is registered once, when it is
opened, edge-triggered for read, write and hang-up. A pollDesc keeps one read and one write
semaphore (``rg``/``wg``), each ``None`` (nothing), ``pdReady`` (an event arrived that nobody
has consumed yet) or the parked G itself (Go's intermediate pdWait folds into the commit, see
``pollDesc.wait``). Transitions are made under a lock (one of a few shared by fd number), so
an event that arrives before the G parks is never lost and a G is never woken twice.
``netpoll(delay)`` turns epoll events into runnable Gs, which the scheduler
(proc.findrunnable, sysmon) injects into run queues; ``netpoll_break`` wakes the one M
blocked in ``epoll_wait`` through an eventfd.

A G waits for I/O only after its syscall returned EAGAIN (internal/poll/fd_unix.go) or after
a read that drained the socket (see ``pollDesc.hup``), and it retries the syscall after every
wakeup: a spurious wakeup costs one extra syscall and is harmless; a lost one would hang a
connection, which is what the state machine rules out. Deadlines are timers (proc.addtimer)
that mark the pollDesc expired and wake its waiters; close (``evict``) does the same with
``closing``. A woken G learns which from its wakeup value (True: I/O ready) and the flags.
"""

from __future__ import annotations

import os
import select
import threading
from collections import deque
from collections.abc import Awaitable, Iterator
from time import monotonic
from typing import Any

from . import runtime2 as _r
from .proc import addtimer, gopark, goready

__all__ = [
    "ErrNetClosing",
    "Netpoller",
    "Timeout",
    "netpollGenericInit",
    "pdReady",
    "pollDesc",
    "poll_open",
]


class ErrNetClosing(OSError):
    """An operation on a connection or listener that was closed (Go's net.ErrClosed)."""

    def __init__(self, msg: str = "use of closed network connection") -> None:
        super().__init__(msg)


class Timeout(TimeoutError):
    """A read or write deadline passed (Go's os.ErrDeadlineExceeded, ``Timeout() == true``)."""

    def __init__(self, msg: str = "i/o timeout") -> None:
        super().__init__(msg)


class _Sema:
    __slots__ = ("name",)

    def __init__(self, name: str) -> None:
        self.name = name

    def __repr__(self) -> str:
        return self.name


pdReady = _Sema("pdReady")


class _Ready:
    """An awaitable that is already done: what wait() returns when an event was pending."""

    __slots__ = ()

    def __await__(self) -> Iterator[None]:
        return iter(())


_READY = _Ready()

_EPOLLIN = select.EPOLLIN
_EPOLLOUT = select.EPOLLOUT
_EPOLLRDHUP = select.EPOLLRDHUP
_EPOLLHUP = select.EPOLLHUP
_EPOLLERR = select.EPOLLERR
_HUP_EVENTS = _EPOLLRDHUP | _EPOLLHUP | _EPOLLERR
_READ_EVENTS = _EPOLLIN | _HUP_EVENTS
_WRITE_EVENTS = _EPOLLOUT | _EPOLLHUP | _EPOLLERR
_REGISTER = _EPOLLIN | _EPOLLOUT | _EPOLLRDHUP | select.EPOLLET
_MAXEVENTS = 128  # as Go's netpoll: at most 128 events per epoll_wait


class Netpoller:
    """One epoll instance and its eventfd; created lazily per run by netpollGenericInit.

    ``netpoll`` may be called by several Ms at once (the kernel allows concurrent
    ``epoll_wait``); the scheduler makes sure at most one of them blocks.
    """

    def __init__(self) -> None:
        self.ep = select.epoll()
        # Level-triggered, unlike the sockets: a non-blocking netpoll(0) must not consume
        # the edge that the M blocked in epoll_wait needs to see (Go registers it the same way).
        self.efd = os.eventfd(0, os.EFD_NONBLOCK | os.EFD_CLOEXEC)
        self.ep.register(self.efd, _EPOLLIN)
        self.pds: dict[int, pollDesc] = {}
        self.wakesig = False
        # One entry per G parked on an fd (Go's atomic netpollWaiters): deque.append, pop and
        # len are atomic under the GIL, and an entry costs 8 bytes, not a set slot.
        self.waiters: deque[None] = deque()
        self.closed = False
        self.calls = 0  # polls that returned, blocking or not (stats()["netpolls"])
        self.on_close: list[Any] = []  # callables run by close() (signal.py restores state)

    def open(self, fd: int) -> pollDesc:
        pd = pollDesc(fd, self)
        self.pds[fd] = pd
        self.ep.register(fd, _REGISTER)
        return pd

    def netpoll(self, delay: float) -> list:
        """Poll for I/O readiness and return the Gs it made runnable.

        delay < 0 blocks until an event or netpoll_break; 0 only polls; > 0 blocks at most
        ``delay`` seconds (rounded up to a millisecond, epoll's resolution). The Gs returned
        have their wakeup value set; the caller injects them (proc.injectglist). Each call
        that returns counts in ``calls`` (sysmon tells from it whether anyone polls).
        """
        if self.closed:
            return []
        try:
            events = self.ep.poll(delay, _MAXEVENTS)  # any delay < 0 blocks
        except (InterruptedError, ValueError):  # ValueError: closed by another M at exit
            return []
        self.calls += 1
        torun: list = []
        if not events:
            return torun
        pds = self.pds
        ready = pdReady
        for fd, ev in events:
            pd = pds.get(fd)
            if pd is None:
                efd = self.efd
                if fd == efd and delay != 0:
                    # Only a blocking poll drains the eventfd: a netpoll(0) leaves the wakeup
                    # for the M that is (or is about to be) blocked in epoll_wait.
                    try:
                        os.eventfd_read(efd)
                    except BlockingIOError:
                        pass
                    self.wakesig = False
                continue
            # netpollready, with netpollunblock(ioready=True) inlined: this loop runs once per
            # event. Reading pdReady without the lock is safe: only the G's wait moves rg/wg
            # away from pdReady, and skipping then is the same as unblocking just before it.
            # A woken G's wakeup value (True: I/O ready) is set here; the injector clears
            # its waitreason. Here and in the commits the lock is taken with acquire/release,
            # not ``with``: nothing between can raise (the waiters entry exists while a G is
            # parked), and ``with`` makes two bound methods per use.
            if ev & _READ_EVENTS:
                if ev & _HUP_EVENTS:
                    pd.hup = True  # before the unblock: see pollDesc.hup
                if pd.rg is not ready:
                    pd.lock.acquire()
                    g = pd.rg
                    if g is None:
                        pd.rg = ready
                    elif g is not ready:
                        pd.rg = None
                        g.param = True
                        torun.append(g)
                        self.waiters.pop()
                    pd.lock.release()
            if pd.wg is not ready and ev & _WRITE_EVENTS:  # wg: pdReady unless writes block
                pd.lock.acquire()
                g = pd.wg
                if g is None:
                    pd.wg = ready
                elif g is not ready:
                    pd.wg = None
                    g.param = True
                    torun.append(g)
                    self.waiters.pop()
                pd.lock.release()
        return torun

    def netpoll_break(self) -> None:
        """Wake the M blocked in netpoll, if any. Coalesced: many calls, one eventfd write."""
        if self.wakesig or self.closed:
            return
        self.wakesig = True
        try:
            os.eventfd_write(self.efd, 1)
        except (BlockingIOError, OSError):
            pass

    def waiting(self) -> int:
        """How many Gs are parked on an fd now (the deadlock check counts them as alive)."""
        return len(self.waiters)

    def close(self) -> None:
        """Release epoll and the eventfd at the end of run; pollDescs left open are dropped."""
        if self.closed:
            return
        self.closed = True
        for f in self.on_close:
            f()
        self.on_close.clear()
        self.pds.clear()
        self.waiters.clear()
        self.ep.close()
        os.close(self.efd)


_initlock = threading.Lock()

# pollDescs share a fixed set of locks, picked by fd: a lock is held only for a few
# assignments and never together with another pollDesc's, so sharing costs no deadlock and
# next to no contention, and saves a lock object per connection.
_NLOCKS = 64
_locks = [threading.Lock() for _ in range(_NLOCKS)]


def netpollGenericInit() -> Netpoller:
    """Return the running scheduler's Netpoller, creating it on first use (thread-safe)."""
    s = _r.sched
    if s is None:
        raise RuntimeError("goruntime: network I/O needs a running scheduler (call it in rt.run)")
    np = s.netpoller
    if np is None:
        with _initlock:
            np = s.netpoller
            if np is None:
                np = s.netpoller = Netpoller()
    return np


def poll_open(fd: int) -> pollDesc:
    """Register fd (which must be non-blocking) with the run's netpoller; return its pollDesc."""
    return netpollGenericInit().open(fd)


class pollDesc:
    """Per-fd poller state: read and write semaphores, deadlines, closing.

    ``rd``/``wd`` are deadlines as Go keeps them: 0 none, > 0 an absolute time.monotonic()
    value with a timer armed, < 0 already passed. ``rseq``/``wseq`` change whenever a deadline
    is reset or the fd closes, so a timer that fires late for an old deadline does nothing.
    Both are always floats, tested against ``0.0``: CPython compares two floats on a fast
    path, a float with an int through the generic one (every read and write tests them).
    """

    __slots__ = (
        "fd",
        "poller",
        "lock",
        "rg",
        "wg",
        "rd",
        "wd",
        "rt",
        "wt",
        "rseq",
        "wseq",
        "closing",
        "hup",
    )

    def __init__(self, fd: int, poller: Netpoller) -> None:
        self.fd = fd
        self.poller = poller
        self.lock = _locks[fd % _NLOCKS]
        self.rg: Any = None
        self.wg: Any = None
        self.rd = 0.0
        self.wd = 0.0
        self.rt: Any = None
        self.wt: Any = None
        self.rseq = 0
        self.wseq = 0
        self.closing = False
        # Sticky: an event reported a hang-up or error. Until then, a read that drained the
        # socket (returned fewer bytes than asked) can park without a second, EAGAIN read:
        # edge-triggered epoll reports any byte that arrives after that read with an event
        # processed after it, which sets pdReady or wakes the G. A FIN that arrived with the
        # data would leave no later event, hence the flag (set before the unblock).
        self.hup = False

    def __repr__(self) -> str:
        return f"<pollDesc fd={self.fd} rg={self.rg!r} wg={self.wg!r} closing={self.closing}>"

    # -- errors ------------------------------------------------------------------------------

    def checkerr(self, mode: str) -> None:
        """Raise ErrNetClosing or Timeout if an operation in ``mode`` cannot proceed."""
        if self.closing:
            raise ErrNetClosing()
        if mode == "r":
            if self.rd < 0.0:
                raise Timeout()
        elif self.wd < 0.0:
            raise Timeout()

    # -- waiting -----------------------------------------------------------------------------

    def wait(self, mode: str) -> Awaitable[None]:
        """Park the calling G until fd may be ready for ``mode`` ('r' or 'w'); ``await`` it.

        Returns at once if an event arrived since the last wait (consuming it). May return
        spuriously, as Go's does: the caller retries its syscall and waits again on EAGAIN,
        and checks ``closing``/deadlines after a wakeup. Raises ErrNetClosing if the fd is
        being closed and Timeout if the deadline for ``mode`` passed; a G parked when that
        happens is woken (and raises on its next wait).
        """
        # Go's poll_runtime_pollWait + netpollblock. A plain function that returns either a
        # finished awaitable (an event was pending: consume it) or gopark itself, so the hot
        # path adds no coroutine frame. Go announces the wait with a CAS nil -> pdWait before
        # parking and commits with a CAS pdWait -> G after; here the commit (gopark's
        # unlockf, run once the G is off its M and given that G) holds the pollDesc lock, so
        # it re-checks rg and the error flags itself and the announce step is folded into it:
        # one lock round trip per park instead of two. Close and deadlines set their flag
        # under the same lock before they look for a G to wake, so either the commit sees
        # the flag (and the G resumes at once) or the unblock sees the parked G. An unblock
        # that takes the G clears rg/wg and hands over True (I/O ready) or False (closing or
        # deadline).
        return self.wait_read() if mode == "r" else self.wait_write()

    def wait_read(self) -> Awaitable[None]:
        """``wait("r")``, for the hot read path."""
        if self.closing:
            raise ErrNetClosing()
        if self.rd < 0.0:
            raise Timeout()
        old = self.rg
        if old is not None:
            if old is not pdReady:
                raise RuntimeError(f"goruntime: two Gs waiting on fd {self.fd} (r)")
            with self.lock:
                if self.rg is pdReady:
                    self.rg = None
                    return _READY
        return gopark(commit_r, self, "IO wait")

    def wait_write(self) -> Awaitable[None]:
        """``wait("w")``."""
        if self.closing:
            raise ErrNetClosing()
        if self.wd < 0.0:
            raise Timeout()
        old = self.wg
        if old is not None:
            if old is not pdReady:
                raise RuntimeError(f"goruntime: two Gs waiting on fd {self.fd} (w)")
            with self.lock:
                if self.wg is pdReady:
                    self.wg = None
                    return _READY
        return gopark(commit_w, self, "IO wait")

    def unblock(self, mode: str, ioready: bool) -> Any:
        """Go's netpollunblock: record readiness (or an error) for ``mode``; return the G to
        wake, or None. The caller makes the G runnable."""
        with self.lock:
            return self._unblock_locked(mode, ioready)

    def _unblock_locked(self, mode: str, ioready: bool) -> Any:
        old = self.rg if mode == "r" else self.wg
        if old is pdReady:
            return None
        if old is None:
            # Nobody parked: remember readiness (pdReady) for the next wait. A deadline or
            # close leaves the semaphore empty; its flag carries the error.
            if ioready:
                if mode == "r":
                    self.rg = pdReady
                else:
                    self.wg = pdReady
            return None
        # A parked G: take it; it learns ioready from its wakeup value.
        if mode == "r":
            self.rg = None
        else:
            self.wg = None
        self.poller.waiters.pop()
        return old

    # -- deadlines ---------------------------------------------------------------------------

    def set_deadline(self, t: float | None, mode: str) -> None:
        """Set the ``mode`` ('r', 'w' or 'rw') deadline to absolute time.monotonic() ``t``.

        None clears it. A time already past makes pending and future waits in that mode raise
        Timeout at once; a later one arms a timer that does so when it fires. Setting a new
        deadline while a G is parked extends or shortens its wait (as Go's SetDeadline).
        """
        now = monotonic()
        d = 0.0 if t is None else (float(t) if t > now else -1.0)
        wake = []
        with self.lock:
            if self.closing:
                return
            if "r" in mode:
                self.rd = d
            if "w" in mode:
                self.wd = d
            # As Go's poll_runtime_pollSetDeadline: any change re-arms both timers from rd
            # and wd, one timer when they are equal (so a G that saw its read time out finds
            # its write timed out too); the seqs make the old timers' firings no-ops.
            self.rseq += 1
            self.wseq += 1
            rd, wd, rseq, wseq = self.rd, self.wd, self.rseq, self.wseq
            stop = [tm for tm in (self.rt, self.wt) if tm is not None]
            self.rt = self.wt = None
            if d < 0:
                for m in mode:
                    g = self._unblock_locked(m, False)
                    if g is not None:
                        wake.append(g)
        # Timers are touched outside the lock: a timer function takes this lock, and the
        # timer heap may hold its own lock while calling it.
        for tm in stop:
            tm.stop()
        if rd > 0 and rd == wd:
            self._arm("rw", rd, rseq, wseq)
        else:
            if rd > 0:
                self._arm("r", rd, rseq, wseq)
            if wd > 0:
                self._arm("w", wd, rseq, wseq)
        for g in wake:
            goready(g, False)

    def _arm(self, mode: str, when: float, rseq: int, wseq: int) -> None:
        tm = addtimer(when, _deadlineimpl, (self, mode, rseq, wseq))
        with self.lock:
            kept = False
            if "r" in mode and self.rseq == rseq:
                self.rt = tm
                kept = True
            if "w" in mode and self.wseq == wseq:
                self.wt = tm
                kept = True
        if not kept:
            tm.stop()  # superseded while we armed it

    # -- close -------------------------------------------------------------------------------

    def evict(self) -> None:
        """Mark the fd closing and wake its waiters, which raise ErrNetClosing (Go's
        poll_runtime_pollUnblock). Idempotent."""
        with self.lock:
            if self.closing:
                return
            self.closing = True
            self.rseq += 1
            self.wseq += 1
            rg = self._unblock_locked("r", False)
            wg = self._unblock_locked("w", False)
            stop = [tm for tm in (self.rt, self.wt) if tm is not None]
            self.rt = self.wt = None
        for tm in stop:
            tm.stop()
        if rg is not None:
            goready(rg, False)
        if wg is not None:
            goready(wg, False)

    def close(self) -> None:
        """Evict, then unregister the fd from epoll. Call before closing the fd itself."""
        self.evict()
        poller = self.poller
        if poller.pds.get(self.fd) is self:
            del poller.pds[self.fd]
        if not poller.closed:
            try:
                poller.ep.unregister(self.fd)
            except (OSError, ValueError):
                pass


def _deadlineimpl(arg: tuple) -> None:
    # A deadline timer fired (Go's netpolldeadlineimpl). It runs on an M, not in a G; a
    # stale timer (its deadline reset or the fd closed since) finds the seq changed.
    pd, mode, rseq, wseq = arg
    wake = []
    with pd.lock:
        if "r" in mode and pd.rseq == rseq:
            pd.rd = -1.0
            pd.rt = None
            wake.append(pd._unblock_locked("r", False))
        if "w" in mode and pd.wseq == wseq:
            pd.wd = -1.0
            pd.wt = None
            wake.append(pd._unblock_locked("w", False))
    for g in wake:
        if g is not None:
            goready(g, False)


# gopark's unlockf for pollDesc.wait (Go's netpollblockcommit), given the parking G: park
# it (rg/wg = g) unless an event or an error came first; an event is consumed and the G
# resumes at once (with None, not True: the caller checks closing and deadlines). Module
# functions given the pollDesc: nothing per pollDesc stays allocated while it is idle.


def commit_r(g: Any, pd: pollDesc) -> bool:
    """Also what Conn.read parks with directly, without wait_read's checks first: a second
    G waiting on the fd resumes at once with the error wait_read would raise."""
    lock = pd.lock
    lock.acquire()
    old = pd.rg
    if old is None and not (pd.closing or pd.rd < 0.0):
        pd.rg = g
        pd.poller.waiters.append(None)
        lock.release()
        return True
    if old is pdReady:
        pd.rg = None
    elif old is not None:
        g.exc = RuntimeError(f"goruntime: two Gs waiting on fd {pd.fd} (r)")
    lock.release()
    return False


def commit_w(g: Any, pd: pollDesc) -> bool:
    lock = pd.lock
    lock.acquire()
    old = pd.wg
    if old is None and not (pd.closing or pd.wd < 0.0):
        pd.wg = g
        pd.poller.waiters.append(None)
        lock.release()
        return True
    if old is pdReady:
        pd.wg = None
    lock.release()
    return False
