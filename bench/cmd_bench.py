"""``runner.py bench``: run the case matrix and write one run file, then print the report."""

from __future__ import annotations

import argparse
import datetime as dt
import signal
import sys
from pathlib import Path

import servers
from bench import UsageError, cgroup, matrix, writable_dir
from bench.capacity import Search, searches
from bench.case import run_case, summary_line, sweep_workdirs
from bench.progress import Progress
from common.limits import raise_fd_limit
from results import store
from results.cases import CaseKey
from results.report import run_summary

HELP = "run servers under load (strategy x connections x rate x size x repeat) and record it"


def add_arguments(p: argparse.ArgumentParser) -> None:
    a = p.add_argument
    a("--strategies", help="comma list (default: iterative,fork,thread,goroutine,asyncio); "
      "'all' adds the references asyncio-streams, gevent, uvloop")
    a("--connections", help="comma list of connection counts (default: 100,1000,10000)")
    a("--rate", help="open-loop total msg/s, comma list, or 'auto' "
      "(1/s per conn, up to the rate cap)")
    a("--size", help="message size(s) in bytes, comma list (default: 64)")
    a("--mode", help="open, closed or open,closed (default: open, + closed at 100 conns); "
      "or capacity: per strategy x connections, raise the open-loop rate to the knee")
    a("--conn-mode", help="persistent and/or per-message (default: persistent)")
    a("--closed-connections", help="connection counts of the extra closed-loop cases")
    a("--duration", type=float, help="measure phase, seconds (default: 8)")
    a("--warmup", type=float, help="warm-up phase, seconds (default: 1)")
    a("--repeats", type=int, help="repeats of the whole matrix (default: 3)")
    a("--workers", type=int, help="loadgen worker processes (default: the loadgen's)")
    a("--procs", type=int, help="GOMAXPROCS of the goroutine server (default: 1)")
    a("--backlog", type=int, help="listen backlog passed to the servers")
    a("--server-cmd", action="append", metavar="NAME=CMD",
      help="an external server by name (repeatable); {host} and {port} in CMD are filled in; "
      "ready at its listening line or, with {port}, at the first connection it accepts; "
      "split with shlex, never run by a shell")
    a("--ready-timeout", type=float, help="seconds an external server has to be ready")
    a("--pin", action=argparse.BooleanOptionalAction, default=None,
      help="server and loadgen+sampler on separate CPUs (default: on with 2+ CPUs)")
    a("--out", help="directory for the run file (default: results/runs)")
    a("--config", help="TOML file holding any of these settings")
    a("--resume", metavar="RUN", help="finish an interrupted run (id, path or 'latest')")
    a("--quick", action="store_true", default=None, help="the bench-quick matrix")
    a("--mem-floor", type=float, help="abort a case below this much available memory (bytes)")
    a("--mem-budget", type=float, help="abort a case using more than this many bytes")
    a("--no-report", action="store_true", help="do not print the report at the end")
    a("--ramp-rate", type=float, help="connections opened per second (default: the loadgen's)")
    a("--ramp-timeout", type=float, help="seconds to open every connection (default: 5 + N/400)")
    a("--rate-cap", type=float,
      help="highest auto rate, msg/s (default: per loadgen CPU, what `runner.py ceiling` "
           "measured here, else 20000)")
    a("--slo-p99-ms", type=float, help="held: corrected p99 at most this (default: 10)")
    a("--slo-held", type=float, help="held: at least this share of the target (default: 0.99)")
    a("--server-cpu-quota", type=float, metavar="CORES",
      help="cap the server's CPU (cgroup quota), e.g. 0.25; recorded in the run")
    a("--capacity-start", type=float, help="capacity: first rate (default: rate cap / 4)")
    a("--capacity-steps", type=int, help="capacity: most steps per search (default: 8)")
    a("--server-host", metavar="ADDR",
      help="address the server listens on (default 127.0.0.1); the server always runs on "
      "this host, where it is sampled; load may come from others (--remote-workers)")
    a("--remote-workers", type=int, metavar="N",
      help="loadgen workers on other hosts joining every case: start each once with "
      "'python -m loadgen worker --master HOST:PORT' (--master-bind); --workers may be 0")
    a("--master-bind", metavar="HOST:PORT",
      help="where the loadgen master listens for workers; a fixed port with --remote-workers")
    a("--join-timeout", type=float, help="seconds a case waits for every worker (default: 60)")


def unavailable(strategy: str) -> str | None:
    """Why a built-in strategy cannot run here (``None``: it can)."""
    try:
        return servers.unavailable(strategy)
    except Exception as e:  # noqa: BLE001 - a broken server module is a reason, not a crash
        return f"{type(e).__name__}: {e}"


def _interrupt(signum, frame):
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
        run["config"] = matrix.check_stored(run["config"], f"--resume {path}")
        return run, path.parent
    cfg = matrix.build_config(vars(args), args.config)
    if cfg["server_cpu_quota"] is not None:
        why = cgroup.check_quota()
        if why:
            raise UsageError(f"--server-cpu-quota: {why}")
    out = Path(args.out) if args.out else None
    if out is not None:
        writable_dir(out, "--out")
    return store.new_run("bench", cfg), out


