"""Cumulative CPU time of the server and the loadgen, read every :data:`PERIOD` seconds,
so the CPU used between any two instants of a case comes from readings at most that far
apart around them (linear interpolation between the two readings that bracket each).

A reading is a cgroup's counter (exact, the whole tree, exited children included, one
small file read) or, without a cgroup, a walk of the process tree in ``/proc``. Each
reading is stamped with the monotonic time halfway through it; a reading that took long
(a large tree) is recorded with its spread, and the width of the bracket around each end
of a window is reported, so a coarse figure is visible as such.
"""

from __future__ import annotations

import bisect
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

from bench.sampler import pin_this_thread, tree_cpu_s

PERIOD = 0.05


@dataclass(frozen=True)
class Interval:
    """CPU used over ``[t0, t1]``: ``cores`` on average, and ``gap_s``, the widest of the
    two brackets of readings its ends were interpolated in."""

    t0: float
    t1: float
    cpu_s: float
    gap_s: float

    @property
    def cores(self) -> float:
        return self.cpu_s / (self.t1 - self.t0)


class Counter:
    """One cumulative CPU counter: ``read()`` returns seconds, or ``None`` when the thing
    measured is gone."""

    def __init__(self, read: Callable[[], float | None], source: str):
        self.read = read
        self.source = source  # "cgroup" or "proc"
        self.times: list[float] = []
        self.values: list[float] = []

    @classmethod
    def of_tree(cls, pid: int) -> Counter:
        return cls(lambda: tree_cpu_s(pid), "proc")

    def record(self, t: float, value: float | None) -> None:
        if value is not None and (not self.values or value >= self.values[-1]):
            self.times.append(t)
            self.values.append(value)

    def at(self, t: float) -> tuple[float, float] | None:
        """Interpolated counter value at ``t`` and the width of the bracket used."""
        ts = self.times
        if not ts or t < ts[0] or t > ts[-1]:
            return None
        i = bisect.bisect_left(ts, t)
        if ts[i] == t:
            return self.values[i], 0.0
        t0, t1 = ts[i - 1], ts[i]
        v0, v1 = self.values[i - 1], self.values[i]
        return v0 + (v1 - v0) * (t - t0) / (t1 - t0), t1 - t0

    def between(self, t0: float, t1: float) -> Interval | None:
        """CPU used over ``[t0, t1]`` (``None`` unless readings bracket both ends)."""
        a, b = self.at(t0), self.at(t1)
        if a is None or b is None or t1 <= t0:
            return None
        return Interval(t0, t1, b[0] - a[0], max(a[1], b[1]))


class CpuMeter(threading.Thread):
    """Reads each named :class:`Counter` every :data:`PERIOD` s on the case clock
    (``time.monotonic() - t0``) until :meth:`stop`."""

    def __init__(self, t0: float, cpus: list[int] | None = None, period: float = PERIOD):
        super().__init__(name="cpumeter", daemon=True)
        self.t0 = t0
        self.cpus = cpus
        self.period = period
        self.counters: dict[str, Counter] = {}
        self._lock = threading.Lock()
        self._halt = threading.Event()

    def watch(self, name: str, counter: Counter) -> None:
        with self._lock:
            self.counters[name] = counter
        self._tick_one(counter)

    def _tick_one(self, counter: Counter) -> None:
        a = time.monotonic()
        value = counter.read()
        b = time.monotonic()
        counter.record((a + b) / 2 - self.t0, value)

    def tick(self) -> None:
        """Read every counter now (also done at start and stop)."""
        with self._lock:
            counters = list(self.counters.values())
        for c in counters:
            self._tick_one(c)

    def run(self) -> None:
        pin_this_thread(self.cpus)
        next_at = time.monotonic()
        while not self._halt.is_set():
            self.tick()
            next_at = max(next_at + self.period, time.monotonic() + self.period / 5)
            self._halt.wait(max(0.0, next_at - time.monotonic()))

    def stop(self) -> None:
        self._halt.set()
        if self.is_alive():
            self.join(10)
        self.tick()

    def series(self, name: str) -> list[list[float]]:
        """``[[t, cpu_s], ...]`` of one counter, for the run file."""
        c = self.counters.get(name)
        if c is None:
            return []
        return [[round(t, 4), round(v, 6)] for t, v in zip(c.times, c.values, strict=True)]
