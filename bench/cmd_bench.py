"""``runner.py bench``: run the case matrix and write one run file, then print the report."""

from __future__ import annotations

import argparse
import datetime as dt
import json
import resource
import signal
import subprocess
import sys
from pathlib import Path

from bench import UsageError, matrix
from bench.case import ROOT, run_case, summary_line
from bench.progress import Progress, case_label
from results import store
from results.report import run_summary

HELP = "run servers under load (strategy x connections x rate x size x repeat) and record it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--strategies", help="comma list (default: iterative,fork,thread,goroutine,asyncio)")
    a("--connections", help="comma list of connection counts (default: 100,1000,10000)")
    a("--rate", help="open-loop total msg/s, comma list, or 'auto' (1/s per conn, max 5000)")
    a("--size", help="message size(s) in bytes, comma list (default: 64)")
    a("--mode", help="open, closed or open,closed (default: open, + closed at 100 conns)")
    a("--conn-mode", help="persistent and/or per-message (default: persistent)")
    a("--closed-connections", help="connection counts of the extra closed-loop cases")
    a("--duration", type=float, help="measure phase, seconds (default: 8)")
    a("--warmup", type=float, help="warm-up phase, seconds (default: 1)")
    a("--repeats", type=int, help="repeats of the whole matrix (default: 3)")
    a("--workers", type=int, help="loadgen worker processes (default: the loadgen's)")
    a("--procs", type=int, help="GOMAXPROCS of the goroutine server")
    a("--backlog", type=int, help="listen backlog passed to the servers")
    a("--server-cmd", help="an external server command following the server contract")
    a("--pin", action=argparse.BooleanOptionalAction, default=None,
      help="server and loadgen+sampler on separate CPUs (default: on with 2+ CPUs)")
    a("--out", help="directory for the run file (default: results/runs)")
    a("--config", help="TOML file holding any of these settings")
    a("--resume", metavar="RUN", help="finish an interrupted run (id, path or 'latest')")
    a("--quick", action="store_true", default=None, help="the bench-quick matrix")
    a("--mem-floor", type=float, help="abort a case below this much available memory (bytes)")
    a("--mem-budget", type=float, help="abort a case using more than this many bytes")
    a("--no-report", action="store_true", help="do not print the report at the end")


def known_strategies() -> tuple[set[str], str]:
    """The strategies ``python -m servers`` knows, and a reason when it cannot be asked."""
    code = "import json, servers; print(json.dumps(sorted(servers.STRATEGIES)))"
    try:
        out = subprocess.run(
            [sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60
        )
    except (OSError, subprocess.SubprocessError) as e:
        return set(), str(e)
    if out.returncode != 0:
        lines = out.stderr.strip().splitlines()
        return set(), lines[-1] if lines else f"exit {out.returncode}"
    return set(json.loads(out.stdout.strip().splitlines()[-1])), ""


def _raise_fd_limit() -> None:
    """10,000 connections need ~10,000 fds in the server and the loadgen: lift the soft limit."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _key_id(key: dict) -> str:
    return json.dumps(key, sort_keys=True)


def _sigterm(signum, frame):
    raise KeyboardInterrupt


def _prepare(args) -> tuple[dict, Path | None]:
    if args.resume:
        typed = [k for k in matrix.DEFAULTS if getattr(args, k, None) not in (None, False)]
        if typed or args.config or args.out:
            raise UsageError("--resume takes no other options: the run file holds its config")
        try:
            ref = "latest:bench" if args.resume == "latest" else args.resume
            run, path = store.load_run(ref)
        except store.RunFileError as e:
            raise UsageError(f"--resume: {e}") from None
        if run["kind"] != "bench":
            raise UsageError(f"--resume: {path} is a {run['kind']} run, not a bench run")
        return run, path.parent
    cfg = matrix.build_config(vars(args), args.config)
    out = Path(args.out) if args.out else None
    if out is not None and out.exists() and not out.is_dir():
        raise UsageError(f"--out {out}: not a directory")
    return store.new_run("bench", cfg), out


def run(args) -> int:
    run, out = _prepare(args)
    cfg = run["config"]
    known, why = known_strategies()
    skipped = {}
    for s in cfg["strategies"]:
        if s != matrix.EXTERNAL and s not in known:
            skipped[s] = "`python -m servers` does not know it yet" + (f" ({why})" if why else "")
    for s, reason in skipped.items():
        print(f"skipping {s}: {reason}", file=sys.stderr)
    strategies = [s for s in cfg["strategies"] if s not in skipped]
    if not strategies:
        raise UsageError("no strategy left to run (see the skipped lines above)")
    done = {_key_id(c["key"]) for c in run["cases"]}
    todo = [k for k in matrix.case_keys(cfg, strategies) if _key_id(k) not in done]
    run["summary"] = run_summary(run, skipped)
    path = store.save_run(run, out)
    print(f"run {run['id']}: {len(todo)} case(s) to run -> {path}", file=sys.stderr)

    _raise_fd_limit()
    old = signal.signal(signal.SIGTERM, _sigterm)
    estimates = [matrix.estimate_case_s(cfg, k["connections"]) for k in todo]
    progress = Progress(len(run["cases"]) + len(todo), estimates)
    try:
        for i, key in enumerate(todo):
            progress.begin(len(run["cases"]) + 1, case_label(key))
            case = run_case(cfg, key, progress)
            run["cases"].append(case)
            run["summary"] = run_summary(run, skipped)
            store.save_run(run, out)
            progress.finish(summary_line(case), estimates[i])
    except KeyboardInterrupt:
        progress.message(
            f"interrupted: {len(run['cases'])} finished case(s) kept in {path}; "
            f"finish with: runner.py bench --resume {path if out else run['id']}"
        )
        raise
    finally:
        signal.signal(signal.SIGTERM, old)
    run["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    store.save_run(run, out)
    bad = [c for c in run["cases"] if c["status"] != "ok"]
    print(
        f"run {run['id']} complete: {len(run['cases']) - len(bad)} ok, {len(bad)} failed/aborted"
        f" -> {path}",
        file=sys.stderr,
    )
    if not args.no_report:
        from bench.cmd_report import render

        render(run, path)
    return 0
