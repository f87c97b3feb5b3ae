"""Sampling a server's whole process tree with psutil while a case runs.

The sampler is a thread of the runner, pinned (with ``--pin``) to the loadgen's CPUs so it
never takes CPU from the server it measures. Every ``interval`` seconds it sums over the
tree: RSS, threads, processes, open fds and context switches, each tick stamped with the
time halfway through its reading. CPU time is not taken here but by
:mod:`bench.cpumeter`, which reads it far more often; :func:`tree_cpu_s` is its fallback
where no cgroup can be made. PSS and USS come from
``/proc/PID/smaps_rollup``, which the kernel computes by walking every mapping; with open
fds (a directory listing per process) they are the costly part of a tick. For a tree of
more than :data:`LARGE_TREE` processes they are read only as often as keeps them under a
fifth of the sampler's time, and the case says so. A tick that takes longer than the
interval stretches the interval rather than eating a CPU (see the end of :meth:`Sampler.run`).
"""

from __future__ import annotations

import os
import threading
import time

import psutil

from bench.guard import MemoryGuard

LARGE_TREE = 50


def _tree(pid: int) -> list[psutil.Process]:
    try:
        root = psutil.Process(pid)
        return [root, *root.children(recursive=True)]
    except psutil.Error:
        return []


def _cpu_s(p: psutil.Process, root: bool, single_thread: bool = False) -> float:
    """CPU seconds of ``p`` (user + system), plus its reaped children's if it is the root.

    ``/proc/PID/stat`` reports CPU time truncated to 10 ms clock ticks *per process*: summed
    over a thousand fork children that is up to 10 s of error, more than a measure phase
    uses. For a single-threaded process ``/proc/PID/schedstat`` gives the same on-CPU time
    in nanoseconds, so that is used where it can be.
    """
    t = p.cpu_times()
    cpu = t.user + t.system
    if single_thread:
        try:
            with open(f"/proc/{p.pid}/schedstat") as f:
                cpu = int(f.read().split()[0]) / 1e9
        except (OSError, ValueError, IndexError):
            pass
    if root:
        cpu += t.children_user + t.children_system
    return cpu


def pin_this_thread(cpus: list[int] | None) -> None:
    """Keep the calling thread on ``cpus`` (the loadgen's half, away from the server)."""
    if cpus:
        try:
            os.sched_setaffinity(threading.get_native_id(), cpus)
        except OSError:
            pass


def tree_cpu_s(pid: int) -> float | None:
    """CPU seconds of the live tree rooted at ``pid`` plus the root's reaped children
    (``None`` once the root is gone)."""
    total, seen = 0.0, False
    for p in _tree(pid):
        try:
            total += _cpu_s(p, p.pid == pid, p.num_threads() == 1)
            seen = True
        except psutil.Error:
            continue
    return total if seen else None


def footprint(pid: int, smaps: bool = True) -> dict:
    """One reading of the tree rooted at ``pid``: rss, threads, procs, cpu, context switches,
    and (with ``smaps``) pss, uss and fds; those are ``None`` without it."""
    out = {"rss": 0, "pss": 0 if smaps else None, "uss": 0 if smaps else None,
           "threads": 0, "procs": 0, "fds": 0 if smaps else None, "cpu_s": 0.0, "vol": 0,
           "invol": 0}
    for p in _tree(pid):
        try:
            with p.oneshot():
                if smaps:
                    m = p.memory_full_info()
                    out["pss"] += m.pss
                    out["uss"] += m.uss
                    out["fds"] += p.num_fds()
                else:
                    m = p.memory_info()
                out["rss"] += m.rss
                threads = p.num_threads()
                out["threads"] += threads
                out["cpu_s"] += _cpu_s(p, p.pid == pid, threads == 1)
                c = p.num_ctx_switches()
                out["vol"] += c.voluntary
                out["invol"] += c.involuntary
                out["procs"] += 1
        except psutil.Error:
            continue  # exited between listing and reading: it is no longer part of the tree
    return out


