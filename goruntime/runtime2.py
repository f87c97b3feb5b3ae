"""The runtime's state (Go's runtime/runtime2.go): G, M, P, the scheduler, the current run.

Every other module of the runtime reads its state from here and imports nothing else for
it; this module imports no other part of the runtime. The classes hold data and the
invariants that go with it; the code that moves Gs, Ms and Ps between states is in
proc.py. Module globals describe the current run (only one runs at a time per process)
and change only through the functions below:

* ``sched`` -- the running :class:`Sched` (None outside ``run``); ``last_sched`` the
  previous run's, for ``stats()`` after ``run`` returns.
* ``tls.m`` -- the M running on the calling thread (None on other threads).
* ``onep`` -- the only P when the run has ``procs=1``, else None. Then only the M holding
  it runs G code or timer functions, so channel and sync operations skip their locks
  (``locking`` is False) and find the current M as ``onep.m`` without a thread-local
  lookup. Code run by ``rt.syscall(fn)`` must not use them (as in Go, a syscall is not Go
  code); sysmon and the netpoller never do.
* ``preemptreq`` -- True when sysmon wants the running Gs' attention: it marked a G for
  preemption, or it sleeps (``Sched.sysmonwait``) and wants to hear of sustained work.
  Fast paths and the schedule loop test it and then call ``proc.preemptcheck``.
"""

from __future__ import annotations

import itertools
import threading
import weakref
from collections import deque
from collections.abc import Coroutine
from time import monotonic
from typing import Any

# P status (Go's _Pidle, _Prunning, _Psyscall).
_Pidle, _Prunning, _Psyscall = 0, 1, 2

RUNQ_SIZE = 256  # Go's len(p.runq)


class G:
    """A goroutine: a coroutine plus the state the scheduler keeps for it.

    ``waitreason`` is None exactly while the G is runnable or running: a park sets it and
    the one ready that follows clears it (readying a G twice per park is a runtime bug,
    asserted). A G also serves as its own sudog on one channel (``elem``, ``ok``;
    ``sel`` is always None for a G, see chan.sudog).
    """

    __slots__ = (
        "goid", "coro", "param", "exc", "waitreason", "preempt", "elem", "ok", "sel",
        "__weakref__",
    )

    def __init__(self, goid: int, coro: Coroutine) -> None:
        self.goid = goid
        self.coro = coro
        self.param: Any = None  # what its gopark evaluates to (set by the ready)
        self.exc: BaseException | None = None  # what its gopark raises instead
        self.waitreason: str | None = None  # why it is parked (None: runnable or running)
        self.preempt = False  # sysmon asks it to yield at its next runtime call
        self.elem: Any = None  # the value it offers while parked in a send (chan.py)
        self.ok = False  # chan.py: the operation it was woken for completed
        self.sel = None

    def __repr__(self) -> str:
        return f"<G{self.goid} {self.waitreason or 'runnable'}>"


class P:
    """A processor: a local run queue, runnext, a timer heap and counters.

    ``runq`` is a deque only the owning M appends to (thieves pop from its head);
    ``runnext`` is a list of at most one G, taken with ``pop()`` by the owner or a thief
    (Go's CAS). ``status``/``m`` change under ``Sched.lock``, except that the owner moves
    ``_Prunning`` <-> ``_Psyscall``.
    """

    __slots__ = (
        "id", "status", "runq", "runnext", "m", "schedtick", "syscalltick", "timers",
        "tlock", "ntimers", "steals",
    )

    def __init__(self, pid: int) -> None:
        self.id = pid
        self.status = _Pidle
        self.runq: deque[G] = deque()
        self.runnext: list[G] = []
        self.m: M | None = None
        self.schedtick = 0  # Gs scheduled with a new time slice (sysmon watches it)
        self.syscalltick = 0  # syscalls entered (sysmon watches it)
        self.timers: list = []  # heap of (when, seq, timer); see timers.py
        self.tlock = threading.Lock()
        self.ntimers = 0  # live timers in the heap (stale entries are skipped)
        self.steals = 0


class M:
    """A machine: one OS thread running the schedule loop.

    ``note`` is Go's m.park: held while the M sleeps; ``release()`` is notewakeup, done
    once by whoever takes the M off ``Sched.midle``.
    """

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
        self.note = threading.Lock()
        self.note.acquire()
        self.spinning = False  # counted in Sched.nmspinning
        self.thread: threading.Thread | None = None
        self.waketime = 0.0  # when asleep as the timer sleeper: until when
        self.parks = 0
        self.spawns = 0
        self.exits = 0
        self.preempts = 0
        self.blocked = False  # asleep on its note or in netpoll (schedtrace shows it)
        self.insyscall = False


class _TLS(threading.local):
    m: M | None = None


tls = _TLS()


