"""Bench run → PNG plots (matplotlib, headless Agg backend).

One line per strategy (and per load family — mode, connection mode, size — when a run
holds more than one), one point per connection count at the median of the ok repeats.
Every plot file is always written; a plot without data says so in its body, so a report
never points at a missing image.
"""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from hdrh.histogram import HdrHistogram  # noqa: E402

from results.report import aggregate, groups  # noqa: E402

PLOTS = {
    "throughput.png": "Achieved throughput vs connections",
    "p99.png": "p99 latency (corrected) vs connections",
    "mem_per_conn.png": "Server memory per connection",
    "rss_threads.png": "Server RSS and threads/processes vs connections",
    "spectrum.png": "Latency percentile spectrum at the largest connection count",
}
CAPACITY_PLOT = ("capacity.png", "Corrected p99 vs offered rate: the knee of each server")
SPECTRUM = [50, 75, 90, 95, 99, 99.5, 99.9, 99.95, 99.99, 99.999]


def _series(run: dict) -> dict[str, list[tuple[int, dict]]]:
    """``{label: [(connections, aggregate), ...]}`` for every strategy × load family."""
    by: dict[tuple, list[tuple[int, dict]]] = defaultdict(list)
    for gk, cases in groups(run):
        by[(gk.strategy, (gk.mode, gk.conn_mode, gk.size))].append(
            (gk.connections, aggregate(cases)))
    # Lines across connection counts: families measured at one count only (the closed-loop
    # case at 100 connections, say) are left to the tables unless nothing else exists.
    multi = {k: v for k, v in by.items() if len({n for n, _ in v}) > 1}
    by = multi or by
    families = {f for _, f in by}
    out = {}
    for (strategy, family), pts in by.items():
        label = strategy
        if len(families) > 1:
            mode, conn_mode, size = family
            label += f" ({mode}" + ("" if conn_mode == "persistent" else ", per-msg") + (
                "" if size == 64 else f", {size}B") + ")"
        out[label] = sorted(pts, key=lambda p: p[0])
    return out


STARVED_MARK = 0.01  # a point whose server starved more than this share of connections


def _line(ax, series, field, scale=1.0, mark_starved=False) -> bool:
    """One line per label; with ``mark_starved``, points where the server left more than
    ``STARVED_MARK`` of its connections without an echo are hollow and labelled: their
    latency describes only the connections it served (an iterative server's one), and
    would otherwise read as the best in the plot."""
    drawn = False
    for i, (label, pts) in enumerate(series.items()):
        xy = [(n, a[field] / scale, a) for n, a in pts if a[field] is not None]
        if not xy:
            continue
        color = f"C{i % 10}"
        ax.plot([n for n, _, _ in xy], [y for _, y, _ in xy], marker="o", label=label,
                color=color)
        drawn = True
        if not mark_starved:
            continue
        for n, y, a in xy:
            share = (a["starved"] or 0) / n
            if share > STARVED_MARK:
                ax.plot([n], [y], marker="o", color="white", markeredgecolor=color, zorder=3)
                ax.annotate(f"{share:.0%} starved", (n, y), textcoords="offset points",
                            xytext=(4, -10), fontsize=7, color=color)
    return drawn


