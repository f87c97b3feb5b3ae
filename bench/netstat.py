"""The kernel's TCP listen-queue counters (``/proc/net/netstat``, TcpExt).

``ListenOverflows`` counts connections dropped because a listener's accept queue was full;
``ListenDrops`` every drop at a listener (overflows included). They are machine-wide, so a
case's delta includes anything else listening on the machine at the time.
"""

from __future__ import annotations

from pathlib import Path

FIELDS = ("ListenOverflows", "ListenDrops")


def read(path: str = "/proc/net/netstat") -> dict[str, int | None]:
    """The current counters, or ``None`` for each where the file or field is missing."""
    out: dict[str, int | None] = dict.fromkeys(FIELDS)
    try:
        lines = Path(path).read_text().splitlines()
    except OSError:
        return out
    for names, values in zip(lines[::2], lines[1::2], strict=False):
        if names.startswith("TcpExt:") and values.startswith("TcpExt:"):
            table = dict(zip(names.split()[1:], values.split()[1:], strict=False))
            for f in FIELDS:
                if f in table:
                    out[f] = int(table[f])
    return out


def delta(before: dict[str, int | None], after: dict[str, int | None]) -> dict[str, int | None]:
    """``after - before`` per counter (``None`` where either side is missing)."""
    return {
        f: None if before.get(f) is None or after.get(f) is None else after[f] - before[f]
        for f in FIELDS
    }
