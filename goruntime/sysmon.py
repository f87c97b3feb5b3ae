"""sysmon: the monitor thread that runs without a P (Go's sysmon in runtime/proc.go).

Every tick (20 µs, doubling after 1 ms without anything to do, up to 10 ms, as Go) it:
* retakes Ps from Ms blocked in ``rt.syscall`` for a full tick while other work exists (or
  10 ms in any case) and hands them to another M (``handoffp``);
* polls the network (``netpoll(0)``) if nobody has for 10 ms and injects what is ready;
* marks a G that has run for more than 10 ms without passing through the scheduler for
  preemption (``g.preempt``). The G yields at its next runtime call (a channel operation,
  select, sleep(0), mutex lock, ``gosched``): a G that never awaits cannot be preempted, as
  in Go before 1.14 (there is no asynchronous preemption of Python code). Each such long
  run is counted in ``stats()["long_runs"]``; each honoured request in ``"preemptions"``;
* starts an M when a timer is overdue by more than 1 ms and nobody waits for it (Go's
  sysmon does the same for timers left behind on a busy or idle P);
* prints the ``GODEBUG=schedtrace`` line when it is due (trace.py).
"""

from __future__ import annotations

from time import monotonic

from . import proc, trace

FORCE_PREEMPT_NS = 0.010  # Go's forcePreemptNS: 10 ms time slice
POLL_INTERVAL = 0.010  # netpoll if nobody has for this long
MAX_DELAY = 0.010


class _Rec:
    """What sysmon saw of a P last time (Go's sysmontick)."""

    __slots__ = ("schedtick", "schedwhen", "syscalltick", "syscallwhen")

    def __init__(self, now: float) -> None:
        self.schedtick = -1
        self.schedwhen = now
        self.syscalltick = -1
        self.syscallwhen = now


def sysmon(s: proc.Sched) -> None:
    """Thread body; returns when the run stops. A failure here ends the run loudly."""
    try:
        _sysmon(s)
    except BaseException as e:  # a bug in the runtime: fail run rather than go on blind
        s.fail(e)


def _sysmon(s: proc.Sched) -> None:
    now = monotonic()
    recs = [_Rec(now) for _ in s.allp]
    delay = 20e-6
    idle = 0
    ev = s.sysmon_event
    tr = trace.Tracer(s)
    while not s.stopping:
        ev.wait(min(delay, tr.wait()) if tr.on else delay)
        if s.stopping:
            break
        now = monotonic()
        s.sysmon_wakeups += 1
        np = s.netpoller
        if np is not None and not s.polling and now - s.lastpoll > POLL_INTERVAL:
            if np.waiting() > 0:
                s.lastpoll = now
                gs = np.netpoll(0)
                s.netpolls += 1
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
            delay = 20e-6
        elif idle > 50:
            delay = min(delay * 2, MAX_DELAY)
        if tr.on:
            tr.maybe_print(now)


def retake(s: proc.Sched, now: float, recs: list[_Rec]) -> int:
    """Preempt long-running Gs and retake Ps blocked in syscalls; returns Ps retaken."""
    n = 0
    marked = False
    for p in s.allp:
        rec = recs[p.id]
        st = p.status
        if st == proc._Prunning:
            t = p.schedtick
            if rec.schedtick != t:
                rec.schedtick = t
                rec.schedwhen = now
            elif now - rec.schedwhen >= FORCE_PREEMPT_NS:
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
        elif st == proc._Psyscall:
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
                and rec.syscallwhen + FORCE_PREEMPT_NS > now
            ):
                continue
            with s.lock:
                if p.status != proc._Psyscall or p.syscalltick != t:
                    continue
                p.status = proc._Pidle
                p.m = None
                s.handoffs += 1
            n += 1
            handoffp(s, p)
    if marked:
        proc.preemptreq = True
    return n


def handoffp(s: proc.Sched, p: proc.P) -> None:
    """Give a P whose M is blocked to another M if there is anything to do (Go's handoffp)."""
    if p.runq or p.runnext or s.globrunq:
        proc.startm(s, p, False)
        return
    with s.lock:
        if s.nmspinning + s.npidle == 0:
            s.nmspinning += 1
            spin = True
        else:
            spin = False
    if spin:
        proc.startm(s, p, True)
        return
    np = s.netpoller
    if p.ntimers or (np is not None and not s.polling and np.waiting() > 0):
        proc.startm(s, p, False)
        return
    with s.lock:
        s.pidleput(p)