class Sampler(threading.Thread):
    """Samples the server tree (and the loadgen's RSS) until :meth:`stop`; feeds the guard."""

    def __init__(
        self,
        server_pid: int,
        guard: MemoryGuard,
        t0: float,
        cpus: list[int] | None = None,
        interval: float = 0.25,
    ):
        super().__init__(name="sampler", daemon=True)
        self.server_pid = server_pid
        self.guard = guard
        self.t0 = t0
        self.cpus = cpus
        self.interval = interval
        self.loadgen_pid: int | None = None
        self.series: list[dict] = []
        self.peak = {"rss": 0, "pss": None, "threads": 0, "procs": 0, "fds": 0}
        self.ctx = {"voluntary": 0, "involuntary": 0}
        self.loadgen_peak_rss = 0
        self.smaps_interval_max: float | None = None
        self.tripped = threading.Event()
        self._halt = threading.Event()
        self._full = threading.Event()
        self._wake = threading.Event()
        self._last_smaps: float | None = None
        self.tree_size = 0

    def request_full(self) -> None:
        """Take a tick now, PSS/USS/fds included even if throttled (the measure phase began)."""
        self._full.set()
        self._wake.set()

    def request_tick(self) -> None:
        """Take a tick now rather than after the pause (the measure phase ended)."""
        self._wake.set()

    def stop(self) -> None:
        self._halt.set()
        self._wake.set()
        self.join(30)

    def run(self) -> None:
        pin_this_thread(self.cpus)
        next_smaps = 0.0
        while not self._halt.is_set():
            start = time.monotonic()
            want_smaps = start >= next_smaps or self._full.is_set()
            self._full.clear()
            fp = footprint(self.server_pid, smaps=want_smaps)
            if want_smaps:
                cost = time.monotonic() - start
                if self._last_smaps is not None:
                    gap = start - self._last_smaps
                    self.smaps_interval_max = max(self.smaps_interval_max or 0.0, gap)
                self._last_smaps = start
                self.tree_size = fp["procs"]
                if fp["procs"] > LARGE_TREE:
                    next_smaps = start + max(self.interval, 5 * cost)
            stamp = (start + time.monotonic()) / 2
            self._loadgen()
            available = psutil.virtual_memory().available
            self._record(stamp, fp, available)
            if self.guard.check(available):
                self.tripped.set()
            cost = time.monotonic() - start
            # At most half a CPU for small trees, a quarter for large ones (a fork server's
            # thousand children): the sampler must not slow down what it measures.
            rest = 3 * cost if self.tree_size > LARGE_TREE else cost
            self._wake.wait(max(self.interval - cost, rest))
            self._wake.clear()

    def _record(self, stamp: float, fp: dict, available: int) -> None:
        if fp["procs"] == 0:
            return  # the server is gone; the runner notices and says why
        self.ctx["voluntary"] = max(self.ctx["voluntary"], fp["vol"])
        self.ctx["involuntary"] = max(self.ctx["involuntary"], fp["invol"])
        for k in ("rss", "threads", "procs", "fds"):
            if fp[k] is not None:
                self.peak[k] = max(self.peak[k], fp[k])
        if fp["pss"] is not None:
            self.peak["pss"] = max(self.peak["pss"] or 0, fp["pss"])
        self.series.append(
            {
                "t": round(stamp - self.t0, 3),
                "rss": fp["rss"],
                "pss": fp["pss"],
                "uss": fp["uss"],
                "threads": fp["threads"],
                "procs": fp["procs"],
                "fds": fp["fds"],
                "mem_available": int(available),
            }
        )

    def _loadgen(self) -> None:
        if self.loadgen_pid is None:
            return
        rss = 0
        for p in _tree(self.loadgen_pid):
            try:
                rss += p.memory_info().rss
            except psutil.Error:
                continue
        self.loadgen_peak_rss = max(self.loadgen_peak_rss, rss)
