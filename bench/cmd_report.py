"""``runner.py report``: a bench run's tables on stdout, plots and report.md beside it."""

from __future__ import annotations

import argparse
from pathlib import Path

from bench import UsageError, writable_dir
from results import store
from results.plots import write_plots
from results.report import header, tables
from results.report_md import write_report_md

HELP = "print a bench run's tables and write its plots and report.md (default: latest)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", nargs="?", default="latest:bench",
                   help="run id, path, 'latest' or 'baseline:NAME' (default: latest bench)")
    p.add_argument("--out", help="directory for plots and report.md (default: beside the run)")
    p.add_argument("--no-plots", action="store_true", help="tables only")


def report_dir(run_path: Path) -> Path:
    """Where a run's plots go: ``<runs dir>/<run id>/`` next to ``<run id>.json``."""
    return run_path.with_suffix("")


def render(run: dict, path: Path, out: Path | None = None, plots: bool = True) -> None:
    """Print the tables; write the plots and report.md; print where they are."""
    print("\n".join(header(run)))
    for title, text in tables(run).items():
        print(f"\n{title}\n{text}")
    if plots:
        out_dir = out or report_dir(path)
        pngs = write_plots(run, out_dir)
        md = write_report_md(run, path, out_dir, pngs)
        print(f"\nplots: {', '.join(p.name for p in pngs)} in {out_dir}/\nreport: {md}")


def run(args) -> int:
    try:
        run_doc, path = store.load_run(args.run)
    except store.RunFileError as e:
        raise UsageError(str(e)) from None
    if run_doc["kind"] != "bench":
        raise UsageError(f"{path} is a {run_doc['kind']} run; report shows bench runs "
                         "(use runner.py history/compare for micro runs)")
    out = Path(args.out) if args.out else None
    if out is not None:
        writable_dir(out, "--out")
    try:
        render(run_doc, path, out, plots=not args.no_plots)
    except OSError as e:
        raise UsageError(f"cannot write the plots or report.md ({e.strerror or e}: "
                         f"{e.filename})") from None
    return 0
