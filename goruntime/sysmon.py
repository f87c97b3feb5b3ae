"""sysmon: the monitor thread that runs without a P (Go's sysmon in runtime/proc.go).

Every tick (20 µs, doubling after 1 ms without anything to do, up to 10 ms, as Go) it:
* retakes Ps from Ms blocked in ``rt.syscall`` for a full tick while other work exists (or
  10 ms in any case) and hands them to another M (``proc.retakep``);
* polls the network (``netpoll(0)``) if nobody has for 10 ms and injects what is ready;
* marks a G that has run for more than 10 ms without passing through the scheduler for
  preemption (``g.preempt``). The G yields at its next runtime call (a channel operation,
  select, sleep(0), mutex lock, ``gosched``): a G that never awaits cannot be preempted, as
  in Go before 1.14 (there is no asynchronous preemption of Python code). Each such long
  run is counted in ``stats()["long_runs"]``; each honoured request in ``"preemptions"``;
* starts an M when a timer is overdue by more than 1 ms and nobody waits for it (Go's
  sysmon does the same for timers left behind on a busy or idle P);
* prints the ``GODEBUG=schedtrace`` line when it is due (trace.py).

When every P is idle it sleeps instead (Go's ``sched.sysmonwait``; not while schedtrace
prints): until the next timer, at most SYSMON_WAIT_MAX, or until woken by a G entering a
syscall or an M leaving one (it then ticks at 20 µs again, as Go's), the end of the run, or
``proc.sysmonpoke`` once the Gs have parked or checked for preemption SYSMON_POKES times
(sustained work: it goes on at its backed-off pace). An idle server costs no ticks, and a
light load a tick every SYSMON_POKES events.
"""

from __future__ import annotations

from time import monotonic

from . import proc, trace
from . import runtime2 as _r
from .runtime2 import _Prunning, _Psyscall

FORCE_PREEMPT = 0.010  # s; Go's forcePreemptNS: the time slice
POLL_INTERVAL = 0.010  # s; netpoll if nobody has for this long
MIN_DELAY = 20e-6  # s; Go's sysmon starts at 20 µs
MAX_DELAY = 0.010  # s; ... and backs off to 10 ms
SYSMON_WAIT_MAX = 1.0  # s; Go's is forcegcperiod/2 (60 s). A G that makes no runtime call
# at all cannot poke sysmon; this bounds how long its long run can go unseen.


class _Rec:
    """What sysmon saw of a P last time (Go's sysmontick)."""

    __slots__ = ("schedtick", "schedwhen", "syscalltick", "syscallwhen")

    def __init__(self, now: float) -> None:
        self.schedtick = -1
        self.schedwhen = now
        self.syscalltick = -1
        self.syscallwhen = now


def sysmon(s: _r.Sched) -> None:
    """Thread body; returns when the run stops. A failure here ends the run loudly."""
    try:
        _sysmon(s)
    except BaseException as e:  # a bug in the runtime: fail run rather than go on blind
        s.fail(e)


def _sysmon(s: _r.Sched) -> None:
    now = monotonic()
    recs = [_Rec(now) for _ in s.allp]
    delay = MIN_DELAY
    idle = 0
    polls, polled = 0, now  # the netpoller's count of polls, and when sysmon saw it change
    note = s.sysmon_note
    tr = trace.Tracer(s)
    while True:  # not `while not s.stopping`: only a JUMP_BACKWARD lets 3.11 specialise
        if s.stopping:
            break
        if note.acquire(True, min(delay, tr.wait()) if tr.on else delay):
            with s.lock:
                s.sysmonconsume()  # the end of the run, or a wake that came late
        if s.stopping:
            break
        now = monotonic()
        if not tr.on and s.npidle == s.gomaxprocs:
            sysmonwait(s, now)
            if s.stopping:
                break
            if s.syscallwake:
                s.syscallwake = False
                idle = 0
                delay = MIN_DELAY
            now = monotonic()
        s.sysmon_wakeups += 1
        np = s.netpoller
        if np is not None and np.calls != polls:
            polls = np.calls
            polled = now
        elif np is not None and not s.polling and now - polled > POLL_INTERVAL:
            if np.waiting() > 0:
                gs = np.netpoll(0)
                if gs:
                    proc.injectglist(gs)
                    idle = 0
        # Go's sysmon: timers that should have run already (an unpreemptible P, or timers
        # left on an idle P): start an M to run them.
        if s.npidle and not s.nmspinning and s.timer_m is None and not s.polling:
            nt = proc.nexttimer(s)
            if nt and nt < now - 0.001:
                proc.wakep(s)
        if retake(s, now, recs):
            idle = 0
        else:
            idle += 1
        if idle == 0:
            delay = MIN_DELAY
        elif idle > 50:
            delay = min(delay * 2, MAX_DELAY)
        if tr.on:
            tr.maybe_print(now)


def sysmonwait(s: _r.Sched, now: float) -> None:
    """Sleep while every P is idle (see the module docstring).

    ``preemptreq`` is set meanwhile: it makes the schedule loop and the fast paths poke.
    A wake for a syscall leaves ``Sched.syscallwake`` set.
    """
    nt = proc.nexttimer(s)
    if nt and nt <= now:
        return  # an overdue timer: keep ticking
    sleep = SYSMON_WAIT_MAX if not nt else min(nt - now, SYSMON_WAIT_MAX)
    with s.lock:
        if s.stopping or s.npidle != s.gomaxprocs:
            return
        s.sysmonconsume()
        s.sysmonwait = True
        s.syscallwake = False
        s.sysmonpokes = 0
    _r.set_preemptreq(True)
    woken = s.sysmon_note.acquire(True, sleep)
    with s.lock:
        s.sysmonwait = False
        if woken:
            s.sysmon_signaled = False
        else:
            s.sysmonconsume()  # a wake just after the timeout
    _r.set_preemptreq(False)


def retake(s: _r.Sched, now: float, recs: list[_Rec]) -> int:
    """Preempt long-running Gs and retake Ps blocked in syscalls; returns Ps retaken."""
    n = 0
    marked = False
    for p in s.allp:
        rec = recs[p.id]
        st = p.status
        if st == _Prunning:
            t = p.schedtick
            if rec.schedtick != t:
                rec.schedtick = t
                rec.schedwhen = now
            elif now - rec.schedwhen >= FORCE_PREEMPT:
                m = p.m
                g = m.curg if m is not None else None
                if g is not None:
                    if not g.preempt:
                        g.preempt = True
                        s.long_runs += 1
                    elif p.runq or p.runnext:
                        # Marked a tick ago and still running: it is not reaching runtime
                        # calls, so what waits behind it on this P needs another M. (Not on
                        # the first mark: a G that yields at once would only split a
                        # ping-pong pair across Ms, which under the GIL is slower.)
                        proc.wakep(s)
                    marked = True
        elif st == _Psyscall:
            t = p.syscalltick
            if rec.syscalltick != t:
                rec.syscalltick = t
                rec.syscallwhen = now
                continue
            # Go: leave it if there is nothing else to do and someone could help anyway,
            # unless the syscall has been going on for 10 ms.
            if (
                not (p.runq or p.runnext)
                and s.nmspinning + s.npidle > 0
                and rec.syscallwhen + FORCE_PREEMPT > now
            ):
                continue
            if proc.retakep(s, p, t):
                n += 1
    if marked:
        _r.set_preemptreq(True)
    return n
