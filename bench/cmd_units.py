"""``runner.py units``: what one goroutine, task, greenlet, thread and process cost here.

Every (unit, figure) of ``create``, ``switch`` and ``memory`` is measured in ``--processes``
fresh worker processes (``python -m bench.units``, see there for what each figure is), each
giving ``--values`` timed values after ``--warmups`` (one memory value per process).
Processes are interleaved round-robin over units and figures, as ``runner.py micro`` does,
so a burst of load lands on one value of many figures. ``hold`` (the most units the
:class:`bench.units.Budget` lets one process park) runs once per unit, after the rest.

The run (``kind: "units"``, see ``results/units.py``) is saved after every worker, so
Ctrl-C keeps what finished; then the why table is printed (with ``--bench RUN``, beside each
unit the memory per connection of the bench strategy made of it) and the plot written to
``<runs dir>/<run id>/units.png``. ``--show RUN`` prints the table and redraws the plot of a
stored units run, measuring nothing. Exit 1 if a selected figure of a unit got no value.

Go itself (real goroutines and threads) is measured only where ``go`` is installed; the run
records why it was skipped otherwise.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import sys
import time
from dataclasses import asdict
from pathlib import Path

from bench import UsageError, worker
from bench.cmd_micro import _nonneg, _positive, _seconds
from bench.units import FIGURES, GIB, UNITS, Budget, default_tasks, over_budget
from results import store
from results import units as report

HELP = "measure what one goroutine, task, greenlet, thread and process cost on this machine"

WORKER_TIMEOUT_S = 300.0  # a memory figure of 10,000 threads takes ~15 s on a loaded machine
HOLD_SLACK_S = 120.0  # a hold worker may outlive its time budget by releasing and reaping


def _names(choices: tuple[str, ...] | list[str], what: str):
    def parse(text: str) -> list[str]:
        names = [x.strip() for x in text.split(",") if x.strip()]
        bad = [n for n in names if n not in choices]
        if not names or bad:
            raise argparse.ArgumentTypeError(
                f"{what} wants a list of {', '.join(choices)}, not {text!r}")
        return [n for n in choices if n in names]

    return parse


def _amount(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, not {text!r}") from None
    if not v > 0:
        raise argparse.ArgumentTypeError(f"expected a number > 0, not {v}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--units", type=_names(list(UNITS), "--units"), default=list(UNITS),
                   help=f"units to measure (default all: {','.join(UNITS)})")
    p.add_argument("--figures", type=_names(FIGURES, "--figures"), default=list(FIGURES),
                   help=f"figures to measure (default all: {','.join(FIGURES)})")
    p.add_argument("--processes", type=_positive, default=3,
                   help="fresh processes per unit and figure (default 3)")
    p.add_argument("--values", type=_positive, default=3,
                   help="timed values per process (default 3)")
    p.add_argument("--warmups", type=_nonneg, default=1,
                   help="discarded timed values per process (default 1)")
    p.add_argument("--min-time", type=_seconds, default=0.1,
                   help="calibrate n so one timed value takes at least this long (0.1 s)")
    p.add_argument("--n", type=_positive,
                   help="units (round trips for switch) per value, for every figure but hold "
                        "(default: calibrated; memory: 10,000, processes 1,000)")
    p.add_argument("--budget-gib", type=_amount, default=Budget.bytes / GIB,
                   help="hold: memory one unit kind may grow by (default 2 GiB)")
    p.add_argument("--budget-s", type=_amount, default=Budget.seconds,
                   help="hold: seconds one unit kind may grow for (default 60)")
    p.add_argument("--budget-tasks", type=_positive,
                   help="hold: threads or processes (default 10,000, or half the kernel's "
                        "free tasks if fewer)")
    p.add_argument("--floor-gib", type=float, default=Budget.floor / GIB,
                   help="hold: stop when the machine has less available (default 4 GiB)")
    p.add_argument("--bench", metavar="RUN",
                   help="a bench run whose memory per connection goes beside the units'")
    p.add_argument("--show", metavar="RUN",
                   help="print the table and plot of a stored units run; measure nothing")
    p.add_argument("--markdown", action="store_true", help="print the table as Markdown")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help=f"directory for the run file (default {store.RUNS_DIR})")


def _budget(args) -> Budget:
    if args.floor_gib < 0:
        raise UsageError(f"--floor-gib must be >= 0, not {args.floor_gib}")
    return Budget(int(args.budget_gib * GIB), args.budget_s, args.budget_tasks or default_tasks(),
                  int(args.floor_gib * GIB))


def _worker_cmd(unit: str, figure: str, args, budget: Budget) -> list[str]:
    cmd = [sys.executable, "-m", "bench.units", unit, figure]
    if figure == "hold":
        return cmd + ["--budget-bytes", str(budget.bytes), "--budget-s", str(budget.seconds),
                      "--budget-tasks", str(budget.tasks), "--floor-bytes", str(budget.floor)]
    cmd += ["--values", str(args.values), "--warmups", str(args.warmups),
            "--min-time", str(args.min_time)]
    return cmd + (["--n", str(args.n)] if args.n else [])


def _new_case(name: str) -> dict:
    unit = UNITS[name]
    return {"unit": name, "label": unit.label, "strategy": unit.strategy,
            "create": {"n": None, "values": [], "cpu_values": []},
            "switch": {"n": None, "values": [], "cpu_values": [], "kernel_switches": []},
            "memory": {"metric": unit.metric, "n": None, "values": [], "kernel_values": []},
            "hold": None, "errors": []}


def _record(case: dict, figure: str, res: dict) -> str:
    """Add a worker's result to its case; the one-line progress text for it."""
    if figure == "hold":
        case["hold"] = {k: res[k] for k in ("held", "stop", "seconds", "bytes", "left",
                                            "budget")}
        if res["left"]:
            case["errors"].append(f"hold: {res['left']} threads or processes left alive")
        return f" {res['held']:,} ({res['stop']['detail']}, {res['seconds']:.1f} s)"
    fig = case[figure]
    fig["n"] = res["n"]
    if figure == "memory":
        fig["values"].append(res["bytes"])
        fig["kernel_values"].append(res["kernel_bytes"])
        return f" {report.fmt_bytes(res['bytes'])} per unit (n={res['n']:,})"
    fig["values"] += res["values"]
    fig["cpu_values"] += res["cpu_values"]
    if figure == "switch":
        fig["kernel_switches"] += res["kernel_switches"]
    return (f" {report.fmt_us(statistics.median(res['values']))} µs, CPU "
            f"{report.fmt_us(statistics.median(res['cpu_values']))} µs (n={res['n']:,})")