class Sched:
    """Global scheduler state (Go's schedt) for one ``run``.

    Under ``lock``: ``pidle``/``npidle``, ``midle``, ``nmspinning`` (never negative),
    ``polling``/``pollUntil``, ``timer_m``, ``sysmonwait``, ``stopping``. ``globrunq``
    is appended to without the lock only by an M holding a P (it looks at the queue again
    before it can sleep). The counters are written by one thread each or under the lock.
    """

    __slots__ = (
        "lock", "gomaxprocs", "maxrunning", "allp", "pidle", "npidle", "allm", "midle",
        "nmspinning", "globrunq", "goidgen", "mcount", "netpoller", "polling", "pollUntil",
        "pollskip", "pollbackoff", "timer_m", "stopping", "result", "fatal", "main_g",
        "sysmon_thread", "sysmon_note", "sysmon_signaled", "sysmonwait", "syscallwake",
        "sysmonpokes", "schedtrace", "scheddetail", "allgs", "starttime", "ext_spawns",
        "handoffs", "long_runs", "sysmon_wakeups",
    )

    def __init__(self, procs: int, ncpu: int = 0, schedtrace: int = 0,
                 scheddetail: int = 0) -> None:
        self.lock = threading.Lock()
        self.gomaxprocs = procs
        # Ms are started for idle Ps only while fewer than this many Ps are busy: procs,
        # capped to the CPUs the process may run on (ncpu; 0: no cap). More Ms than CPUs
        # would only trade the GIL and the CPU among themselves; a P handed off from a
        # syscall still gets its M.
        self.maxrunning = min(procs, ncpu) if ncpu > 0 else procs
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
        self.pollskip = 0  # findrunnable's netpoll(0) calls to skip (proc.POLL_BACKOFF)
        self.pollbackoff = 0
        self.timer_m: M | None = None  # the M asleep on its note until the next timer
        self.stopping = False
        self.result: Any = None
        self.fatal: BaseException | None = None
        self.main_g: G | None = None
        # sysmon (sysmon.py): its thread; its note, which it sleeps on (locked: not
        # signaled); whether it sleeps because every P is idle; the pokes since then.
        self.sysmon_thread: threading.Thread | None = None
        self.sysmon_note = threading.Lock()
        self.sysmon_note.acquire()
        self.sysmon_signaled = False
        self.sysmonwait = False  # Go's sched.sysmonwait
        self.syscallwake = False  # ... ended by a syscall
        self.sysmonpokes = 0
        # GODEBUG (trace.py)
        self.schedtrace = schedtrace  # ms between SCHED lines; 0: off
        self.scheddetail = scheddetail
        self.allgs: weakref.WeakSet[G] | None = (
            weakref.WeakSet() if schedtrace > 0 and scheddetail else None
        )
        # counters (trace.stats)
        self.starttime = monotonic()
        self.ext_spawns = 0  # Gs made by go() outside any M (under lock)
        self.handoffs = 0  # sysmon-only counters
        self.long_runs = 0
        self.sysmon_wakeups = 0

    # --- idle P list (lock held) ---

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

    # --- sysmon's note (lock held) ---

    def sysmonnotify(self) -> None:
        """Signal sysmon's note (Go's notewakeup): its sleep, or its next one, ends at once.

        Released at most once until sysmon consumes it (``sysmonconsume``)."""
        if not self.sysmon_signaled:
            self.sysmon_signaled = True
            self.sysmon_note.release()

    def sysmonconsume(self) -> None:
        """Sysmon: make the note unsignaled again (after a sleep it woke from, or before one)."""
        if self.sysmon_signaled:
            self.sysmon_note.acquire(False)
            self.sysmon_signaled = False

    def sysmonwake(self, syscall: bool = False) -> None:
        """Wake sysmon if it sleeps because every P was idle. For a ``syscall`` it ticks
        fast again (Go's syscallWake), to retake the P soon; else at its backed-off pace."""
        if self.sysmonwait:
            self.sysmonwait = False
            self.syscallwake = syscall
            self.sysmonnotify()

    # --- the end of the run ---

    def stop(self) -> None:
        """Make every M and sysmon leave their loops (main returned, a G failed, deadlock)."""
        with self.lock:
            self.stop_locked()
        if self.netpoller is not None and self.polling:
            self.netpoller.netpoll_break()

    def stop_locked(self) -> None:
        """``stop`` with the lock held, except for waking the M blocked in netpoll."""
        self.stopping = True
        for m in self.midle:
            m.note.release()
        self.midle.clear()
        self.timer_m = None
        self.sysmonwait = False
        self.sysmonnotify()

    def fail(self, exc: BaseException) -> None:
        """End the run with ``exc`` (the first failure wins)."""
        if self.fatal is None:
            self.fatal = exc
        self.stop()

    def num_goroutine(self) -> int:
        """Gs that exist now: made minus finished (racy sums, as Go's)."""
        made = 1 + self.ext_spawns
        ended = 0
        for m in list(self.allm):
            made += m.spawns
            ended += m.exits
        return made - ended


sched: Sched | None = None
last_sched: Sched | None = None
onep: P | None = None
locking = True
preemptreq = False


def begin(s: Sched) -> None:
    """``s`` becomes the running scheduler."""
    global sched, onep, locking, preemptreq
    onep = s.allp[0] if s.gomaxprocs == 1 else None
    locking = onep is None
    preemptreq = False
    sched = s


def end(s: Sched) -> None:
    """The run of ``s`` is over: no scheduler; channels lock again."""
    global sched, last_sched, onep, locking, preemptreq
    sched = None
    last_sched = s
    onep = None
    locking = True
    preemptreq = False


def set_preemptreq(v: bool) -> None:
    global preemptreq
    preemptreq = v
