"""``runner.py regress [--base REF]``: the work tree against a git ref, measured in one sitting.

The base (default ``HEAD`` when the work tree has changes, else ``HEAD~1``; or
``baseline:NAME``, a saved micro run, whose commit is checked out) goes into a temporary
git worktree that is removed at the end however the command ends. Both sides are measured
by this tree's harness (:mod:`bench.side`: only the runtime and the servers differ):

1. **Instruction counts, the gate.** Every micro-benchmark at ``--count-procs`` (default:
   every ``--procs``, 1,2) under callgrind (:mod:`bench.micro_count`), and the goroutine
   server's echo path per message in ping-pong at procs 1
   (:func:`bench.echo_instructions.start_pingpong`), base and head side by side
   (``--jobs`` at once: a count does not depend on the machine's load). At procs 1 a
   delta beyond ``--threshold`` on one count per side is counted again on both sides
   before it is believed (:mod:`results.verdicts`). At procs 2 and more the Ms race for
   the Gs and some counts move by percents between runs, so each side is counted
   :data:`PARALLEL_COUNTS` times, judged at ``--parallel-threshold``
   (:func:`results.regress_report.count_threshold`), and a change must also exceed twice
   the spread of a side's counts.
2. **Time, secondary.** ``--rounds`` rounds of fresh worker processes
   (:mod:`bench.micro_worker`), base and head alternating (base first in even rounds,
   head first in odd ones) so a change in load hits both sides alike: µs/op, and the
   goruntime/asyncio ratio measured in the same process. Each benchmark keeps the loop
   count its first worker calibrated, on both sides.
3. **Echo server CPU, secondary.** ``--echo-rounds`` closed-loop runs of the compiled
   client (bench/echoclient.c) against the goroutine server (procs=1), each pinned to
   its own CPU, base and head alternating: server CPU µs per echoed message.

Without valgrind it says in one line how to install it and gates on the asyncio ratio
alone. The result is saved (:mod:`results.regress`) and printed as tables or with
``--format gobench``. Exit 0: no regression on the gate; 1: the gating metric regressed,
or a case failed on head only; 2: bad input (unknown ref, a dirty or foreign baseline,
...); 130: interrupted (nothing saved, the worktree removed).
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import signal
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import (
    UsageError,
    cmd_compare,
    cmd_micro,
    echo_instructions,
    echobench,
    micro_count,
    writable_dir,
)
from bench import worktree as wt
from results import compare, regress, regress_report, store, verdicts

HELP = ("judge the work tree against a git ref (default HEAD~1, or HEAD when dirty): "
        "instruction counts gate, time is secondary; exit 1 on a regression")

ROOT = Path(__file__).resolve().parent.parent
ECHO_SERVER = "goroutine:1"
ECHO_CONNECTIONS = 100
ECHO_WARMUP_S = 0.5
PARALLEL_COUNTS = 4  # counts per side of a procs >= 2 case (3 let Gosched-2 gate on noise)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--base", metavar="REF",
                   help="git ref to judge against (default HEAD when the work tree has "
                        "changes, else HEAD~1), or baseline:NAME (a saved micro run)")
    p.add_argument("--threshold", type=cmd_compare._percent, default=verdicts.DEFAULT_THRESHOLD_PCT,
                   metavar="PCT", help="instruction delta that is a change (default 1)")
    p.add_argument("--io-threshold", type=cmd_compare._percent,
                   default=regress_report.IO_THRESHOLD_PCT, metavar="PCT",
                   help="instruction delta that is a change for "
                        f"{', '.join(regress_report.IO_CASES)}, whose count moves with the wall "
                        "clock (default 3)")
    p.add_argument("--parallel-threshold", type=cmd_compare._percent,
                   default=regress_report.PARALLEL_THRESHOLD_PCT, metavar="PCT",
                   help="instruction delta that is a change at procs 2 and more, where the "
                        "Ms race (default 2)")
    p.add_argument("--time-threshold", type=cmd_compare._percent, default=5.0, metavar="PCT",
                   help="minimum effect for the time metrics (default 5)")
    p.add_argument("--alpha", type=cmd_compare._fraction, default=0.05,
                   help="significance level for the time metrics (default 0.05)")
    p.add_argument("--filter", metavar="RE", help="only micro-benchmarks whose name matches RE")
    p.add_argument("--procs", type=cmd_micro._procs_list, default=[1, 2],
                   help="GOMAXPROCS values (default 1,2)")
    p.add_argument("--count-procs", type=cmd_micro._procs_list,
                   help="GOMAXPROCS values whose instructions are counted (default: all "
                        "of --procs)")
    p.add_argument("--rounds", type=cmd_micro._nonneg, default=3,
                   help="interleaved time rounds, a fresh process per side and benchmark "
                        "each (default 3; 0: no time metrics)")
    p.add_argument("--values", type=cmd_micro._positive, default=2,
                   help="time values per worker process (default 2)")
    p.add_argument("--warmups", type=cmd_micro._nonneg, default=1,
                   help="discarded warm-up values per worker process (default 1)")
    p.add_argument("--min-time", type=cmd_micro._seconds, default=0.05,
                   help="calibrate loops so one time value takes this long (default 0.05 s)")
    p.add_argument("--echo-rounds", type=cmd_micro._nonneg, default=4,
                   help="closed-loop echo server CPU runs per side (default 4, the fewest "
                        "that can give p < 0.05; 0: none)")
    p.add_argument("--echo-seconds", type=cmd_micro._seconds, default=2.0,
                   help="length of one echo run (default 2 s)")
    p.add_argument("--no-echo", action="store_true",
                   help="leave the echo server out (instructions and CPU)")
    p.add_argument("--jobs", type=cmd_micro._positive, default=2,
                   help="valgrind processes at once (default 2)")
    p.add_argument("--format", choices=("text", "gobench"), default="text",
                   help="text tables, or Go benchmark lines for `benchstat -col run`")
    p.add_argument("--out", type=Path, metavar="DIR",
                   help=f"directory for the result file (default {store.RUNS_DIR})")


# ---- the base side ----------------------------------------------------------------------


def _baseline(ref: str, repo: Path) -> tuple[dict, str]:
    """The saved micro run ``baseline:NAME`` and its commit; UsageError if unusable."""
    name = ref.partition(":")[2]
    run = cmd_compare.load(ref)
    if run["kind"] != "micro":
        raise UsageError(f"baseline {name!r} is a {run['kind']} run; regress needs a micro run")
    if run["git"].get("dirty") is not False:
        raise UsageError(f"baseline {name!r} was measured on a dirty tree: its code is no "
                         "commit to count; use --base REF")
    return run, wt.resolve(repo, run["git"]["sha"])


def _base_block(args, repo: Path) -> tuple[dict, dict | None]:
    """config.base, and the baseline run when the base is one."""
    if args.base and args.base.startswith("baseline:"):
        run, sha = _baseline(args.base, repo)
        name = args.base.partition(":")[2]
        return {"ref": args.base, "sha": sha, "commit_time": wt.commit_time(repo, sha),
                "baseline": name}, run
    ref = args.base or wt.default_base(repo)
    sha = wt.resolve(repo, ref)
    return {"ref": ref, "sha": sha, "commit_time": wt.commit_time(repo, sha),
            "baseline": None}, None


# ---- phases -----------------------------------------------------------------------------


def _say(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _micro_cases(doc: dict) -> list[dict]:
    return [c for c in doc["cases"] if c["name"] != regress.ECHO_CASE]


def _start_count(case: dict, root: Path, marks: Path, workdir: Path) -> micro_count.Counting:
    if case["name"] == regress.ECHO_CASE:
        return echo_instructions.start_pingpong(root, marks, workdir)
    return micro_count.start(root, case["name"], case["procs"], marks, workdir)


def _count(tasks: list[tuple[dict, str]], roots: dict[str, Path], marks: Path,
           workdir: Path, jobs: int) -> None:
    """Count every (case, side) task, ``jobs`` valgrind processes at a time."""
    for i in range(0, len(tasks), jobs):
        batch = tasks[i:i + jobs]
        started = []
        try:
            for case, s in batch:
                started.append(_start_count(case, roots[s], marks, workdir))
            for (case, s), counting in zip(batch, started, strict=True):
                try:
                    v = counting.result()
                except micro_count.CountError as e:
                    case[s]["errors"].append(f"instructions: {e}")
                    _say(f"  instructions {regress.label(case)} {s}: FAILED: {e}")
                else:
                    case[s]["instructions"].append(v)
                    _say(f"  instructions {regress.label(case)} {s}: {v:,.1f}/"
                         f"{'msg' if case['name'] == regress.ECHO_CASE else 'op'}")
        finally:
            for counting in started:
                counting.close()


def _unconfirmed(case: dict, threshold: float) -> bool:
    old, new = case["base"]["instructions"], case["head"]["instructions"]
    if not old or not new:
        return False
    return verdicts.needs_confirmation(verdicts.compare_counts(old, new, threshold),
                                       len(old), len(new))


def count_phase(doc: dict, roots: dict[str, Path], marks: Path, workdir: Path,
                args) -> None:
    """Instruction counts of both sides, side by side: every case once, then the cases at
    procs >= 2 until they have PARALLEL_COUNTS per side; a verdict from one count per
    side is counted again on both sides."""
    cases = [c for c in doc["cases"] if c["name"] == regress.ECHO_CASE
             or c["procs"] in args.count_procs]
    parallel = [c for c in cases if c["procs"] >= 2]
    n_echo = sum(c["name"] == regress.ECHO_CASE for c in cases)
    _say(f"instructions: {len(cases) - n_echo} micro cases"
         f"{' and the echo path' if n_echo else ''} × base, head under callgrind"
         f"{f' ({PARALLEL_COUNTS} times at procs ≥ 2)' if parallel else ''}")
    tasks = [(c, s) for c in cases for s in regress.SIDES]
    tasks += [(c, s) for _ in range(PARALLEL_COUNTS - 1) for c in parallel
              for s in regress.SIDES]
    _count(tasks, roots, marks, workdir, args.jobs)
    again = [(c, s) for c in cases if _unconfirmed(c, args.threshold) for s in regress.SIDES]
    if again:
        _say(f"instructions: counting {len(again) // 2} changed case(s) again to confirm")
        _count(again, roots, marks, workdir, args.jobs)


def time_phase(doc: dict, roots: dict[str, Path], args, baseline: dict | None) -> None:
    """``--rounds`` interleaved rounds of fresh micro workers (head only against a baseline)."""
    cases = _micro_cases(doc)
    sides = ("head",) if baseline else regress.SIDES
    total, done = args.rounds * len(cases) * len(sides), 0
    sampling = cmd_micro.Sampling(args.values, args.warmups, args.min_time)
    for rnd in range(args.rounds):
        order = sides if rnd % 2 == 0 else sides[::-1]
        for case in cases:
            for s in order:
                done += 1
                prefix = f"[{done}/{total}] time {regress.label(case)} {s}"
                try:
                    res = cmd_micro.run_worker(case["name"], case["procs"], sampling,
                                               case["loops"] or None,
                                               case["asyncio_loops"] or None, roots[s])
                except RuntimeError as e:
                    case[s]["errors"].append(f"time: {e}")
                    _say(f"{prefix}: FAILED: {e}")
                    continue
                case["loops"], case["asyncio_loops"] = res["loops"], res["asyncio_loops"]
                case[s]["values"] += res["values"]
                if res["asyncio_values"] is not None:
                    case[s]["asyncio_values"] = ((case[s]["asyncio_values"] or [])
                                                 + res["asyncio_values"])
                _say(f"{prefix}: {compare.fmt_value(statistics.median(res['values']))} µs/op")


def _baseline_values(doc: dict, baseline: dict) -> None:
    """Fill the base side's time values (and loop counts) from the saved baseline run."""
    saved = {compare.micro_label(c): c for c in baseline["cases"]}
    for case in _micro_cases(doc):
        b = saved.get(regress.label(case))
        if b is None or not b.get("values"):
            case["base"]["errors"].append(f"time: not in baseline {baseline['id']}")
            continue
        case["base"]["values"] = list(b["values"])
        case["base"]["asyncio_values"] = b.get("asyncio_values")
        case["loops"], case["asyncio_loops"] = b.get("loops") or 0, b.get("asyncio_loops")


