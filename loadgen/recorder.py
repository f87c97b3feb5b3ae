"""One worker's tally: counts, errors and histograms of the samples in the measure window.

The window is [start, end) on this worker's `time.perf_counter` clock, opened when the
master's "measure" message arrives; a sample belongs to it when its *intended* send time
falls inside (in closed loop intended == actual).  Samples whose echo completes after
`end` still count, so a stall at the end of the window is not cut off; the drain phase
waits for them.  Correction is wrk2's (latency from the intended send time of a fixed
schedule), not HdrHistogram's `record_corrected_value`, which back-fills synthetic
samples from one expected interval and would be wrong for per-connection schedules
with random phases.  Plain Python, no gevent: the driver calls it between socket
operations.  Every histogram here is a :class:`loadgen.histogram.Counts`: a sample costs
an increment, and the histograms are folded when they are reported.

Besides the echoes, the recorder keeps the worker's view of itself: ``lateness`` (how late
timed open-loop sends left) and ``lag`` (how long a ready socket or a due send waited in
the driver's loop before it was served): the share of a latency that is the loadgen's.
"""

from __future__ import annotations

import math

from loadgen.histogram import Counts, encode, index

ERROR_KINDS = ("refused", "reset", "timeout", "corrupt", "closed", "other")
CONNECT_KINDS = ("refused", "reset", "timeout", "other")
INTERVAL_S = 1.0


class Recorder:
    """Counters and histograms of one worker (see the module docstring for the window)."""

    def __init__(self, timeout: float) -> None:
        self.timeout = timeout
        self.start = math.inf
        self.end = math.inf
        self.corrected = Counts()
        self.uncorrected = Counts()
        self.buckets: dict[int, Counts] = {}
        self.messages = 0
        self.bytes = 0
        self.errors = dict.fromkeys(ERROR_KINDS, 0)
        self.connect_errors = dict.fromkeys(CONNECT_KINDS, 0)
        self.per_user: list[int] = []
        self.connected = 0  # users whose first connect succeeded
        self.served = 0  # users that completed their first echo
        self.total_messages = 0  # every phase, for progress
        self.total_errors = 0
        self.inflight = 0  # measured messages sent and not yet finished
        self.lateness = Counts()  # open loop: how late timed sends left, µs
        self.lag = Counts()  # the driver's own delay in serving a ready socket or a due send, µs

    def new_user(self) -> int:
        self.per_user.append(0)
        return len(self.per_user) - 1

    def open_window(self, now: float, duration: float) -> None:
        self.start = now
        self.end = now + duration

    def in_window(self, intended: float) -> bool:
        return self.start <= intended < self.end

    def sample(self, uid: int, intended: float, sent: float, done: float, size: int,
               ready: float | None = None) -> None:
        """A verified echo: latency from intended and from actual send time; with
        ``ready``, the driver's lag in reading it (``done - ready``)."""
        self.total_messages += 1
        if not self.start <= intended < self.end:
            return
        us = int((done - intended) * 1e6)  # the hot path: indices (below 2,048 µs the
        i = us if 0 < us < 2048 else index(us)  # value itself) and increments
        self.corrected.counts[i] += 1
        self.uncorrected.counts[i if sent == intended else index(int((done - sent) * 1e6))] += 1
        b = int((intended - self.start) / INTERVAL_S)
        h = self.buckets.get(b)
        if h is None:
            h = self.buckets[b] = Counts()
        h.counts[i] += 1
        if ready is not None:
            us = int((done - ready) * 1e6)
            self.lag.counts[us if 0 < us < 2048 else index(us)] += 1
        self.messages += 1
        self.bytes += size
        self.per_user[uid] += 1

    def late(self, intended: float, sent: float) -> None:
        """An open-loop send that waited for its time and left at `sent`: its lateness
        measures the worker itself (a reply that came late delays no timed send); it is
        the driver's lag too."""
        if self.start <= intended < self.end:
            i = index(int((sent - intended) * 1e6))
            self.lateness.counts[i] += 1
            self.lag.counts[i] += 1

    def error(self, kind: str, intended: float) -> None:
        """A failed message; counted when its intended send time is in the window."""
        self.total_errors += 1
        if self.start <= intended < self.end:
            self.errors[kind] += 1

    def connect_error(self, kind: str) -> None:
        """A failed first connect of a user (any phase)."""
        self.total_errors += 1
        self.connect_errors[kind if kind in CONNECT_KINDS else "other"] += 1

    def take_buckets(self, now: float, final: bool) -> dict[str, str]:
        """Encode and forget interval histograms no sample can still land in.

        A bucket is final once its end plus the message timeout has passed; a catch-up
        send can still land in one later, which then comes back as a new partial
        histogram that the master adds to the first.
        """
        out = {}
        for b in list(self.buckets):
            if final or self.start + (b + 1) * INTERVAL_S + self.timeout + 0.5 < now:
                out[str(b)] = encode(self.buckets.pop(b))
        return out
