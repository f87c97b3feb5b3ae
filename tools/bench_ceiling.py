"""The loadgen's own ceilings (a benchmark, not a test; pytest does not collect it).

    .venv/bin/python tools/bench_ceiling.py closed [--repeat 3]
        one worker, closed loop, 100 connections; asyncio server pinned to CPU 0, the
        loadgen (master + worker) to CPU 1.  Prints verified msgs/s and msgs per worker
        CPU-second (target >= 20,000).
    .venv/bin/python tools/bench_ceiling.py open --rates 5000 10000 15000
        2 workers, open loop, 10,000 persistent connections, nothing pinned.  Prints,
        per rate, achieved rate, worker CPU, uncorrected/corrected p50 and p99, and whether
        the loadgen was at its limit.

Each run starts `python -m servers asyncio` and `python -m loadgen` as subprocesses.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable


def _raise_nofile() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def run(server_cpus: str | None, loadgen_cpus: str | None, args: list[str]) -> dict:
    pin = lambda cpus: ["taskset", "-c", cpus] if cpus else []
    srv = subprocess.Popen([*pin(server_cpus), PY, "-m", "servers", "asyncio", "--port", "0"],
                           cwd=ROOT, stdout=subprocess.PIPE, text=True, preexec_fn=_raise_nofile)
    try:
        port = json.loads(srv.stdout.readline())["port"]
        server = psutil.Process(srv.pid)
        with tempfile.TemporaryDirectory() as d:
            out = os.path.join(d, "r.json")
            lg = subprocess.Popen([*pin(loadgen_cpus), PY, "-m", "loadgen", "--port", str(port),
                                   *args, "--json-out", out, "--progress", "json"], cwd=ROOT,
                                  stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
            marks = []  # server CPU seconds at the start and the end of the measure phase

            def mark() -> None:
                t = server.cpu_times()
                marks.append((time.perf_counter(), t.user + t.system))

            for line in lg.stderr:
                phase = json.loads(line).get("phase") if line.startswith("{") else None
                if (phase == "measure" and not marks) or (phase == "drain" and len(marks) == 1):
                    mark()
            if len(marks) == 1:
                mark()
            if lg.wait(timeout=300) != 0:
                raise SystemExit("loadgen failed")
            with open(out) as f:
                r = json.load(f)
            (t0, c0), (t1, c1) = marks
            r["server_cpu_percent"] = round(100 * (c1 - c0) / (t1 - t0))
            return r
    finally:
        srv.terminate()
        srv.wait(timeout=10)


def closed(repeat: int) -> None:
    for _ in range(repeat):
        r = run("0", "1", ["--connections", "100", "--workers", "1", "--duration", "5",
                           "--warmup", "1"])
        rate, cpu = r["rate"]["achieved"], r["workers"][0]["cpu_percent"]
        print(f"closed, 100 conns, 1 worker: {rate:.0f} verified msg/s, worker CPU {cpu:.0f}% "
              f"-> {rate / max(cpu, 1e-9) * 100:.0f} msgs per worker CPU-second, "
              f"p50 {r['latency_us']['uncorrected']['p50']} us, server CPU "
              f"{r['server_cpu_percent']}%", flush=True)


def open_loop(rates: list[float]) -> None:
    for rate in rates:
        r = run(None, None, ["--connections", "10000", "--workers", "2", "--mode", "open",
                             "--rate", str(rate), "--duration", "5", "--warmup", "1",
                             "--ramp-rate", "5000"])
        u, c = r["latency_us"]["uncorrected"], r["latency_us"]["corrected"]
        cpu = [w["cpu_percent"] for w in r["workers"]]
        print(f"open, 10k conns, target {rate:.0f}: achieved {r['rate']['achieved']:.0f}, "
              f"errors {sum(r['errors'].values())}, worker CPU {cpu}, server CPU "
              f"{r['server_cpu_percent']}%, uncorrected p50/p99 "
              f"{u['p50']}/{u['p99']} us, corrected p50/p99 {c['p50']}/{c['p99']} us, "
              f"loadgen limit: {'; '.join(r['limit']['reasons']) or 'no'}", flush=True)


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    sub = p.add_subparsers(dest="which", required=True)
    sub.add_parser("closed").add_argument("--repeat", type=int, default=3)
    sub.add_parser("open").add_argument("--rates", type=float, nargs="+",
                                        default=[5000, 10000, 15000])
    a = p.parse_args()
    closed(a.repeat) if a.which == "closed" else open_loop(a.rates)


if __name__ == "__main__":
    main()
