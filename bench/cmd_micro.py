"""``runner.py micro``: the runtime's micro-benchmarks in fresh processes, saved as a run.

Every (benchmark, procs) is measured in ``--processes`` fresh worker processes
(``bench/micro_worker.py``), each giving ``--values`` values after ``--warmups``
warm-ups, with the asyncio counterpart measured alternately in the same process.
Processes are interleaved round-robin over the benchmarks (round 1 of every benchmark,
then round 2, ...) so that a burst of load on the machine lands on one value of many
benchmarks rather than on every value of one. The first round calibrates the loop
counts (a value takes >= ``--min-time``); later rounds reuse them, as pyperf does.

The run is saved after every worker, so Ctrl-C keeps what finished. A failed worker
is recorded in its case's ``errors`` and costs only its own values; the command exits 1
only when a benchmark produced no value at all. The defaults
(procs 1,2 × 3 processes × 3 values, 1 warm-up, 100 ms values) give 9 values per side
per case, enough for a 95% median interval and a Mann-Whitney test, in a few minutes.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from tabulate import tabulate

from bench import UsageError, side, worker
from results import stats, store
from results.compare import fmt_value

HELP = "run the goroutine runtime's micro-benchmarks in fresh processes and save a micro run"

WORKER_TIMEOUT_S = 180.0


def _procs_list(text: str) -> list[int]:
    try:
        procs = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"--procs wants a list like 1,2, not {text!r}") from None
    if not procs or any(p < 1 for p in procs):
        raise argparse.ArgumentTypeError(f"--procs wants positive integers, not {text!r}")
    return sorted(set(procs))


def _positive(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {text!r}") from None
    if v < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, not {v}")
    return v


def _nonneg(text: str) -> int:
    if text.isdigit():
        return int(text)
    raise argparse.ArgumentTypeError(f"expected an integer >= 0, not {text!r}")


def _seconds(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected seconds, not {text!r}") from None
    if not 0 < v <= 60:
        raise argparse.ArgumentTypeError(f"expected 0 < seconds <= 60, not {v}")
    return v


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--procs", type=_procs_list, default=[1, 2],
                   help="GOMAXPROCS values to run each benchmark with (default 1,2)")
    p.add_argument("--filter", metavar="RE", help="only benchmarks whose name matches RE")
    p.add_argument("--processes", type=_positive, default=3,
                   help="fresh processes per benchmark and procs (default 3)")
    p.add_argument("--values", type=_positive, default=3,
                   help="measured values per process (default 3)")
    p.add_argument("--warmups", type=_nonneg, default=1,
                   help="discarded warm-up values per process (default 1)")
    p.add_argument("--min-time", type=_seconds, default=0.1,
                   help="calibrate loops so one value takes at least this long (default 0.1 s)")
    p.add_argument("--loops", type=_positive,
                   help="fixed loop count for every value (skips calibration)")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help=f"directory for the run file (default {store.RUNS_DIR})")


def select_benchmarks(pattern: str | None) -> list[str]:
    """The names of the benchmarks ``pattern`` matches (all for None); UsageError if none."""
    try:
        from goruntime.micro import BENCHMARKS
    except ImportError as e:
        raise UsageError(f"cannot load the micro-benchmarks (goruntime.micro: {e})") from None

    names = list(BENCHMARKS)
    if pattern is None:
        return names
    try:
        rx = re.compile(pattern)
    except re.error as e:
        raise UsageError(f"--filter {pattern!r} is not a valid regular expression ({e})") from None
    chosen = [n for n in names if rx.search(n)]
    if not chosen:
        raise UsageError(f"--filter {pattern!r} matches no benchmark (have: {', '.join(names)})")
    return chosen


@dataclass(frozen=True)
class Sampling:
    """How a micro worker samples: ``values`` timed values after ``warmups`` untimed ones,
    each at least ``min_time`` seconds long."""

    values: int
    warmups: int
    min_time: float


def run_worker(name: str, procs: int, sampling: Sampling, loops: int | None,
               aloops: int | None, root: Path | None = None) -> dict:
    """Run one worker process; its result dict, or RuntimeError with a one-line reason.

    With ``root``, the worker measures the runtime of the tree at ``root``
    (:mod:`bench.side`), else this tree's.
    """
    wargs = [name, "--procs", str(procs), "--values", str(sampling.values), "--warmups",
             str(sampling.warmups), "--min-time", str(sampling.min_time)]
    if root is None:
        cmd = [sys.executable, "-m", "bench.micro_worker", *wargs]
    else:
        cmd = side.argv_for(root, "bench.micro_worker", *wargs)
    if loops:
        cmd += ["--loops", str(loops)]
    if aloops:
        cmd += ["--asyncio-loops", str(aloops)]
    return worker.run_json(cmd, WORKER_TIMEOUT_S)


def _ratio_median(case: dict) -> float | None:
    av = case["asyncio_values"]
    if not av or len(av) != len(case["values"]):
        return None
    return statistics.median(g / a for g, a in zip(case["values"], av, strict=True) if a > 0)


def _table(run: dict) -> str:
    rows = []
    for c in run["cases"]:
        if not c["values"]:
            rows.append([c["name"], c["procs"], "", "failed: " + c["errors"][-1], "", "", 0])
            continue
        s = stats.summarize(c["values"])
        sp = s.spread_pct
        go = f"{fmt_value(s.median)} ± {'∞' if sp is None else f'{sp:.0f}%'}"
        aio = fmt_value(statistics.median(c["asyncio_values"])) if c["asyncio_values"] else "—"
        ratio = "—" if c["ratio_median"] is None else f"{c['ratio_median']:.2f}×"
        n = f"{s.n} ({len(c['errors'])} failed)" if c["errors"] else s.n
        rows.append([c["name"], c["procs"], c["loops"], go, aio, ratio, n])
    return tabulate(rows, headers=["benchmark", "procs", "loops", "goruntime µs/op",
                                   "asyncio µs/op", "ratio", "n"], disable_numparse=True)


def run(args) -> int:
    names = select_benchmarks(args.filter)
    if args.out is not None and args.out.exists() and not args.out.is_dir():
        raise UsageError(f"--out {args.out} is not a directory")
    config = {
        "benchmarks": names, "procs": args.procs, "processes": args.processes,
        "values": args.values, "warmups": args.warmups, "min_time": args.min_time,
        "loops": args.loops, "filter": args.filter,
    }
    run_doc = store.new_run("micro", config)
    cases: dict[tuple[str, int], dict] = {}
    for name in names:
        for p in args.procs:
            case = {"name": name, "procs": p, "unit": "us/op", "loops": args.loops or 0,
                    "asyncio_loops": None, "values": [], "asyncio_values": None,
                    "ratio_median": None, "errors": []}
            cases[(name, p)] = case
            run_doc["cases"].append(case)
    total = len(cases) * args.processes
    done = 0
    t0 = time.monotonic()
    print(f"micro: {len(names)} benchmarks × procs {','.join(map(str, args.procs))} × "
          f"{args.processes} processes × {args.values} values -> {run_doc['id']}",
          file=sys.stderr)
    path = None
    for rnd in range(args.processes):
        for (name, p), case in cases.items():
            done += 1
            prefix = f"[{done}/{total}] {name} procs={p} process {rnd + 1}/{args.processes}"
            print(f"{prefix} ...", end="", file=sys.stderr, flush=True)
            try:
                res = run_worker(name, p, Sampling(args.values, args.warmups, args.min_time),
                                 case["loops"] or args.loops,
                                 case["asyncio_loops"] or args.loops)
            except RuntimeError as e:
                case["errors"].append(str(e))
                print(f" FAILED: {e}", file=sys.stderr)
            else:
                case["loops"] = res["loops"]
                case["asyncio_loops"] = res["asyncio_loops"]
                case["values"] += res["values"]
                if res["asyncio_values"] is not None:
                    case["asyncio_values"] = (case["asyncio_values"] or []) + res["asyncio_values"]
                case["ratio_median"] = _ratio_median(case)
                med = statistics.median(res["values"])
                aio = (f" (asyncio {fmt_value(statistics.median(res['asyncio_values']))})"
                       if res["asyncio_values"] else "")
                print(f" {fmt_value(med)} µs/op{aio}", file=sys.stderr)
            path = store.save_run(run_doc, args.out)
    # A failed worker is recorded and the case's other processes still run: a flaky
    # failure costs one process's values, not the case. Only a case left with no value
    # at all fails the command (and `compare` calls it "failed in new").
    flaky = [f"{c['name']}-{c['procs']}" for c in cases.values() if c["errors"] and c["values"]]
    failed = [f"{c['name']}-{c['procs']}" for c in cases.values() if not c["values"]]
    run_doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    run_doc["summary"] = {"cases": len(cases), "failed": failed, "flaky": flaky,
                          "duration_s": round(time.monotonic() - t0, 1)}
    path = store.save_run(run_doc, args.out)
    print(_table(run_doc))
    print(f"saved {path} ({run_doc['summary']['duration_s']:.0f} s)")
    if flaky:
        print(f"warning: some worker processes failed (their values are missing) in: "
              f"{', '.join(flaky)}", file=sys.stderr)
    if failed:
        print(f"error: {len(failed)} benchmark(s) failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0
