"""Verdicts on instruction counts: a change beyond a threshold, unless the counts disagree.

An instruction count of the same code, measured the same way on the same machine, repeats
to a few parts per million at procs 1, where wall-clock time moves by tens of percent with
the load, so a count needs no significance test; at procs 2 some counts move by a few
percent (two Ms race), and their repeats say by how much. Old and new are the counts of
each side (one or a few repeats, per operation). The delta is
(median(new) - median(old)) / median(old) in percent, the spread the larger
(max - min) / median of the two sides, and the verdict is:

* ``~`` when |delta| is below the threshold;
* ``regressed`` (more instructions) or ``improved`` (fewer) beyond it, when the sides'
  ranges are apart (every new count above every old one, or below) and |delta| is more
  than :data:`SPREAD_FACTOR` times the spread;
* ``noisy`` beyond it otherwise: the repeats of one side differ by about as much as the
  change, so the counts cannot decide. It is no regression, and it is shown.

A single count per side is a point: beyond the threshold it gets a verdict at once, and
:func:`needs_confirmation` tells the caller to count both sides again before trusting it.
"""

from __future__ import annotations

import statistics
from dataclasses import dataclass

from results.stats import IMPROVED, REGRESSED, SAME

NOISY = "noisy"
DEFAULT_THRESHOLD_PCT = 1.0
SPREAD_FACTOR = 2.0


@dataclass(frozen=True)
class CountComparison:
    """Old vs new counts of one metric: medians, delta and spread in percent, verdict.

    ``spread_pct`` is the larger (max - min) / median of the two sides: 0 with one count
    per side.
    """

    old: float
    new: float
    delta_pct: float
    spread_pct: float
    verdict: str


def _spread_pct(xs: list[float]) -> float:
    return (max(xs) - min(xs)) / statistics.median(xs) * 100.0


def compare_counts(
    old: list[float], new: list[float], threshold_pct: float = DEFAULT_THRESHOLD_PCT
) -> CountComparison:
    """The verdict on two sides' counts (fewer is better), as the module docstring says.

    Preconditions: both sides non-empty, every count > 0, ``threshold_pct`` >= 0;
    ValueError otherwise.
    """
    if not old or not new:
        raise ValueError("compare_counts needs at least one count per side")
    if min(min(old), min(new)) <= 0:
        raise ValueError("instruction counts must be positive")
    if threshold_pct < 0:
        raise ValueError(f"threshold must be >= 0, not {threshold_pct}")
    mo, mn = statistics.median(old), statistics.median(new)
    delta = (mn - mo) / mo * 100.0
    spread = max(_spread_pct(old), _spread_pct(new))
    if delta == 0 or abs(delta) < threshold_pct:
        verdict = SAME
    elif abs(delta) <= SPREAD_FACTOR * spread:
        verdict = NOISY
    elif delta > 0:
        verdict = REGRESSED if min(new) > max(old) else NOISY
    else:
        verdict = IMPROVED if max(new) < min(old) else NOISY
    return CountComparison(mo, mn, delta, spread, verdict)


def needs_confirmation(c: CountComparison, n_old: int, n_new: int) -> bool:
    """Whether a verdict rests on a single count of a side and should be counted again."""
    return c.verdict in (REGRESSED, IMPROVED) and min(n_old, n_new) < 2
