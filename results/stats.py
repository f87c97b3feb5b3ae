"""Sample statistics for regression verdicts, after Go's benchstat (golang.org/x/perf/benchmath).

A sample (the values of one metric on one side of a comparison) is summarised by its
median and a distribution-free confidence interval of the median built from order
statistics. Two samples are compared with a two-sided Mann-Whitney U test; the verdict
is ``~`` unless the difference is both significant (p < alpha) and at least a minimum
effect (the threshold, in percent of the old median). As in benchstat there is no
correction for multiple comparisons: at alpha = 0.05 about one metric in twenty of two
runs of identical code is expected to come out significant by chance, which is what the
minimum effect is for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

from scipy import stats as _sp

CONFIDENCE = 0.95

TOO_FEW = "too few samples"
SAME = "~"
REGRESSED = "regressed"
IMPROVED = "improved"


@dataclass(frozen=True)
class Summary:
    """Median of a sample and the confidence interval of the median (None if too few)."""

    n: int
    median: float
    lo: float | None
    hi: float | None

    @property
    def spread_pct(self) -> float | None:
        """The larger half-width of the interval in percent of the median (benchstat's ±)."""
        if self.lo is None or self.hi is None:
            return None
        if self.median == 0:
            return 0.0 if self.lo == self.hi == 0 else math.inf
        return max(self.median - self.lo, self.hi - self.median) / abs(self.median) * 100.0


@dataclass(frozen=True)
class Comparison:
    """Old vs new for one metric: delta in percent of old, p-value, verdict."""

    old: Summary
    new: Summary
    delta_pct: float | None
    p: float | None
    verdict: str


def median_ci(values: list[float], confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """The distribution-free confidence interval of the median, or None if n is too small.

    The interval is [x(k), x(n+1-k)] of the sorted sample, with the largest k whose coverage
    1 - 2 * P(Binomial(n, 1/2) <= k-1) is at least ``confidence``: for any continuous
    distribution the true median lies inside with that probability. At 0.95 this needs
    n >= 6 (n = 5 covers only 93.75%), as benchstat reports "need >= 6 samples".
    """
    n = len(values)
    xs = sorted(values)
    best = None
    for k in range(1, n // 2 + 1):
        coverage = 1.0 - 2.0 * float(_sp.binom.cdf(k - 1, n, 0.5))
        if coverage < confidence:
            break
        best = k
    if best is None:
        return None
    return xs[best - 1], xs[n - best]


def summarize(values: list[float], confidence: float = CONFIDENCE) -> Summary:
    """Median and its confidence interval; raises ValueError on an empty sample."""
    if not values:
        raise ValueError("empty sample")
    xs = sorted(float(v) for v in values)
    n = len(xs)
    median = xs[n // 2] if n % 2 else (xs[n // 2 - 1] + xs[n // 2]) / 2.0
    ci = median_ci(xs, confidence)
    lo, hi = ci if ci is not None else (None, None)
    return Summary(n=n, median=median, lo=lo, hi=hi)


def min_pvalue(n: int, m: int) -> float:
    """The smallest two-sided p-value an exact Mann-Whitney U test can give for n vs m.

    It is reached when the samples do not overlap at all: 2 / C(n+m, n). With n = m = 3 it
    is 0.1, with n = m = 4 it is 0.029; hence benchstat's "need >= 4 samples to detect a
    difference at alpha level 0.05".
    """
    if n == 0 or m == 0:
        return 1.0
    return min(1.0, 2.0 / math.comb(n + m, n))


def can_detect(n: int, m: int, alpha: float) -> bool:
    """Whether n vs m samples could ever give p < alpha."""
    return min_pvalue(n, m) < alpha


def min_samples(alpha: float) -> int:
    """The fewest samples per side (equal sides) that can give p < alpha: 4 at 0.05."""
    n = 1
    while not can_detect(n, n, alpha):
        n += 1
    return n


def mann_whitney_p(old: list[float], new: list[float]) -> float:
    """Two-sided Mann-Whitney U p-value (scipy: exact for small samples without ties)."""
    if len(set(old) | set(new)) == 1:  # every value equal: no evidence of a difference
        return 1.0
    return float(_sp.mannwhitneyu(old, new, alternative="two-sided").pvalue)


def compare(
    old: list[float],
    new: list[float],
    better: str = "lower",
    alpha: float = 0.05,
    threshold_pct: float = 5.0,
    confidence: float = CONFIDENCE,
) -> Comparison:
    """The benchstat verdict for one metric.

    ``too few samples`` when a side has fewer than :func:`min_samples` values (as benchstat,
    which asks for that many on each side even where an unbalanced test could reach alpha); ``~``
    when p >= alpha or |delta| < threshold_pct; otherwise ``regressed`` or ``improved``
    according to ``better`` ("lower" for times and latencies, "higher" for rates). The
    delta is (median(new) - median(old)) / |median(old)| in percent, None if old is 0.
    """
    if better not in ("lower", "higher"):
        raise ValueError(f"better must be 'lower' or 'higher', not {better!r}")
    so = summarize(old, confidence) if old else None
    sn = summarize(new, confidence) if new else None
    if so is None or sn is None:
        empty = Summary(0, math.nan, None, None)
        return Comparison(so or empty, sn or empty, None, None, TOO_FEW)
    delta = None if so.median == 0 else (sn.median - so.median) / abs(so.median) * 100.0
    if min(len(old), len(new)) < min_samples(alpha):
        return Comparison(so, sn, delta, None, TOO_FEW)
    p = mann_whitney_p(list(old), list(new))
    if p >= alpha or delta is None or abs(delta) < threshold_pct:
        return Comparison(so, sn, delta, p, SAME)
    worse = delta > 0 if better == "lower" else delta < 0
    return Comparison(so, sn, delta, p, REGRESSED if worse else IMPROVED)


def geomean(values: list[float]) -> float | None:
    """Geometric mean of positive values (None when empty or when any value is <= 0)."""
    if not values or any(v <= 0 for v in values):
        return None
    return float(_sp.gmean(values))