def run(args) -> int:
    run, out = _prepare(args)
    cfg = run["config"]
    skipped = {}
    for s in cfg["strategies"]:
        why = unavailable(s) if s in matrix.STRATEGIES else None
        if why:
            skipped[s] = why
    for s, reason in skipped.items():
        print(f"skipping {s}: {reason}", file=sys.stderr)
    strategies = [s for s in cfg["strategies"] if s not in skipped]
    run["strategy_kinds"] = {s: servers.kind(s) if s in matrix.STRATEGIES else "external"
                             for s in cfg["strategies"]}
    if not strategies:
        raise UsageError("no strategy left to run (see the skipped lines above)")
    for gone in cgroup.sweep() + sweep_workdirs():
        print(f"removed what a killed run left: {gone}", file=sys.stderr)
    capacity = "capacity" in cfg["mode"]
    todo = [] if capacity else _todo(run, cfg, strategies)
    run["summary"] = run_summary(run, skipped)
    try:
        path = store.save_run(run, out, new=not args.resume)
    except OSError as e:
        raise UsageError(f"cannot write the run file in {out or store.RUNS_DIR} "
                         f"({e.strerror or e})") from None
    what = "capacity searches" if capacity else f"{len(todo)} case(s) to run"
    print(f"run {run['id']}: {what} -> {path}", file=sys.stderr)

    raise_fd_limit()  # the children inherit it
    old = {s: signal.signal(s, _interrupt) for s in (signal.SIGTERM, signal.SIGHUP)}
    try:
        if capacity:
            _run_searches(run, cfg, strategies, skipped, out)
        else:
            _run_cases(run, cfg, todo, skipped, out)
        run["finished"] = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
        store.save_run(run, out)
    except KeyboardInterrupt:
        for s in (*old, signal.SIGINT):  # all is stopped: a further signal must not cut the
            signal.signal(s, signal.SIG_IGN)  # exit short
            old[s] = signal.SIG_IGN
        print(f"interrupted: {len(run['cases'])} finished case(s) kept in {path}; "
              f"finish with: runner.py bench --resume {path if out else run['id']}",
              file=sys.stderr)
        raise
    except OSError as e:
        print(f"error: cannot write {path} ({e.strerror or e}): it holds the "
              f"{_cases_in(path)} case(s) saved before; finish with: runner.py bench "
              f"--resume {path}", file=sys.stderr)
        return 1
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)
    counts = run["summary"]["counts"]
    print(f"run {run['id']} complete: " + ", ".join(f"{n} {k}" for k, n in counts.items() if n)
          + f" -> {path}", file=sys.stderr)
    if not args.no_report:
        from bench.cmd_report import render

        render(run, path)
    return 1 if run["cases"] and counts["failed"] == len(run["cases"]) else 0


def _cases_in(path: Path) -> int | str:
    try:
        return len(store.read_run_file(path)["cases"])
    except store.RunFileError:
        return "no"


def _todo(run: dict, cfg: dict, strategies: list[str]) -> list[CaseKey]:
    done = {CaseKey.from_dict(c["key"]).id for c in run["cases"]}
    return [k for k in matrix.case_keys(cfg, strategies) if k.id not in done]


def _save_case(run: dict, case: dict, skipped: dict, out: Path | None) -> None:
    run["cases"].append(case)
    run["summary"] = run_summary(run, skipped)
    store.save_run(run, out)


def _run_cases(run: dict, cfg: dict, todo: list[CaseKey], skipped: dict,
               out: Path | None) -> None:
    estimates = [matrix.estimate_case_s(cfg, k.connections) for k in todo]
    progress = Progress(len(run["cases"]) + len(todo), estimates)
    for i, key in enumerate(todo):
        progress.begin(len(run["cases"]) + 1, key.label)
        case = run_case(cfg, key, progress)
        _save_case(run, case, skipped, out)
        progress.finish(summary_line(case), estimates[i])


def _replay(search: Search, run: dict) -> None:
    """Feed a resumed search the steps its run already holds."""
    for c in run["cases"]:
        k = c["key"]
        if (k["strategy"], k["connections"]) == (search.strategy, search.connections):
            p99 = c["loadgen"]["latency_us"]["corrected"]["p99"] / 1000 if c["loadgen"] else None
            search.record(k["rate"], c["verdict"]["kind"], p99)


def _run_searches(run: dict, cfg: dict, strategies: list[str], skipped: dict,
                  out: Path | None) -> None:
    """Every capacity search, one step (a whole case) at a time; the knees in
    ``run["capacity"]`` after each step."""
    plan = searches(cfg, strategies)
    for search in plan:
        _replay(search, run)
    per_step = {n: matrix.estimate_case_s(cfg, n) for n in cfg["connections"]}
    estimates = [per_step[s.connections] for s in plan for _ in range(cfg["capacity_steps"])]
    progress = Progress(len(estimates), estimates)
    for search in plan:
        while (rate := search.next_rate()) is not None:
            key = CaseKey(search.strategy, search.connections, rate, cfg["size"][0], "open",
                          cfg["conn_mode"][0], 0)
            progress.begin(len(run["cases"]) + 1, f"{key.label} (capacity step "
                           f"{len(search.steps) + 1})")
            case = run_case(cfg, key, progress)
            lg = case["loadgen"]
            search.record(rate, case["verdict"]["kind"],
                          lg["latency_us"]["corrected"]["p99"] / 1000 if lg else None)
            run["capacity"] = [s.result() for s in plan if s.steps]
            _save_case(run, case, skipped, out)
            progress.finish(summary_line(case), per_step[search.connections])
        progress.skip(cfg["capacity_steps"] - len(search.steps))