def _cpus() -> tuple[int, int]:
    """A CPU for the server and another for the client (the same one on a 1-CPU machine)."""
    cpus = sorted(os.sched_getaffinity(0))
    return cpus[0], cpus[1] if len(cpus) > 1 else cpus[0]


def echo_cpu_phase(case: dict, roots: dict[str, Path], args, workdir: Path) -> None:
    """Server CPU per echoed message, base and head alternating, ``--echo-rounds`` each."""
    server_cpu, client_cpu = _cpus()
    load = echobench.EchoLoad(connections=ECHO_CONNECTIONS, size=64, warmup=ECHO_WARMUP_S,
                              duration=args.echo_seconds)
    pins = echobench.Pinning(server_cpu, client_cpu)
    try:
        client = echobench.compile_client(workdir)
    except (SystemExit, OSError) as e:
        for s in regress.SIDES:
            case[s]["errors"].append(f"cpu: cannot build the echo client ({e})")
        return
    for rnd in range(args.echo_rounds):
        for s in regress.SIDES if rnd % 2 == 0 else regress.SIDES[::-1]:
            prefix = f"[{rnd + 1}/{args.echo_rounds}] echo server cpu {s}"
            try:
                res = echobench.throughput(ECHO_SERVER, load, pins, client, roots[s])
            except (SystemExit, OSError, ValueError) as e:
                case[s]["errors"].append(f"cpu: {e}")
                _say(f"{prefix}: FAILED: {e}")
                continue
            case[s]["values"].append(res["cpu_us_per_msg"])
            _say(f"{prefix}: {res['cpu_us_per_msg']} µs/msg at {res['rate']:.0f} msgs/s")


