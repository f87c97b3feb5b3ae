"""loadgen.histogram.Counts: samples counted by index fold into exactly the histogram
hdrh would have made recording each of them (same counts, same encoded bytes)."""

from __future__ import annotations

import random

import pytest

from loadgen import histogram
from loadgen.histogram import HIGHEST_US, Counts, index

EDGES = [0, -1, -5_000, 1, 2, 1023, 1024, 2047, 2048, 2049, 4095, 4096, 4097, 65_535,
         1_000_000, HIGHEST_US - 1, HIGHEST_US, HIGHEST_US + 1, HIGHEST_US * 3 // 2,
         2 * HIGHEST_US, 10 * HIGHEST_US, 2**62]


def _samples(n: int = 50_000) -> list[int]:
    """Edge values (clamped below 1 and above HIGHEST_US, bucket borders) and a lognormal
    spread from a few µs to minutes, seeded."""
    rng = random.Random(20240611)
    spread = [int(rng.lognormvariate(7, 2.5)) for _ in range(n)]
    return EDGES * 3 + spread + [rng.randrange(0, 4096) for _ in range(n // 10)]


def _hdrh(samples: list[int]):
    h = histogram.new()
    for v in samples:
        histogram.record(h, v)
    return h


def _by_record(samples: list[int]) -> Counts:
    c = Counts()
    for v in samples:
        c.record(v)
    return c


def _by_index(samples: list[int]) -> Counts:
    c = Counts()
    for v in samples:
        c.counts[index(v)] += 1
    return c


@pytest.mark.parametrize("count", [_by_record, _by_index], ids=["record", "index"])
def test_folded_counts_equal_hdrh_recording_every_sample(count):
    samples = _samples()
    want = _hdrh(samples)
    got = count(samples).fold()
    assert got.encode() == want.encode()
    assert got.get_total_count() == want.get_total_count() == len(samples)
    assert got.get_min_value() == want.get_min_value() == 1
    assert got.get_max_value() == want.get_max_value()
    assert got.get_mean_value() == want.get_mean_value()
    assert got.get_stddev() == want.get_stddev()
    for pct in (0.0, 1.0, 25.0, 50.0, 90.0, 99.0, 99.9, 99.99, 100.0):
        assert got.get_value_at_percentile(pct) == want.get_value_at_percentile(pct), pct
    assert histogram.summary(got) == histogram.summary(want)
    assert list(got.counts) == list(want.counts)


def test_every_value_of_the_first_buckets_has_hdrh_index():
    """Below 2,048 the index is the value; above, one index per hdrh sub-bucket."""
    h = histogram.new()
    for v in [*range(-3, 70_000), *EDGES]:
        assert index(v) == h.get_counts_array_index(min(max(v, 1), HIGHEST_US)), v


def test_an_empty_count_folds_to_an_empty_histogram():
    h = Counts().fold()
    assert h.get_total_count() == 0
    assert h.encode() == histogram.new().encode()
    assert histogram.summary(h) == histogram.summary(histogram.new())
    assert Counts().percentile(99.0) == 0


def test_encoding_counts_is_encoding_their_fold():
    c = _by_record(_samples(5_000))
    assert histogram.encode(c) == histogram.encode(c.fold())
    assert histogram.merge([histogram.encode(c)]).encode() == _hdrh(_samples(5_000)).encode()
    assert c.percentile(99.0) == _hdrh(_samples(5_000)).get_value_at_percentile(99.0)
