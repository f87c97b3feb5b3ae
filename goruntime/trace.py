"""Observability: GODEBUG=schedtrace/scheddetail and stats().

``GODEBUG=schedtrace=MS`` makes sysmon print Go's line to stderr every MS ms::

    SCHED 1004ms: gomaxprocs=2 idleprocs=0 threads=5 spinningthreads=0 needspinning=0 \
idlethreads=1 runqueue=0 [0 0]

and ``scheddetail=1`` prints Go's detailed form instead: the header with ``gcwaiting=0
nmidlelocked=0 stopwait=0 sysmonwait=0`` (sysmon never waits while tracing) then one line
per P, M and G. ``threads`` counts the Ms plus sysmon; per-P run queue sizes exclude
``runnext``, as in Go.
"""

from __future__ import annotations

import os
import sys
from time import monotonic
from typing import Any

from . import runtime2 as _r

_Gstatus = {"runnable": 1, "running": 2, "syscall": 3, "waiting": 4}


def parse_godebug(value: str | None) -> dict[str, int]:
    """``"schedtrace=1000,scheddetail=1"`` -> ``{"schedtrace": 1000, "scheddetail": 1}``."""
    out: dict[str, int] = {}
    for item in (value or "").split(","):
        k, sep, v = item.strip().partition("=")
        if sep and k in ("schedtrace", "scheddetail"):
            try:
                out[k] = int(v)
            except ValueError:
                continue
    return out


def godebug() -> dict[str, int]:
    """This process's GODEBUG settings that the scheduler reads (``Sched`` keywords)."""
    return parse_godebug(os.environ.get("GODEBUG"))


class Tracer:
    """Prints the schedtrace line from sysmon when it is due."""

    def __init__(self, s: _r.Sched) -> None:
        self.s = s
        self.on = s.schedtrace > 0
        self.period = s.schedtrace / 1000.0
        self.next = s.starttime  # Go prints once at start (SCHED 0ms), then every period

    def wait(self) -> float:
        return max(0.0, self.next - monotonic())

    def maybe_print(self, now: float) -> None:
        if now < self.next:
            return
        self.next = now + self.period
        sys.stderr.write(schedtrace(self.s, bool(self.s.scheddetail), now))
        sys.stderr.flush()


def schedtrace(s: _r.Sched, detailed: bool, now: float | None = None) -> str:
    """Go's schedtrace output for the current state (racy reads, as Go's)."""
    now = monotonic() if now is None else now
    allm = list(s.allm)
    head = (
        f"SCHED {int((now - s.starttime) * 1000)}ms: gomaxprocs={s.gomaxprocs}"
        f" idleprocs={s.npidle} threads={len(allm) + 1} spinningthreads={s.nmspinning}"
        f" needspinning=0 idlethreads={len(s.midle)} runqueue={len(s.globrunq)}"
    )
    if not detailed:
        return head + " [" + " ".join(str(len(p.runq)) for p in s.allp) + "]\n"
    lines = [head + f" gcwaiting=0 nmidlelocked=0 stopwait=0 sysmonwait={int(s.sysmonwait)}"]
    for p in s.allp:
        m = p.m
        lines.append(
            f"  P{p.id}: status={p.status} schedtick={p.schedtick} syscalltick={p.syscalltick}"
            f" m={m.id if m is not None else 'nil'} runqsize={len(p.runq)} gfreecnt=0"
            f" timerslen={len(p.timers)}"
        )
    running = {}
    for m in allm:
        p = m.p
        g = m.curg
        if g is not None:
            running[g.goid] = m
        lines.append(
            f"  M{m.id}: p={p.id if p is not None else 'nil'}"
            f" curg={g.goid if g is not None else 'nil'} mallocing=0 throwing=0 preemptoff="
            f" locks=0 dying=0 spinning={str(m.spinning).lower()}"
            f" blocked={str(m.blocked).lower()} lockedg=nil"
        )
    gs: list = []
    for _ in range(5):  # other Ms add Gs meanwhile: copy until the set holds still
        try:
            gs = sorted(list(s.allgs or ()), key=lambda g: g.goid)
            break
        except RuntimeError:
            continue
    for g in gs:
        if g.coro.cr_frame is None:
            continue  # finished
        m = running.get(g.goid)
        if m is not None:
            st = _Gstatus["syscall"] if m.insyscall else _Gstatus["running"]
            reason = ""
        elif g.waitreason:
            st, reason = _Gstatus["waiting"], g.waitreason
        else:
            st, reason = _Gstatus["runnable"], ""
        mid = m.id if m is not None else "nil"
        lines.append(f"  G{g.goid}: status={st}({reason}) m={mid} lockedm=nil")
    return "\n".join(lines) + "\n"


def stats() -> dict[str, Any]:
    """Counters of the running scheduler, or of the last run once it has returned.

    Keys: gomaxprocs, goroutines, threads, idleprocs, schedticks, steals, parks, spawns,
    handoffs, preemptions, long_runs, netpolls, sysmon_wakeups, runqueue. ``parks`` is
    added up when an M goes back to its scheduler loop, so while the run goes on it may lag
    behind by the parks since then (with one P, an M that sleeps for network events without
    going back counts them later; exact once the run has returned).
    """
    s = _r.sched
    if s is None:
        s = _r.last_sched
        if s is None:
            return {}
    allm = list(s.allm)
    return {
        "gomaxprocs": s.gomaxprocs,
        "goroutines": s.num_goroutine(),
        "threads": len(allm) + 1,
        "idleprocs": s.npidle,
        "schedticks": sum(p.schedtick for p in s.allp),
        "steals": sum(p.steals for p in s.allp),
        "parks": sum(m.parks for m in allm),
        "spawns": s.ext_spawns + sum(m.spawns for m in allm),
        "handoffs": s.handoffs,
        "preemptions": sum(m.preempts for m in allm),
        "long_runs": s.long_runs,
        "netpolls": s.netpoller.calls if s.netpoller is not None else 0,
        "sysmon_wakeups": s.sysmon_wakeups,
        "runqueue": len(s.globrunq),
        "ms_ran_gs": sum(1 for m in allm if m.spawns or m.exits or m.parks),
    }