def _finish(fig, ax, drawn: bool, path: Path, xlabel: str, ylabel: str, logy=False) -> None:
    if drawn:
        ax.set_xscale("log")
        if logy:
            ax.set_yscale("log")
        ax.set_xlabel(xlabel)
        ax.set_ylabel(ylabel)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    else:
        ax.text(0.5, 0.5, "no ok case to plot", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def _spectrum(run: dict, ax) -> bool:
    ok = [c for c in run["cases"] if c["verdict"]["kind"] != "failed" and c["loadgen"]]
    if not ok:
        return False
    largest = max(c["key"]["connections"] for c in ok)
    drawn = False
    seen = set()
    for c in ok:
        k = c["key"]
        label = k["strategy"] + ("" if k["mode"] == "open" else f" ({k['mode']})")
        if k["connections"] != largest or label in seen:
            continue
        seen.add(label)
        lat = c["loadgen"]["latency_us"]["corrected"]
        try:
            h = HdrHistogram.decode(c["loadgen"]["histograms"]["corrected"])
            ys = [h.get_value_at_percentile(p) / 1000 for p in SPECTRUM]
        except Exception:  # an undecodable histogram: fall back to the stored percentiles
            ys = None
        xs = [1 / (1 - p / 100) for p in SPECTRUM]
        if ys is None:
            pairs = [(50, "p50"), (90, "p90"), (99, "p99"), (99.9, "p99.9"), (99.99, "p99.99")]
            xs = [1 / (1 - p / 100) for p, _ in pairs]
            ys = [lat[name] / 1000 for _, name in pairs]
        ax.plot(xs, ys, marker=".", label=label)
        drawn = True
    if drawn:
        ax.set_xscale("log")
        ax.set_yscale("log")
        ticks = [2, 10, 100, 1000, 10000, 100000]
        ax.set_xticks(ticks, ["50%", "90%", "99%", "99.9%", "99.99%", "99.999%"])
        ax.set_xlabel("percentile")
        ax.set_ylabel("latency (ms, corrected)")
        ax.set_title(f"{largest:,} connections")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    return drawn


def capacity_plot(run: dict, path: Path) -> None:
    """One panel per connection count: corrected p99 (log) vs offered rate (log) per
    strategy, every step of the search; the knee ringed; loadgen-bound steps hollow;
    failed steps as crosses at the top; the SLO's p99 as a dashed line."""
    searches = run["capacity"]
    conns = sorted({k["connections"] for k in searches})
    fig, axes = plt.subplots(1, len(conns), figsize=(6 * len(conns), 4.5), squeeze=False)
    slo_ms = run["config"].get("slo_p99_ms", 10.0)
    order = list(dict.fromkeys(k["strategy"] for k in searches))
    for ax, n in zip(axes[0], conns, strict=True):
        top = max([s["p99_ms"] or 0 for k in searches for s in k["steps"]] + [slo_ms]) * 2
        for k in (k for k in searches if k["connections"] == n):
            color = f"C{order.index(k['strategy']) % 10}"
            steps = sorted(k["steps"], key=lambda s: s["rate"])
            pts = [(s["rate"], s["p99_ms"]) for s in steps if s["p99_ms"] is not None]
            if pts:
                ax.plot(*zip(*pts, strict=True), color=color, label=k["strategy"], zorder=2)
            for s in steps:
                if s["p99_ms"] is None:
                    ax.plot([s["rate"]], [top], marker="x", color=color, zorder=3)
                    continue
                hollow = s["verdict"] == "loadgen-bound"
                ax.plot([s["rate"]], [s["p99_ms"]], marker="o", zorder=3, color=color,
                        markerfacecolor="white" if hollow else color)
            if k["knee"] is not None:
                knee = next((s for s in steps if s["rate"] == k["knee"]), None)
                if knee and knee["p99_ms"] is not None:
                    ax.plot([knee["rate"]], [knee["p99_ms"]], marker="o", markersize=14,
                            markerfacecolor="none", markeredgecolor=color, zorder=4)
                    ax.annotate(f"knee {knee['rate']:,.0f}" + (
                        " (≥, loadgen)" if k["bound"] == "loadgen" else ""),
                        (knee["rate"], knee["p99_ms"]), textcoords="offset points",
                        xytext=(6, 8), fontsize=7, color=color)
        ax.axhline(slo_ms, color="grey", linestyle="--", linewidth=0.8,
                   label=f"SLO p99 {slo_ms:g} ms")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("offered rate (msg/s)")
        ax.set_ylabel("p99 latency, corrected (ms)")
        ax.set_title(f"{n:,} connections (hollow: loadgen-bound; x: failed)")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(CAPACITY_PLOT[1])
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)


def write_plots(run: dict, out_dir: Path) -> list[Path]:
    """Write every plot of :data:`PLOTS` (and, for a capacity run, the capacity plot) into
    ``out_dir``; return their paths in order."""
    out_dir.mkdir(parents=True, exist_ok=True)
    series = _series(run)
    paths = []
    if run.get("capacity"):
        capacity_plot(run, p := out_dir / CAPACITY_PLOT[0])
        paths.append(p)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = _line(ax, series, "rate")
    ax.set_title(PLOTS["throughput.png"])
    _finish(fig, ax, drawn, p := out_dir / "throughput.png", "connections", "msg/s")
    paths.append(p)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = _line(ax, series, "p99_corrected", mark_starved=True)
    ax.set_title(PLOTS["p99.png"])
    _finish(fig, ax, drawn, p := out_dir / "p99.png", "connections", "p99 latency (ms)", True)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = _line(ax, series, "mem_conn", 1024)
    ax.set_title(PLOTS["mem_per_conn.png"] + " ((load - idle) / N; PSS for fork)")
    if drawn:  # from ~0 (iterative holds one connection) to ~1 MiB (fork): log, 0 allowed
        ax.set_yscale("symlog", linthresh=1.0)
    _finish(fig, ax, drawn, p := out_dir / "mem_per_conn.png", "connections", "KiB / connection")
    paths.append(p)

    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(11, 4.5))
    drawn = _line(ax1, series, "rss", 1 << 20)
    ax1.set_title("server RSS under load")
    if drawn:
        ax1.set_yscale("log")
        ax1.set_ylabel("MiB")
    for i, (label, pts) in enumerate(series.items()):
        color = f"C{i % 10}"
        for field, style in (("threads", "-"), ("procs", "--")):
            xy = [(n, a[field]) for n, a in pts if a[field] is not None]
            if xy and max(y for _, y in xy) > 1:  # a line at 1 says nothing
                ax2.plot(*zip(*xy, strict=True), marker="o", linestyle=style, color=color,
                         label=f"{label} {field}")
    ax2.axhline(1, color="grey", linewidth=0.8, label="1 (single-threaded)")
    ax2.set_title("peak threads / processes")
    if drawn:
        ax2.set_xscale("log")
        ax2.set_yscale("log")
        ax2.set_xlabel("connections")
        ax2.legend(fontsize=6)
        ax2.grid(True, which="both", alpha=0.3)
    _finish(fig, ax1, drawn, p := out_dir / "rss_threads.png", "connections", "MiB", True)
    paths.append(p)

    fig, ax = plt.subplots(figsize=(7, 4.5))
    drawn = _spectrum(run, ax)
    if not drawn:
        ax.set_title(PLOTS["spectrum.png"])
    _finish_spectrum(fig, ax, drawn, p := out_dir / "spectrum.png")
    paths.append(p)
    return paths


def _finish_spectrum(fig, ax, drawn: bool, path: Path) -> None:
    if not drawn:
        ax.text(0.5, 0.5, "no ok case to plot", ha="center", va="center",
                transform=ax.transAxes)
    fig.tight_layout()
    fig.savefig(path, dpi=100)
    plt.close(fig)
