"""Latency histograms (µs, 3 significant digits) and the figures made from them.

Pure helpers on `hdrh.histogram.HdrHistogram`, importable without gevent or Locust,
so the pytest process can check merging directly.  Workers record into :class:`Counts`
(HdrHistogram's bucket layout in a plain list: a sample costs an index and an increment,
where hdrh's pure-Python ``record_value`` costs several method calls), fold them into
histograms when they report, and ship those encoded (HdrHistogram's compressed base64
form); the master decodes and adds them.  Folding and adding are exact: the result has
the same counts, and encodes to the same bytes, as one histogram that recorded every
sample itself.
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


class Counts:
    """Samples in HdrHistogram's layout (:data:`LOWEST_US`..:data:`HIGHEST_US`,
    :data:`DIGITS` digits); :meth:`fold` gives the histogram they make.

    ``counts[i]`` is the number of samples whose hdrh counts index is ``i`` (:func:`index`);
    a hot path may increment it directly. Values are clamped into the trackable range as
    :func:`record` clamps them.
    """

    __slots__ = ("counts",)
    _shape = new()
    _MASK = _shape.sub_bucket_mask
    _SHIFT = _shape.unit_magnitude + _shape.sub_bucket_half_count_magnitude + 1
    _HALF_MAG = _shape.sub_bucket_half_count_magnitude
    _HALF = _shape.sub_bucket_half_count
    _UNIT = _shape.unit_magnitude
    LEN = _shape.counts_len
    assert _UNIT == 0, "index() takes the unit magnitude to be 0 (LOWEST_US == 1)"

    def __init__(self) -> None:
        self.counts = [0] * self.LEN

    @property
    def total(self) -> int:
        return sum(self.counts)

    def record(self, us: int) -> None:
        self.counts[index(us)] += 1

    def fold(self) -> HdrHistogram:
        """A new histogram holding these counts."""
        h = new()
        lo = hi = -1
        for i, c in enumerate(self.counts):
            if c:
                h.counts[i] = c
                hi = i
                if lo < 0:
                    lo = i
        if hi >= 0:
            h.set_internal_tacking_values(lo, hi, sum(self.counts))
        return h

    def percentile(self, pct: float) -> int:
        """The value at ``pct`` (0 when empty), as the folded histogram gives it."""
        h = self.fold()
        return h.get_value_at_percentile(pct) if h.get_total_count() else 0


assert (Counts._MASK, Counts._SHIFT, Counts._HALF_MAG, Counts._HALF) == (2047, 11, 10, 1024), \
    "index() inlines the constants of a 3-digit histogram from 1 µs"


def index(us: int) -> int:
    """hdrh's counts index of ``us`` µs (clamped), as ``get_counts_array_index`` gives:
    the value itself below 2,048, where a bucket is 1 µs wide."""
    if us < 2048:
        return us if us > 0 else LOWEST_US
    if us > HIGHEST_US:
        us = HIGHEST_US
    b = (us | 2047).bit_length() - 11
    return ((b + 1) << 10) + (us >> b) - 1024


def encode(h: HdrHistogram | Counts) -> str:
    """HdrHistogram's compressed base64 form (of the folded histogram, for Counts)."""
    if isinstance(h, Counts):
        h = h.fold()
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