# ---- the command ------------------------------------------------------------------------


@contextmanager
def _sigterm_as_interrupt() -> Iterator[None]:
    """SIGTERM ends the command as Ctrl-C does (the worktree is removed)."""
    def handler(signum, frame):
        raise KeyboardInterrupt

    old = signal.signal(signal.SIGTERM, handler)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, old)


def _config(args, base: dict, gate: str, names: list[str], why: str | None) -> dict:
    return {"base": base, "gate": gate, "threshold": args.threshold,
            "count_procs": args.count_procs, "io_threshold": args.io_threshold,
            "parallel_threshold": args.parallel_threshold, "parallel_counts": PARALLEL_COUNTS,
            "time_threshold": args.time_threshold, "alpha": args.alpha, "benchmarks": names,
            "procs": args.procs, "rounds": args.rounds, "values": args.values,
            "warmups": args.warmups, "min_time": args.min_time,
            "echo": not args.no_echo, "echo_rounds": 0 if args.no_echo else args.echo_rounds,
            "echo_seconds": args.echo_seconds, "jobs": args.jobs,
            "count_loops": {n: list(micro_count.loops_for(n)) for n in names},
            "echo_count_messages": list(echo_instructions.PINGPONG),
            "valgrind_missing": why}


def _summary(report: regress_report.Report, t0: float) -> dict:
    rows = [{"metric": t.spec.name, "case": r.case, "delta_pct": r.delta_pct,
             "verdict": r.verdict, "gating": t.gating}
            for t in report.tables for r in t.rows]
    return {"gate": report.gate, "regressed": [r.case for r in report.regressions],
            "secondary_regressed": [f"{r.case} {m}" for m, r in report.secondary_regressions],
            "verdicts": rows, "duration_s": round(time.monotonic() - t0, 1)}


