"""The one name of a bench case: :class:`CaseKey`, with its id, label and group.

A case is one strategy under one load (connections × rate × message size × mode ×
connection mode), repeated. Everything that names a case — the matrix, ``--resume``'s
"already done" test, the progress line, the summary line, the report's grouping — goes
through this class, so a case is named one way everywhere.
"""

from __future__ import annotations

import dataclasses
import json
from dataclasses import dataclass


@dataclass(frozen=True)
class CaseKey:
    """One case of the matrix. ``rate`` is the open-loop total msg/s (``None`` in closed
    loop); ``repeat`` is 0-based, ``None`` for a group (every repeat of the case)."""

    strategy: str
    connections: int
    rate: float | None
    size: int
    mode: str  # "open" or "closed"
    conn_mode: str  # "persistent" or "per-message"
    repeat: int | None = 0

    @classmethod
    def from_dict(cls, d: dict) -> CaseKey:
        return cls(**{f.name: d[f.name] for f in dataclasses.fields(cls)})

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @property
    def id(self) -> str:
        """A stable text id (the JSON of the key): equal ids, the same case."""
        return json.dumps(self.to_dict(), sort_keys=True)

    @property
    def group(self) -> CaseKey:
        """The key of every repeat of this case."""
        return dataclasses.replace(self, repeat=None)

    @property
    def load(self) -> str:
        """The load alone: ``5,000/s``, ``closed``, with `` per-msg`` and `` 256B`` when
        they differ from the defaults."""
        load = "closed" if self.mode == "closed" else f"{self.rate:,.0f}/s"
        if self.conn_mode != "persistent":
            load += " per-msg"
        return load if self.size == 64 else f"{load} {self.size}B"

    @property
    def label(self) -> str:
        """``thread c=10,000 5,000/s`` (and `` rep 2`` for one repeat)."""
        rep = "" if self.repeat is None else f" rep {self.repeat + 1}"
        return f"{self.strategy} c={self.connections:,} {self.load}{rep}"

    def sort_key(self, strategy_order: dict[str, int]) -> tuple:
        """Report order: open loop first, then connection mode, size, connections, rate,
        and strategies in the run's order."""
        return (self.mode != "open", self.conn_mode, self.size, self.connections,
                self.rate if self.rate is not None else -1.0,
                strategy_order.get(self.strategy, 99), self.strategy,
                -1 if self.repeat is None else self.repeat)
