"""results.stats: benchstat's summary (median + order-statistic CI) and verdicts."""

import math
import random

import pytest

from results import stats


def noisy(center: float, n: int, rel_noise: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [center * (1 + rng.gauss(0, rel_noise)) for _ in range(n)]


def test_a_20_percent_slowdown_with_low_noise_is_a_regression():
    old = noisy(100.0, 10, 0.01, seed=1)
    new = noisy(120.0, 10, 0.01, seed=2)
    c = stats.compare(old, new, better="lower")
    assert c.verdict == stats.REGRESSED
    assert c.p is not None and c.p < 0.05
    assert 17 < c.delta_pct < 23


def test_the_same_shift_on_a_higher_is_better_metric_is_an_improvement():
    c = stats.compare(noisy(100, 10, 0.01, 1), noisy(120, 10, 0.01, 2), better="higher")
    assert c.verdict == stats.IMPROVED


def test_the_same_distribution_twice_is_no_change():
    c = stats.compare(noisy(100, 10, 0.05, 3), noisy(100, 10, 0.05, 4))
    assert c.verdict == stats.SAME
    assert c.p >= 0.05


def test_a_significant_change_below_the_minimum_effect_is_no_change():
    old = [100.0 + i * 0.01 for i in range(10)]
    new = [102.0 + i * 0.01 for i in range(10)]  # +2%, perfectly separated
    c = stats.compare(old, new, threshold_pct=5.0)
    assert c.p < 0.05 and c.verdict == stats.SAME
    assert stats.compare(old, new, threshold_pct=1.0).verdict == stats.REGRESSED


@pytest.mark.parametrize("n_old,n_new", [(3, 3), (3, 10), (10, 1), (0, 5)])
def test_too_few_samples_gives_no_verdict(n_old, n_new):
    c = stats.compare([100.0] * n_old, [200.0 + i for i in range(n_new)])
    assert c.verdict == stats.TOO_FEW
    assert c.p is None


def test_four_per_side_is_enough_to_detect_a_difference_at_005_as_benchstat_says():
    assert stats.min_samples(0.05) == 4
    assert not stats.can_detect(3, 3, 0.05)
    assert stats.can_detect(4, 4, 0.05)
    assert stats.min_pvalue(4, 4) == pytest.approx(2 / 70)
    c = stats.compare([1.0, 1.1, 1.2, 1.3], [2.0, 2.1, 2.2, 2.3])
    assert c.verdict == stats.REGRESSED and c.p == pytest.approx(2 / 70)


def test_identical_constant_samples_are_no_change_with_p_1():
    c = stats.compare([5.0] * 6, [5.0] * 6)
    assert c.verdict == stats.SAME and c.p == 1.0 and c.delta_pct == 0


def test_median_ci_needs_six_samples_at_95_percent():
    assert stats.median_ci([1, 2, 3, 4, 5]) is None
    assert stats.median_ci([1, 2, 3, 4, 5, 6]) == (1, 6)


def test_median_ci_uses_the_binomial_order_statistics():
    xs = list(range(1, 21))  # n = 20: P(Bin(20, .5) <= 5) = 0.0207 -> k = 6
    assert stats.median_ci(xs) == (6, 15)
    s = stats.summarize(xs)
    assert s.median == 10.5 and (s.lo, s.hi) == (6, 15)
    assert s.spread_pct == pytest.approx(4.5 / 10.5 * 100)


def test_median_ci_covers_the_true_median_about_95_percent_of_the_time():
    rng = random.Random(7)
    hits = 0
    trials = 2000
    for _ in range(trials):
        lo, hi = stats.median_ci([rng.expovariate(1.0) for _ in range(15)])
        hits += lo <= math.log(2) <= hi
    assert 0.94 <= hits / trials <= 0.995  # exact coverage for n=15 is 0.965


def test_summary_of_too_few_values_has_no_interval():
    s = stats.summarize([3.0, 1.0, 2.0])
    assert s.median == 2.0 and s.lo is None and s.spread_pct is None


def test_summarize_rejects_an_empty_sample():
    with pytest.raises(ValueError):
        stats.summarize([])


def test_geomean():
    assert stats.geomean([1.0, 4.0, 16.0]) == pytest.approx(4.0)
    assert stats.geomean([]) is None
    assert stats.geomean([1.0, 0.0]) is None


def test_better_must_be_lower_or_higher():
    with pytest.raises(ValueError):
        stats.compare([1.0] * 5, [1.0] * 5, better="faster")