def measure(doc: dict, base_root: Path, args, marks: Path | None, baseline: dict | None,
            workdir: Path) -> None:
    """All phases, into ``doc``'s cases."""
    roots = {"base": base_root, "head": ROOT}
    if marks is not None:
        count_phase(doc, roots, marks, workdir, args)
    if baseline is not None:
        _baseline_values(doc, baseline)
    if args.rounds:
        time_phase(doc, roots, args, baseline)
    echo = [c for c in doc["cases"] if c["name"] == regress.ECHO_CASE]
    if echo and args.echo_rounds:
        echo_cpu_phase(echo[0], roots, args, workdir)


def run(args) -> int:
    t0 = time.monotonic()
    if args.out is not None:
        writable_dir(args.out, "--out")
    names = cmd_micro.select_benchmarks(args.filter)
    if args.count_procs is None:
        args.count_procs = list(args.procs)
    if not set(args.count_procs) <= set(args.procs):
        raise UsageError(f"--count-procs {','.join(map(str, args.count_procs))} must be among "
                         f"--procs {','.join(map(str, args.procs))}")
    repo = wt.toplevel(ROOT)
    base, baseline = _base_block(args, repo)
    with tempfile.TemporaryDirectory(prefix="c10k-regress-tmp-") as tmp:
        why, marks = micro_count.unavailable(Path(tmp))
        if why:
            _say(f"{why}: {micro_count.INSTALL_HINT}; gating on the time ratios "
                 "(goruntime/asyncio) alone")
            if not args.rounds:
                raise UsageError("without valgrind the gate is the time ratio: --rounds 0 "
                                 "leaves nothing to judge")
        gate = regress.RATIO.name if why else regress.INSTRUCTIONS.name
        doc = regress.new_doc(_config(args, base, gate, names, why))
        for name in names:
            for p in args.procs:
                doc["cases"].append(regress.new_case(name, p, "us/op"))
        if not args.no_echo:
            doc["cases"].append(regress.new_case(regress.ECHO_CASE, 1, "us/msg"))
        _say(f"regress: base {base['ref']} ({base['sha'][:10]}) vs head "
             f"{doc['git']['sha'][:10]}{' + changes' if doc['git'].get('dirty') else ''}: "
             f"{len(names)} benchmarks × procs {','.join(map(str, args.procs))}")
        try:
            with _sigterm_as_interrupt(), wt.checkout(repo, base["sha"]) as tree:
                base_root = tree / ROOT.relative_to(repo)
                if not (base_root / "goruntime" / "micro.py").is_file():
                    raise UsageError(f"base {base['ref']} has no goruntime/micro.py: "
                                     "nothing to compare")
                measure(doc, base_root, args, marks, baseline, Path(tmp))
        except wt.WorktreeError as e:
            raise UsageError(str(e)) from None
        except KeyboardInterrupt:
            _say("interrupted: nothing saved; the base worktree is removed")
            return 130
    report = regress_report.judge(doc)
    doc["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    doc["summary"] = _summary(report, t0)
    path = regress.save(doc, args.out)
    if args.format == "gobench":
        print(regress_report.render_gobench(report))
    else:
        print(regress_report.render_text(report))
    _say(f"saved {path} ({doc['summary']['duration_s']:.0f} s)")
    return 1 if report.regressions else 0
