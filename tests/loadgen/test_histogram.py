"""loadgen.histogram: merging is exact, summaries and fairness as specified."""

import random

from loadgen import histogram


def test_merging_worker_histograms_equals_recording_all_samples_in_one():
    rng = random.Random(7)
    samples = [int(rng.lognormvariate(6, 1.5)) for _ in range(30_000)]
    whole = histogram.new()
    parts = [histogram.new() for _ in range(3)]
    for i, us in enumerate(samples):
        histogram.record(whole, us)
        histogram.record(parts[i % 3], us)
    merged = histogram.merge(histogram.encode(p) for p in parts)
    assert merged.get_total_count() == len(samples)
    assert histogram.summary(merged) == histogram.summary(whole)
    for v in (1, 50, 400, 5_000, 100_000):
        assert merged.get_count_at_value(v) == whole.get_count_at_value(v)


def test_summary_percentiles_within_three_significant_digits():
    h = histogram.new()
    for us in range(1, 10_001):
        histogram.record(h, us)
    s = histogram.summary(h)
    assert s["count"] == 10_000
    assert abs(s["p50"] - 5_000) <= 5
    assert abs(s["p99"] - 9_900) <= 10
    assert abs(s["max"] - 10_000) <= 10


def test_out_of_range_values_are_clamped_not_lost():
    h = histogram.new()
    histogram.record(h, 0)
    histogram.record(h, 10 * histogram.HIGHEST_US)
    assert h.get_total_count() == 2


def test_empty_summary_is_zero():
    assert histogram.summary(histogram.new())["count"] == 0
    assert histogram.summary(histogram.new())["p99"] == 0


def test_fairness_counts_starved_and_jain():
    f = histogram.fairness([10, 0, 0, 0])
    assert f == {"min": 0, "median": 0.0, "max": 10, "jain": 0.25, "starved": 3}
    assert histogram.fairness([5, 5, 5])["jain"] == 1.0
    assert histogram.fairness([0, 0])["jain"] == 0.0
