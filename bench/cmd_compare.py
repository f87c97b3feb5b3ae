"""``runner.py compare OLD NEW``: per-metric verdicts between two runs of the same kind.

Exit status: 1 when any metric regressed (or a bench case that was ok in OLD failed in
NEW), 0 otherwise; 2 on bad input (unknown run, runs of different kinds, bad option).
"""

from __future__ import annotations

import argparse
import os
import sys

from bench import UsageError
from results import compare, store

HELP = "compare two runs (micro or bench) metric by metric; exit 1 on a regression"


def _fraction(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not 0 < v < 1:
        raise argparse.ArgumentTypeError(f"expected 0 < alpha < 1, not {v}")
    return v


def _percent(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a percentage, not {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"expected a percentage >= 0, not {v}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    refs = "a run id (or unique prefix), a path, latest, latest:micro, latest:bench, baseline:NAME"
    p.add_argument("old", help=f"the reference run: {refs}")
    p.add_argument("new", help="the run to judge (same forms; a bare latest means the latest "
                               "run of the other side's kind)")
    p.add_argument("--threshold", type=_percent, default=5.0, metavar="PCT",
                   help="minimum effect in %% of the old median to call a change (default 5)")
    p.add_argument("--alpha", type=_fraction, default=0.05,
                   help="significance level of the Mann-Whitney U test (default 0.05)")
    p.add_argument("--metric", action="append", metavar="M",
                   help="only this metric, repeatable (micro: time/op, vs asyncio; bench: rate, "
                        "p50, p99, cpu/1k msgs, mem/conn; aliases time, ratio, cpu, mem); "
                        "default all. `--metric ratio` judges micro runs by the goruntime/asyncio "
                        "ratio alone, which a change in machine load does not move")
    p.add_argument("--format", choices=("text", "gobench"), default="text",
                   help="text tables, or Go benchmark lines for `benchstat -col run`")


def load(ref: str) -> dict:
    """Load a run by reference; bad references become a one-line UsageError."""
    try:
        run, _ = store.load_run(ref)
    except store.RunFileError as e:
        if ref.startswith("baseline:"):
            name = ref.partition(":")[2] or "NAME"
            raise UsageError(
                f"{e}: save one first with `runner.py baseline save {name} [RUN]`"
            ) from None
        raise UsageError(str(e)) from None
    return run


def run(args) -> int:
    # A bare "latest" means the latest run of the other side's kind, so that
    # `compare baseline:micro latest` still works after a bench run was taken since.
    if args.old == "latest" and args.new != "latest":
        new = load(args.new)
        old = load(f"latest:{new['kind']}")
    else:
        old = load(args.old)
        new = load(f"latest:{old['kind']}" if args.new == "latest" else args.new)
    try:
        report = compare.compare_runs(old, new, alpha=args.alpha, threshold=args.threshold,
                                      metrics=args.metric)
    except compare.CompareError as e:
        raise UsageError(str(e)) from None
    if args.format == "gobench":
        text = compare.render_gobench(report)
    else:
        text = compare.render_text(report, args.alpha, args.threshold)
    try:
        print(text, flush=True)
    except BrokenPipeError:  # `compare ... | head`: the reader left; not an error of ours
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
    return 1 if report.regressions else 0
