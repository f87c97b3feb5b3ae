"""Verdicts on instruction counts (results/verdicts.py), on synthetic counts."""

import pytest

from results import verdicts
from results.stats import IMPROVED, REGRESSED, SAME
from results.verdicts import NOISY, compare_counts, needs_confirmation


def test_a_change_below_the_threshold_is_no_change():
    c = compare_counts([18_000.0], [18_170.0])  # +0.94%
    assert c.verdict == SAME
    assert c.delta_pct == pytest.approx(0.944, abs=0.001)
    assert (c.old, c.new) == (18_000.0, 18_170.0)


def test_identical_counts_are_no_change_at_a_zero_threshold_too():
    assert compare_counts([500.0, 500.0], [500.0], threshold_pct=0.0).verdict == SAME


def test_more_instructions_beyond_the_threshold_is_a_regression():
    c = compare_counts([18_000.0, 18_000.4], [18_540.0, 18_540.2])  # +3%
    assert c.verdict == REGRESSED
    assert c.delta_pct == pytest.approx(3.0, abs=0.01)
    assert c.spread_pct == pytest.approx(0.4 / 18_000.2 * 100)


def test_fewer_instructions_beyond_the_threshold_is_an_improvement():
    assert compare_counts([1000.0], [950.0]).verdict == IMPROVED


def test_the_threshold_is_a_parameter():
    assert compare_counts([1000.0], [1030.0], threshold_pct=5.0).verdict == SAME
    assert compare_counts([1000.0], [1030.0], threshold_pct=2.0).verdict == REGRESSED
    assert verdicts.DEFAULT_THRESHOLD_PCT == 1.0


def test_overlapping_ranges_beyond_the_threshold_are_noisy_not_a_regression():
    # Medians 2% apart, but one old repeat is as high as a new one: the counts disagree.
    c = compare_counts([1000.0, 1025.0, 1000.0], [1020.0, 1021.0])
    assert c.delta_pct > 1.0 and c.verdict == NOISY
    assert c.spread_pct == pytest.approx(2.5)
    assert compare_counts([1000.0, 975.0], [970.0, 980.0]).verdict == NOISY


def test_apart_ranges_with_a_change_within_twice_the_spread_are_noisy():
    # Procs-2 counts: each side's repeats 2% apart, the sides apart by 3%: not believed.
    old, new = [10_000.0, 10_100.0, 10_200.0], [10_350.0, 10_400.0, 10_510.0]
    c = compare_counts(old, new, threshold_pct=2.0)
    assert min(new) > max(old) and c.delta_pct == pytest.approx(2.97, abs=0.01)
    assert c.spread_pct == pytest.approx(1.98, abs=0.01) and c.verdict == NOISY
    # The same spread and a 5.4% change: more than twice the spread, so believed.
    assert compare_counts(old, [10_600.0, 10_650.0, 10_760.0], threshold_pct=2.0).verdict \
        == REGRESSED
    assert compare_counts(new, old, threshold_pct=2.0).verdict == NOISY
    assert verdicts.SPREAD_FACTOR == 2.0


def test_the_median_resists_one_outlier_count():
    c = compare_counts([1000.0, 1000.0, 1300.0], [1001.0, 1001.0, 1001.0])
    assert c.old == 1000.0 and c.verdict == SAME


@pytest.mark.parametrize("old,new,threshold", [
    ([], [1.0], 1.0),
    ([1.0], [], 1.0),
    ([0.0], [1.0], 1.0),
    ([1.0], [-1.0], 1.0),
    ([1.0], [1.0], -0.5),
])
def test_bad_input_is_a_value_error(old, new, threshold):
    with pytest.raises(ValueError):
        compare_counts(old, new, threshold)


def test_a_verdict_on_one_count_per_side_needs_confirmation():
    one = compare_counts([1000.0], [1100.0])
    assert one.verdict == REGRESSED and needs_confirmation(one, 1, 1)
    assert needs_confirmation(compare_counts([1000.0], [900.0]), 1, 1)
    two = compare_counts([1000.0, 1000.0], [1100.0, 1100.0])
    assert not needs_confirmation(two, 2, 2)
    assert not needs_confirmation(compare_counts([1000.0], [1001.0]), 1, 1)  # "~" stands
