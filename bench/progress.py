"""What the user sees while a bench runs: a live line per case and a summary after it.

On a terminal the live line is redrawn in place (``\\r``); otherwise (a log file, CI) a
plain line is written at most every 10 s so logs stay readable. Everything goes to stderr;
stdout is kept for the final report.
"""

from __future__ import annotations

import sys
import time
from typing import TextIO


def hms(seconds: float) -> str:
    seconds = max(0, int(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


class Progress:
    """Tracks the run's position and timing; draws the live line and per-case summaries."""

    def __init__(self, total: int, estimates: list[float], stream: TextIO | None = None):
        self.stream = stream or sys.stderr
        self.tty = self.stream.isatty()
        self.total = total
        self.estimates = estimates  # a rough duration per remaining case, in run order
        self.done = 0
        self.spent = 0.0  # actual seconds of finished cases
        self.spent_est = 0.0  # their estimates
        self.start = time.monotonic()
        self.case_start = self.start
        self.label = ""
        self._last_plain = 0.0
        self._drawn = False

    def begin(self, index: int, label: str) -> None:
        self.index = index
        self.label = label
        self.case_start = time.monotonic()
        self._last_plain = 0.0

    def eta(self) -> float:
        """Remaining seconds: the remaining estimates, scaled by how the finished ones fared."""
        scale = self.spent / self.spent_est if self.spent_est > 0 else 1.0
        remaining = sum(self.estimates[self.done:]) * scale
        return max(0.0, remaining - (time.monotonic() - self.case_start))

    def update(self, phase: str, rate: float | None, errors: int | None, connected: int | None):
        now = time.monotonic()
        bits = [f"[{self.index}/{self.total}] {self.label}", phase or "starting"]
        if connected is not None:
            bits.append(f"conn {connected}")
        if rate is not None:
            bits.append(f"{rate:,.0f} msg/s")
        if errors is not None:
            bits.append(f"err {errors}")
        bits.append(f"case {hms(now - self.case_start)}")
        bits.append(f"run {hms(now - self.start)} ETA {hms(self.eta())}")
        line = " | ".join(bits)
        if self.tty:
            self.stream.write("\r\x1b[K" + line[:200])
            self._drawn = True
        elif now - self._last_plain >= 10.0:
            self.stream.write(line + "\n")
            self._last_plain = now
        self.stream.flush()

    def finish(self, summary: str, estimate: float) -> None:
        """End the current case with its one-line summary."""
        elapsed = time.monotonic() - self.case_start
        self.done += 1
        self.spent += elapsed
        self.spent_est += estimate
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        self.stream.write(f"[{self.index}/{self.total}] {summary} ({hms(elapsed)})\n")
        self.stream.flush()

    def skip(self, n: int) -> None:
        """Forget ``n`` planned cases that will not run (a capacity search ended early)."""
        n = max(0, n)
        del self.estimates[self.done:self.done + n]
        self.total -= n

    def message(self, text: str) -> None:
        if self._drawn:
            self.stream.write("\r\x1b[K")
            self._drawn = False
        self.stream.write(text + "\n")
        self.stream.flush()