def _go_status() -> str:
    go = shutil.which("go")
    if go is None:
        return "skipped: `go` is not installed (not on PATH)"
    return f"skipped: {go} found, but this version measures no Go program"


def _bench_memory(ref: str | None) -> dict | None:
    if ref is None:
        return None
    try:
        bench_run, _ = store.load_run(ref)
    except store.RunFileError as e:
        raise UsageError(f"--bench: {e}") from None
    if bench_run["kind"] != "bench":
        raise UsageError(f"--bench {ref}: a {bench_run['kind']} run, not a bench run")
    return report.bench_memory(bench_run)


def _show(run: dict, bench: dict | None, out_dir: Path, markdown: bool) -> Path:
    print(report.why_table(run, bench, "github" if markdown else "simple"))
    path = report.plot(run, out_dir / run["id"] / "units.png", bench)
    print(f"plot: {path}")
    return path


def run(args) -> int:
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is not a directory")
    bench = _bench_memory(args.bench)
    out_dir = args.out or store.RUNS_DIR
    if args.show:
        try:
            shown, path = report.load(args.show)
        except store.RunFileError as e:
            raise UsageError(f"--show: {e}") from None
        _show(shown, bench, path.parent, args.markdown)
        return 0
    budget = _budget(args)
    for name in args.units:
        for figure in args.figures:
            if why := over_budget(name, figure, args.n, budget):
                raise UsageError(f"--n: {why}")
    config = {"units": args.units, "figures": args.figures, "processes": args.processes,
              "values": args.values, "warmups": args.warmups, "min_time": args.min_time,
              "n": args.n, "budget": asdict(budget), "bench": args.bench,
              "go": _go_status()}
    doc = report.new_run(config)
    cases = {name: _new_case(name) for name in args.units}
    doc["cases"] = list(cases.values())
    rounds = [f for f in args.figures if f != "hold"]
    jobs = [(r, u, f) for r in range(args.processes) for u in args.units for f in rounds]
    jobs += [(0, u, "hold") for u in args.units if "hold" in args.figures]
    print(f"units: {', '.join(args.units)} × {', '.join(args.figures)} -> {doc['id']}"
          f" (Go: {config['go']})", file=sys.stderr)
    t0 = time.monotonic()
    for i, (rnd, name, figure) in enumerate(jobs, 1):
        case = cases[name]
        procs = 1 if figure == "hold" else args.processes
        print(f"[{i}/{len(jobs)}] {name} {figure} process {rnd + 1}/{procs} ...", end="",
              file=sys.stderr, flush=True)
        timeout = budget.seconds + HOLD_SLACK_S if figure == "hold" else WORKER_TIMEOUT_S
        try:
            res = worker.run_json(_worker_cmd(name, figure, args, budget), timeout)
        except RuntimeError as e:
            case["errors"].append(f"{figure}: {e}")
            print(f" FAILED: {e}", file=sys.stderr)
        else:
            print(_record(case, figure, res), file=sys.stderr)
        report.save(doc, args.out)
    missing = [f"{c['unit']} {f}" for c in cases.values() for f in args.figures
               if (c["hold"] is None if f == "hold" else not c[f]["values"])]
    doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    doc["summary"] = {"missing": missing, "duration_s": round(time.monotonic() - t0, 1)}
    path = report.save(doc, args.out)
    _show(doc, bench, out_dir, args.markdown)
    print(f"saved {path} ({doc['summary']['duration_s']:.0f} s)")
    if missing:
        print(f"error: no value for: {', '.join(missing)}", file=sys.stderr)
        return 1
    return 0
