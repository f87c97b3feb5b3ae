"""results.plots: what each PNG draws, read back from its pixels.

Three strategies whose figures put them in a different order on each plot, none the
legend's (so neither a legend alone nor a plot of the wrong field can pass): each series'
colour must cover a line's worth of pixels, and across the columns where two series are
both drawn, the one with the larger figure must lie above.
"""

from __future__ import annotations

import matplotlib.image
import numpy as np
import pytest
from matplotlib.colors import to_rgb

from results import store
from results.plots import write_plots
from tests.results.bench_cases import bench_run, case

KiB, MiB = 1 << 10, 1 << 20
# strategy: (msg/s, p50 µs, RSS bytes per connection; fork's is measured by PSS, half).
FIGURES = {"thread": (200, 4000, 16 * KiB), "fork": (300, 1000, 48 * KiB),
           "asyncio": (100, 2000, 32 * KiB)}
COLOUR = {s: to_rgb(f"C{i}") for i, s in enumerate(FIGURES)}  # matplotlib's cycle, in order
TOP_DOWN = {  # each plot's series from the highest down
    "throughput.png": ["fork", "thread", "asyncio"],
    "p99.png": ["thread", "asyncio", "fork"],
    "spectrum.png": ["thread", "asyncio", "fork"],
    "mem_per_conn.png": ["asyncio", "fork", "thread"],  # 32 > 48 / 2 > 16 KiB
    "rss_threads.png": ["fork", "asyncio", "thread"],  # left half: RSS
}
LINE_PIXELS = 300  # a line across the axes; a legend entry alone has far fewer


@pytest.fixture(scope="module")
def pngs(tmp_path_factory):
    """{file name: RGB array} of the plots of one run."""
    cases = [case(s, n, achieved=rate, p50_us=p50, rss_load=10 * MiB + per_conn * n)
             for s, (rate, p50, per_conn) in FIGURES.items() for n in (100, 1000, 10000)]
    for c in cases:  # fork's processes stay below thread's threads (n + 1): lines apart
        if c["key"]["strategy"] == "fork":
            c["server"]["peak"]["procs"] = c["key"]["connections"] // 10 + 1
    run = bench_run(cases, list(FIGURES))
    store.validate(run)
    paths = write_plots(run, tmp_path_factory.mktemp("plots"))
    return {p.name: matplotlib.image.imread(p)[:, :, :3] for p in paths}


def _mask(img: np.ndarray, strategy: str) -> np.ndarray:
    """Pixels of exactly the strategy's colour (antialiased edges blend with white)."""
    return np.abs(img - COLOUR[strategy]).max(axis=2) < 0.02


def _above(upper: np.ndarray, lower: np.ndarray) -> float:
    """Share of the columns holding both series where ``upper`` is higher in the image."""
    rows = np.arange(upper.shape[0])[:, None]
    both = upper.any(axis=0) & lower.any(axis=0)
    assert both.sum() > 100, "the two series share too few columns to compare"

    def mean_row(m):
        return (rows * m).sum(axis=0)[both] / m.sum(axis=0)[both]

    return float((mean_row(upper) < mean_row(lower)).mean())


def _check_order(img: np.ndarray, top_down: list[str]) -> None:
    masks = {s: _mask(img, s) for s in FIGURES}
    for s, m in masks.items():
        assert m.sum() > LINE_PIXELS, f"{s}: {m.sum()} pixels of its colour"
    for upper, lower in zip(top_down, top_down[1:], strict=False):
        assert _above(masks[upper], masks[lower]) > 0.8, f"{upper} not above {lower}"


@pytest.mark.parametrize("name", ["throughput.png", "p99.png", "mem_per_conn.png",
                                  "spectrum.png"])
def test_each_strategy_is_a_line_in_the_order_of_its_figures(pngs, name):
    _check_order(pngs[name], TOP_DOWN[name])


def test_rss_by_strategy_left_and_only_real_thread_or_process_counts_right(pngs):
    img = pngs["rss_threads.png"]
    half = img.shape[1] // 2
    _check_order(img[:, :half], TOP_DOWN["rss_threads.png"])
    right = {s: _mask(img[:, half:], s) for s in FIGURES}
    # thread's threads and fork's processes grow with N; asyncio stays at 1: no line.
    assert right["thread"].sum() > LINE_PIXELS and right["fork"].sum() > LINE_PIXELS
    assert _above(right["thread"], right["fork"]) > 0.8
    assert right["asyncio"].sum() == 0


def test_a_run_without_ok_case_draws_no_series(tmp_path):
    run = bench_run([case(s, 100, status="failed: server exited (code 1)") for s in FIGURES],
                    list(FIGURES))
    for p in write_plots(run, tmp_path):
        img = matplotlib.image.imread(p)[:, :, :3]
        assert all(_mask(img, s).sum() == 0 for s in FIGURES), p.name
