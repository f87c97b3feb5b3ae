"""The loadgen's measured ceiling on this machine (``runner.py ceiling`` writes it).

One JSON file, ``results/ceiling.json`` (``C10K_CEILING_FILE`` moves it), holds what one
loadgen worker on one core did here: verified msg/s per worker CPU-second in closed loop,
and the highest open-loop rate it offered on time at each connection count. It belongs to
the machine it was measured on: :func:`load` returns it only where the CPU model and the
logical core count are this machine's, so a results tree copied elsewhere is not trusted.
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

from common.files import atomic_write
from results.machine import machine_info

_HERE = Path(__file__).resolve().parent
CEILING_FILE = Path(os.environ.get("C10K_CEILING_FILE") or _HERE / "ceiling.json")
VERSION = 1


@dataclass
class Ceiling:
    """One loadgen core's reach here. ``open_rate``: connections → msg/s on time."""

    cpu_model: str
    cores_logical: int
    measured: str
    server: str
    closed_per_cpu_s: float | None
    open_rate: dict[int, float] = field(default_factory=dict)
    runs: list[dict] = field(default_factory=list)

    def per_core_rate(self) -> float | None:
        """The open-loop rate one loadgen core offers on time at the most connections
        measured (the figure that sizes a run), or ``None``."""
        return self.open_rate[max(self.open_rate)] if self.open_rate else None

    def to_json(self) -> dict:
        d = asdict(self)
        d["open_rate"] = {str(k): v for k, v in self.open_rate.items()}
        return {"version": VERSION, **d}


def _this_machine() -> tuple[str, int]:
    m = machine_info()
    return m["cpu_model"], m["cores_logical"]


def new(measured: str, server: str) -> Ceiling:
    model, cores = _this_machine()
    return Ceiling(model, cores, measured, server, None)


def save(c: Ceiling, path: Path | None = None) -> Path:
    path = path or CEILING_FILE
    atomic_write((json.dumps(c.to_json(), indent=1) + "\n").encode(), path)
    return path


def load(path: Path | None = None) -> Ceiling | None:
    """This machine's ceiling, or ``None`` (none measured, unreadable, or another
    machine's)."""
    path = path or CEILING_FILE
    try:
        d = json.loads(path.read_text())
        c = Ceiling(d["cpu_model"], int(d["cores_logical"]), d["measured"], d["server"],
                    d["closed_per_cpu_s"], {int(k): float(v) for k, v in d["open_rate"].items()},
                    list(d.get("runs") or []))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None
    if d.get("version") != VERSION or (c.cpu_model, c.cores_logical) != _this_machine():
        return None
    return c
