"""The capacity search: the highest open-loop rate a server holds under the SLO (its knee).

For one strategy × connection count, each step is a whole case at one offered rate,
judged by :func:`results.verdict.judge`. The rate rises geometrically (× ``factor``) while
the server holds it; once a step is not held, the search bisects (geometric midpoint)
between the highest rate held and the lowest not held until they are within
``tolerance``. It stops early where the answer is known:

* a step is ``loadgen-bound``: the loadgen cannot offer more, so the knee is ``≥`` the
  highest rate held (``bound = "loadgen"``);
* the first rate is not held: the search halves the rate until one is held;
* ``max_steps`` is spent: the knee is the highest rate held so far (``bound = "none"``
  if nothing above it failed).

The search holds no I/O: :meth:`Search.next_rate` says what to run next and
:meth:`Search.record` takes its outcome, so a stored run can be replayed to resume it.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field


def round_rate(rate: float) -> float:
    """Three significant figures: rates a reader can say aloud."""
    if rate <= 0:
        return rate
    digits = 3 - int(math.floor(math.log10(rate))) - 1
    return float(round(rate, digits))


@dataclass
class Search:
    """One knee search. Invariant: ``lo < hi`` whenever both are set."""

    strategy: str
    connections: int
    start: float
    factor: float = 2.0
    tolerance: float = 0.1
    max_steps: int = 8
    floor: float = 1.0  # the lowest rate worth trying when going down
    steps: list[dict] = field(default_factory=list)
    lo: float | None = None  # highest rate held
    hi: float | None = None  # lowest rate not held (server-bound or failed)
    loadgen_bound: bool = False

    def record(self, rate: float, kind: str, p99_ms: float | None) -> None:
        """The outcome of the step at ``rate``: its verdict kind and corrected p99."""
        self.steps.append({"rate": rate, "verdict": kind, "p99_ms": p99_ms})
        if kind == "held":
            self.lo = max(self.lo or rate, rate)
        elif kind == "loadgen-bound":
            self.loadgen_bound = True
        else:
            self.hi = min(self.hi or rate, rate)
        assert self.lo is None or self.hi is None or self.lo < self.hi, (self.lo, self.hi)

    def next_rate(self) -> float | None:
        """The next rate to offer, or ``None`` when the search is over."""
        if not self.steps:
            return round_rate(self.start)
        if self.loadgen_bound or len(self.steps) >= self.max_steps:
            return None
        last = self.steps[-1]["rate"]
        if self.hi is None:
            return round_rate(last * self.factor)
        if self.lo is None:
            down = round_rate(last / self.factor)
            return down if down >= self.floor else None
        if self.hi / self.lo <= 1 + self.tolerance:
            return None
        mid = round_rate(math.sqrt(self.lo * self.hi))
        return mid if self.lo < mid < self.hi else None

    def result(self) -> dict:
        """The run file's record of this search (``results/SCHEMA.md``, "capacity")."""
        if self.loadgen_bound:
            bound, reason = "loadgen", "the loadgen reached its limit first"
        elif self.hi is not None and self.lo is not None:
            bound, reason = "server", f"held {self.lo:,.0f} msg/s, not {self.hi:,.0f}"
        elif self.hi is not None:
            bound, reason = "failed", "no rate tried was held"
        else:
            bound, reason = "none", "every rate tried was held"
        return {"strategy": self.strategy, "connections": self.connections, "knee": self.lo,
                "bound": bound, "reason": reason, "steps": list(self.steps)}


def searches(cfg: dict, strategies: list[str]) -> list[Search]:
    """A search per connection count × strategy, in run order."""
    start = cfg["capacity_start"] or cfg["rate_cap"] / 4
    return [Search(s, n, start, cfg["capacity_factor"], cfg["capacity_tolerance"],
                   cfg["capacity_steps"])
            for n in cfg["connections"] for s in strategies]
