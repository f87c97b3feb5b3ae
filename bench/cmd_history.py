"""``runner.py history``: one metric across all stored runs, by commit date: table + PNG.

``--kind regress`` reads the regress results: each gives its base and its head, each at
its own commit, so a series of ``make regress`` runs draws instructions per op commit by
commit.
"""

from __future__ import annotations

import argparse
import re
from pathlib import Path

from bench import UsageError, writable_dir
from results import history, regress, store

HELP = "show a metric across the stored runs, ordered by commit date (table and PNG)"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--kind", choices=("micro", "bench", regress.KIND),
                   help="which runs (default: micro, or bench when --strategy or a bench "
                        "metric is given, regress for instructions or cpu/msg)")
    p.add_argument("--metric", metavar="M",
                   help="micro: time/op (default), vs asyncio; "
                        "bench: rate (default), p50, p99, cpu/1k msgs, mem/conn; "
                        "regress: instructions (default), time/op, vs asyncio, cpu/msg")
    p.add_argument("--strategy", metavar="S", help="bench: only this server strategy")
    p.add_argument("--case", metavar="RE", help="only series whose case label matches RE")
    p.add_argument("--out", type=Path, metavar="PNG",
                   help="where to write the plot (default: next to the runs)")


def _kind(args) -> str:
    if args.kind:
        return args.kind
    if args.strategy:
        return "bench"
    for kind in ("micro", "bench", regress.KIND):
        if args.metric and history.ALIASES[kind].get(args.metric, args.metric) in \
                history.METRICS[kind]:
            return kind
    return "micro"


def _runs(kind: str) -> list[dict]:
    if kind == regress.KIND:
        return [side for doc in regress.load_all() for side in regress.side_runs(doc)]
    return [r for r, _ in store.list_runs(kind)]


def run(args) -> int:
    kind = _kind(args)
    if args.strategy and kind != "bench":
        raise UsageError(f"--strategy applies to bench runs only (use --case RE for {kind})")
    try:
        metric = history.resolve_metric(kind, args.metric)
    except ValueError as e:
        raise UsageError(str(e)) from None
    if args.case:
        try:
            re.compile(args.case)
        except re.error as e:
            raise UsageError(f"--case {args.case!r} is not a valid regular expression ({e})") \
                from None
    runs = _runs(kind)
    if not runs:
        raise UsageError(f"no {kind} run in {store.RUNS_DIR} yet (run `runner.py {kind}`)")
    ordered, series = history.collect(runs, kind, metric, args.strategy, args.case)
    if not series:
        what = f" for strategy {args.strategy!r}" if args.strategy else ""
        raise UsageError(f"no {metric!r} values{what} in the {len(runs)} stored {kind} runs")
    title = history.unit_of(kind, metric)
    print(title)
    print(history.table(ordered, series))
    out = args.out or store.RUNS_DIR / f"history-{kind}-{history.slug(metric)}.png"
    if out.suffix.lower() != ".png":
        raise UsageError(f"--out {out}: the plot is a PNG, name it *.png")
    writable_dir(out.parent, f"--out {out}:")
    label = f"{kind} runs" + (f", strategy {args.strategy}" if args.strategy else "")
    try:
        path = history.plot(series, f"{title} — {label}", history.unit_of(kind, metric), out)
    except OSError as e:
        raise UsageError(f"--out {out}: cannot write the plot ({e.strerror or e})") from None
    print(f"plot: {path}")
    return 0
