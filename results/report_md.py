"""Bench run → ``report.md``: the header, every table and every plot on one page."""

from __future__ import annotations

from pathlib import Path

from results.plots import CAPACITY_PLOT, PLOTS
from results.report import header, tables


def write_report_md(run: dict, run_path: Path, out_dir: Path, plots: list[Path]) -> Path:
    """Write ``out_dir/report.md`` (plots linked by file name, so the folder can move)."""
    lines = [f"# c10k-bench run {run['id']}", ""]
    lines += [f"- {line}" for line in header(run)]
    lines += [f"- run file: `{run_path}`", ""]
    for title, text in tables(run, fmt="github").items():
        lines += [f"## {title}", "", text, ""]
    lines += ["## Plots", ""]
    for p in plots:
        title = dict([CAPACITY_PLOT], **PLOTS).get(p.name, p.stem)
        lines += [f"### {title}", "", f"![{p.stem}]({p.name})", ""]
    path = out_dir / "report.md"
    path.write_text("\n".join(lines))
    return path
