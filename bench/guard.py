"""The memory guard: stop a case before the machine runs out of memory.

Two limits, either one trips it: the machine's available memory falling below a floor
(protects everything else running here), and the case using more than a budget (the drop
in available memory since the case started, which includes kernel memory such as thread
stacks and socket buffers that no process RSS shows).
"""

from __future__ import annotations

import psutil

GiB = 1 << 30


class MemoryGuard:
    """Checks a case's memory against ``floor`` and ``budget`` (bytes)."""

    def __init__(self, floor: float, budget: float | None = None):
        self.floor = floor
        total = psutil.virtual_memory().total
        self.budget = budget if budget is not None else total / 2
        self.available_before = psutil.virtual_memory().available
        self.available_min = self.available_before
        self.reason: str | None = None

    def check(self, available: int) -> str | None:
        """Record ``available`` (bytes); return (and keep) the reason once a limit is hit."""
        self.available_min = min(self.available_min, available)
        if self.reason is None:
            if available < self.floor:
                self.reason = (
                    f"available memory {available / GiB:.2f} GiB below the floor "
                    f"{self.floor / GiB:.2f} GiB"
                )
            elif self.available_before - available > self.budget:
                self.reason = (
                    f"case used {(self.available_before - available) / GiB:.2f} GiB, "
                    f"over its budget of {self.budget / GiB:.2f} GiB"
                )
        return self.reason

    def summary(self) -> dict:
        return {
            "available_before": int(self.available_before),
            "available_min": int(self.available_min),
            "drop": int(max(0, self.available_before - self.available_min)),
        }
