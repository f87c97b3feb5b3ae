"""``runner.py ceiling``: what one loadgen worker on one core does on this machine.

Against the fastest server installed (uvloop if it imports, else asyncio), pinned to one
CPU while the loadgen (master and one worker) runs on another:

* closed loop, ``--closed-connections`` connections: verified msg/s per worker
  CPU-second (the median of ``--repeat`` runs);
* open loop, at each of ``--connections``: the rates of ``--rates`` in turn, each held
  *on time* when the rate is achieved (99%), nothing fails, and the worker's timed sends
  leave within :data:`ON_TIME_P99_US` at p99. A rate not on time is tried once more (one
  stall of a shared machine does not set the ceiling); the search stops at the first rate
  not on time twice. The ceiling is the highest rate on time.

The figures go to ``results/ceiling.json`` (:mod:`results.ceiling`), where ``runner.py
bench`` reads its ``rate_cap = "auto"``: the open-loop figure at the most connections,
times the loadgen's CPUs. Each run prints one line as it ends.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import UsageError
from common.cli import positive_float, positive_int_list
from common.limits import raise_fd_limit
from results import ceiling

ROOT = Path(__file__).resolve().parent.parent
HELP = "measure the loadgen's own ceiling here (results/ceiling.json sizes bench's rates)"
ON_TIME_P99_US = 2000
DEFAULT_RATES = (10000, 20000, 30000, 40000, 50000, 60000, 80000)
RAMP_RATE = 5000


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--connections", type=positive_int_list, default=[1000, 10000],
                   help="open-loop connection counts (default 1000,10000)")
    p.add_argument("--rates", type=positive_int_list, default=list(DEFAULT_RATES),
                   help="open-loop rates tried in turn, msg/s (default "
                        f"{','.join(map(str, DEFAULT_RATES))})")
    p.add_argument("--closed-connections", type=int, default=100,
                   help="closed-loop connections (default 100; 0: no closed-loop runs)")
    p.add_argument("--repeat", type=int, default=3, help="closed-loop runs (default 3)")
    p.add_argument("--duration", type=positive_float, default=3.0,
                   help="measured seconds per run (default 3)")
    p.add_argument("--server", choices=("uvloop", "asyncio"),
                   help="the server to load (default uvloop if installed, else asyncio)")
    p.add_argument("--out", type=Path, help=f"the ceiling file (default {ceiling.CEILING_FILE})")


@dataclass(frozen=True)
class Pins:
    """The CPU of the server and the CPU of the loadgen (the same on a 1-CPU machine)."""

    server: int
    loadgen: int

    @classmethod
    def here(cls) -> Pins:
        cpus = sorted(os.sched_getaffinity(0))
        return cls(cpus[0], cpus[-1])


def fastest_server() -> str:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return "asyncio"
    return "uvloop"


def one_run(server: str, pins: Pins, loadgen_args: list[str]) -> dict:
    """One loadgen run (one worker) against a fresh ``server``: its result dict."""
    def pin(cpu: int):
        def f() -> None:
            os.sched_setaffinity(0, {cpu})
            raise_fd_limit()
        return f

    srv = subprocess.Popen([sys.executable, "-m", "servers", server, "--port", "0"], cwd=ROOT,
                           stdout=subprocess.PIPE, text=True, preexec_fn=pin(pins.server))
    try:
        port = json.loads(srv.stdout.readline())["port"]
        with tempfile.TemporaryDirectory(prefix="c10k-ceiling-") as d:
            out = Path(d) / "r.json"
            lg = subprocess.run([sys.executable, "-m", "loadgen", "--port", str(port),
                                 "--workers", "1", "--ramp-rate", str(RAMP_RATE),
                                 *loadgen_args, "--json-out", str(out)],
                                cwd=ROOT, capture_output=True, text=True, timeout=600,
                                preexec_fn=pin(pins.loadgen))
            if lg.returncode != 0 or not out.exists():
                tail = lg.stderr.strip().splitlines()[-1:] or ["no output"]
                raise RuntimeError(f"loadgen exited {lg.returncode}: {tail[0]}")
            return json.loads(out.read_text())
    finally:
        srv.terminate()
        try:
            srv.wait(timeout=10)
        except subprocess.TimeoutExpired:
            psutil.Process(srv.pid).kill()
            srv.wait()


def on_time(r: dict, rate: float) -> tuple[bool, str]:
    """Whether an open-loop run offered ``rate`` on time, and a one-line account."""
    w = r["workers"][0]
    errors = sum(r["errors"].values())
    ok = (r["rate"]["achieved"] >= 0.99 * rate and errors == 0
          and w["late_p99_us"] <= ON_TIME_P99_US)
    return ok, (f"{r['rate']['achieved']:,.0f} msg/s, timed sends late p99 "
                f"{w['late_p99_us']:,} µs, worker CPU {w['cpu_percent']}%, errors {errors}")


def _say(line: str) -> None:
    print(line, flush=True)


def run(args) -> int:
    if args.repeat < 1 and args.closed_connections:
        raise UsageError("--repeat must be at least 1")
    server = args.server or fastest_server()
    pins = Pins.here()
    c = ceiling.new(dt.datetime.now(dt.UTC).isoformat(timespec="seconds"), server)
    common = ["--duration", f"{args.duration:g}", "--warmup", "1"]
    _say(f"ceiling: server {server} on CPU {pins.server}, loadgen on CPU {pins.loadgen}; "
         f"on time: rate held, no errors, timed sends p99 ≤ {ON_TIME_P99_US} µs")
    t0 = time.monotonic()
    try:
        per_cpu = []
        for i in range(args.repeat if args.closed_connections else 0):
            r = one_run(server, pins, ["--connections", str(args.closed_connections), *common])
            w = r["workers"][0]
            per_cpu.append(r["rate"]["achieved"] / max(w["cpu_percent"] or 0, 1e-9) * 100)
            c.runs.append({"mode": "closed", "connections": args.closed_connections,
                           "rate": r["rate"]["achieved"], "cpu_percent": w["cpu_percent"]})
            _say(f"[closed {i + 1}/{args.repeat}] {args.closed_connections} connections: "
                 f"{r['rate']['achieved']:,.0f} verified msg/s at worker CPU "
                 f"{w['cpu_percent']}% = {per_cpu[-1]:,.0f} per worker CPU-second")
        c.closed_per_cpu_s = round(statistics.median(per_cpu)) if per_cpu else None
        for n in args.connections:
            for rate in args.rates:
                held = False
                for attempt in (1, 2):
                    r = one_run(server, pins, ["--connections", str(n), "--mode", "open",
                                               "--rate", str(rate), *common])
                    held, account = on_time(r, rate)
                    w = r["workers"][0]
                    c.runs.append({"mode": "open", "connections": n, "rate": rate,
                                   "attempt": attempt, "on_time": held,
                                   "achieved": r["rate"]["achieved"],
                                   "late_p99_us": w["late_p99_us"],
                                   "cpu_percent": w["cpu_percent"]})
                    _say(f"[open {n:,} conns {rate:,} msg/s, try {attempt}] "
                         f"{'on time' if held else 'NOT on time'}: {account}")
                    if held:
                        break
                if not held:
                    break
                c.open_rate[n] = float(rate)
    except RuntimeError as e:
        raise UsageError(f"ceiling: {e}") from None
    path = ceiling.save(c, args.out)
    _say(f"closed loop: {c.closed_per_cpu_s or 0:,.0f} verified msg/s per worker CPU-second")
    for n in args.connections:
        got = c.open_rate.get(n)
        _say(f"open loop, {n:,} connections: "
             + (f"{got:,.0f} msg/s on time" if got else "no rate tried was on time")
             + (" (the highest tried)" if got == max(args.rates) else ""))
    _say(f"saved {path} ({time.monotonic() - t0:.0f} s); `runner.py bench` sizes its "
         "auto rate cap from it")
    return 0
