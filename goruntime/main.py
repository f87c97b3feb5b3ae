"""Starting and ending a run (Go's rt0_go, schedinit and runtime.main): ``run``.

Also the run-wide queries ``gomaxprocs`` and ``num_goroutine``.
"""

from __future__ import annotations

import inspect
import os
import threading
from collections.abc import Callable, Coroutine
from typing import Any

from . import runtime2 as _r
from . import trace
from .proc import mstart
from .runtime2 import G, M, Sched
from .sysmon import sysmon

_run_lock = threading.Lock()


def ncpu() -> int:
    """The CPUs this process may run on (Go's ncpu: the affinity mask, not the machine)."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - non-Linux
        return os.cpu_count() or 1


def gomaxprocs_env() -> int | None:
    """$GOMAXPROCS if it is a positive int, else None (unset or invalid: ignored, as Go)."""
    try:
        n = int(os.environ.get("GOMAXPROCS", ""))
    except ValueError:
        return None
    return n if n > 0 else None


def default_procs() -> int:
    """$GOMAXPROCS if it is a positive int, else :func:`ncpu` (Go's default)."""
    return gomaxprocs_env() or ncpu()


def run(main: Coroutine | Callable[[], Coroutine], procs: int | None = None) -> Any:
    """Run ``main`` as the main G on ``procs`` Ps (GOMAXPROCS); return its result.

    The calling thread is M0. Other Gs are abandoned when main returns (as in Go): never
    started ones are closed, parked ones are left to the garbage collector. Raises the
    exception that escaped any G (a panic ends the program), with that G's traceback, or
    ``Deadlock`` when no G can ever run again (none runnable, no timer pending, none in a
    syscall, none parked on the network). Every M thread and sysmon have exited when this
    returns; it waits for Ms blocked in ``syscall`` to come back (Go would just exit), and
    a G that never awaits keeps its M, and so ``run``, from finishing. ``run`` may be called
    again afterwards; only one run at a time per process.

    With ``procs`` above the CPUs the process may run on, at most that many Ms run Gs at
    once (``Sched.maxrunning``): the other Ps' Ms stay parked rather than trade the GIL
    and the CPU; Gs queued on idle Ps are taken by the running Ms (stealing).
    """
    if not isinstance(main, Coroutine):
        main = main()
    if procs is None:
        procs = default_procs()
    if not isinstance(procs, int) or procs < 1:
        main.close()
        raise ValueError(f"procs must be a positive int, got {procs!r}")
    if not _run_lock.acquire(blocking=False):
        main.close()
        raise RuntimeError("goruntime.run() is already running")
    try:
        s = Sched(procs, ncpu(), **trace.godebug())
        g = G(next(s.goidgen), main)
        s.main_g = g
        if s.allgs is not None:
            s.allgs.add(g)
        m0 = M(next(s.mcount))
        s.allm.append(m0)
        p0 = s.pidleget()
        p0.runnext.append(g)
        m0.nextp = p0
        _r.begin(s)
        s.sysmon_thread = threading.Thread(
            target=sysmon, args=(s,), name="goruntime-sysmon", daemon=True
        )
        s.sysmon_thread.start()
        try:
            mstart(s, m0)
        finally:
            s.stop()
            with s.lock:  # stopping is set: startm makes no new M from now on
                threads = [m.thread for m in s.allm] + [s.sysmon_thread]
            for t in threads:
                if t is not None:
                    t.join()
            if s.netpoller is not None:
                try:
                    s.netpoller.close()
                except Exception:  # noqa: BLE001 - closing is best effort after the run
                    pass
            _r.end(s)
            _drop_unstarted(s)
        if s.fatal is not None:
            raise s.fatal
        return s.result
    finally:
        _run_lock.release()


def _drop_unstarted(s: Sched) -> None:
    """Close never-started coroutines left in run queues (avoids 'never awaited' warnings)."""
    qs: list = [s.globrunq]
    for p in s.allp:
        qs.append(p.runq)
        qs.append(p.runnext)
    for q in qs:
        for g in q:
            if inspect.getcoroutinestate(g.coro) == inspect.CORO_CREATED:
                g.coro.close()
        q.clear()


def num_goroutine() -> int:
    """Gs that exist now (Go's runtime.NumGoroutine); 0 outside run."""
    s = _r.sched
    return s.num_goroutine() if s is not None else 0


def gomaxprocs() -> int:
    """This run's procs; outside a run, what ``run`` would use by default."""
    s = _r.sched
    return s.gomaxprocs if s is not None else default_procs()
