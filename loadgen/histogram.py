"""Latency histograms (µs, 3 significant digits) and the figures made from them.

Pure helpers on `hdrh.histogram.HdrHistogram`, importable without gevent or Locust,
so the pytest process can check merging directly.  Workers record into their own
histograms and ship them encoded (HdrHistogram's compressed base64 form); the master
decodes and adds them.  Adding is exact: a merged histogram has the same counts as one
that recorded every sample itself.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Sequence

from hdrh.histogram import HdrHistogram

LOWEST_US = 1
HIGHEST_US = 3_600_000_000  # one hour: a corrected latency can far exceed the timeout
DIGITS = 3
PERCENTILES = {"p50": 50.0, "p90": 90.0, "p99": 99.0, "p99.9": 99.9, "p99.99": 99.99}


def new() -> HdrHistogram:
    return HdrHistogram(LOWEST_US, HIGHEST_US, DIGITS)


def record(h: HdrHistogram, us: int) -> None:
    """Record `us`, clamped into the trackable range (0 µs is recorded as 1 µs)."""
    h.record_value(min(max(us, LOWEST_US), HIGHEST_US))


def encode(h: HdrHistogram) -> str:
    return h.encode().decode("ascii")


def merge(encoded: Iterable[str | bytes]) -> HdrHistogram:
    """One histogram holding the counts of all the encoded ones."""
    total = new()
    for e in encoded:
        total.add(HdrHistogram.decode(e.encode("ascii") if isinstance(e, str) else e))
    return total


def summary(h: HdrHistogram) -> dict:
    """Percentiles, max and mean in µs, and the sample count; all 0 when empty."""
    count = h.get_total_count()
    out: dict = {}
    for key, pct in PERCENTILES.items():
        out[key] = h.get_value_at_percentile(pct) if count else 0
    out["max"] = h.get_max_value() if count else 0
    out["mean"] = round(h.get_mean_value(), 3) if count else 0.0
    out["count"] = count
    return out


def fairness(counts: Sequence[int]) -> dict:
    """Messages completed per connection: min, median, max, Jain's index, starved.

    Jain's index is (Σx)² / (n·Σx²): 1.0 when every connection got the same service,
    1/n when one got it all; 0.0 when no connection completed anything.
    """
    if not counts:
        return {"min": 0, "median": 0.0, "max": 0, "jain": 0.0, "starved": 0}
    s = sum(counts)
    sq = sum(c * c for c in counts)
    return {
        "min": min(counts),
        "median": float(statistics.median(counts)),
        "max": max(counts),
        "jain": round(s * s / (len(counts) * sq), 6) if sq else 0.0,
        "starved": sum(1 for c in counts if c == 0),
    }
