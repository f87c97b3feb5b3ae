"""Echo throughput and per-connection memory of server strategies, one sitting, pinned cores.

``python -m bench.echobench [--servers asyncio,goroutine:1,goroutine:2] [--connections 100]
[--size 64] [--duration 10] [--rate MSGS] [--repeat 3] [--idle-conns 10000]``

A server is ``NAME[:PROCS][@TREE]``: with ``@TREE``, the server and runtime of the git work
tree at TREE (through :mod:`bench.side`), e.g. ``goroutine:1@/tmp/before`` beside
``goroutine:1`` to compare two commits in one sitting.

Throughput: an echo client (bench/echoclient.c compiled with the machine's ``cc`` into a
temporary directory: a Python client on one core caps below the servers) with
``--connections`` connections of ``--size`` bytes, after a 2 s warm-up; closed loop, or with
``--rate`` open loop at that many messages per second in all. Server CPU per message is
the server's threads' CPU time (schedstat, nanoseconds) over the client's measure window,
divided by the echoes completed in it. The server is pinned to CPU ``--server-cpu``, the
client to ``--client-cpu``. Repeats are interleaved across servers so that a change in
machine load hits all of them; the median is reported.

Memory: a fresh server, its RSS idle, then ``tests/servers/tenk_client.py --hold`` opens
``--idle-conns`` connections and echoes once on each; RSS with all of them open; the slope
(RSS open - RSS idle) / connections.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import side

ROOT = Path(__file__).resolve().parents[1]
TENK = ROOT / "tests" / "servers" / "tenk_client.py"


@dataclass(frozen=True)
class EchoLoad:
    """What the compiled client offers: ``connections`` of ``size`` bytes, ``warmup`` s,
    then a ``duration`` s measure window; closed loop, or open loop at ``rate`` msg/s."""

    connections: int = 100
    size: int = 64
    warmup: float = 2.0
    duration: float = 10.0
    rate: float = 0.0


@dataclass(frozen=True)
class Pinning:
    """The CPU the server runs on and the CPU its client runs on."""

    server_cpu: int = 0
    client_cpu: int = 1


def _pin(cpu: int):
    def f() -> None:
        os.sched_setaffinity(0, {cpu})

    return f


def _raise_nofile() -> None:
    import resource

    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def compile_client(tmp: Path) -> Path:
    cc = shutil.which("cc") or shutil.which("gcc") or shutil.which("clang")
    if cc is None:
        raise SystemExit("echobench: no C compiler (cc) found")
    out = tmp / "echoclient"
    subprocess.run([cc, "-O2", "-o", str(out), str(ROOT / "bench" / "echoclient.c")],
                   check=True)
    return out


class Server:
    """A server ``NAME[:PROCS]`` pinned to ``cpu``; with ``root``, the tree at ``root``'s."""

    def __init__(self, spec: str, cpu: int, root: Path | None = None) -> None:
        name, _, procs = spec.partition(":")
        args = [name, "--port", "0", *(["--procs", procs] if procs else [])]
        argv = ([sys.executable, "-m", "servers", *args] if root is None
                else side.argv_for(root, "servers", *args))
        self.spec = spec

        def pre() -> None:
            _pin(cpu)()
            _raise_nofile()

        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE,
                                     stderr=subprocess.DEVNULL, preexec_fn=pre)
        line = self.proc.stdout.readline()
        try:
            self.port = json.loads(line)["port"]
        except (ValueError, KeyError):
            self.stop()
            raise SystemExit(f"echobench: {spec} printed no listening line: {line!r}") from None
        self.ps = psutil.Process(self.proc.pid)

    def rss(self) -> int:
        return self.ps.memory_info().rss

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


def cpu_ns(pid: int) -> int:
    """CPU time of ``pid``'s threads, nanoseconds (``/proc/PID/task/*/schedstat``: exact,
    where ``/proc/PID/stat`` counts 10 ms ticks). A thread that exits takes its time along:
    the servers' threads live as long as they do."""
    total = 0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            total += int((task / "schedstat").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            pass  # the thread exited meanwhile
    return total


def throughput(spec: str, load: EchoLoad, pins: Pinning, client: Path,
               root: Path | None = None) -> dict:
    """One run of ``client`` against a fresh server (``root``: see Server); closed loop, or
    open loop at ``load.rate`` msg/s. Server CPU is taken over the client's measure window."""
    srv = Server(spec, pins.server_cpu, root)
    try:
        cmd = [str(client), "127.0.0.1", str(srv.port), str(load.connections),
               str(load.size), str(load.warmup), str(load.duration), str(load.rate)]
        cl = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                              preexec_fn=_pin(pins.client_cpu))
        try:
            opened = cl.stdout.readline()
            cpu0 = cpu_ns(srv.proc.pid)
            line = cl.stdout.readline()
            cpu1 = cpu_ns(srv.proc.pid)
            _, err = cl.communicate(timeout=60)
        finally:
            if cl.poll() is None:
                cl.kill()
                cl.wait()
        if cl.returncode != 0 or opened.strip() != "measure":
            raise SystemExit(f"echobench: client failed against {spec}: {err.strip()}")
        res = json.loads(line)
        cpu_s = (cpu1 - cpu0) / 1e9
        res["server_cpu_s"] = round(cpu_s, 3)
        # Server CPU per echoed message in the window: what the server costs, even on a
        # machine so busy that the rate is limited by the CPU share the server gets.
        res["cpu_us_per_msg"] = round(cpu_s / max(1, res["messages"]) * 1e6, 2)
        res["threads"] = srv.ps.num_threads()
        return res
    finally:
        srv.stop()


def memory(spec: str, idle_conns: int, pins: Pinning, root: Path | None = None) -> dict:
    """RSS of a fresh server idle and with ``idle_conns`` connections open (each echoed once);
    the slope per connection."""
    srv = Server(spec, pins.server_cpu, root)
    try:
        time.sleep(0.5)
        idle = srv.rss()
        cl = subprocess.Popen([sys.executable, str(TENK), "--port", str(srv.port),
                               "--connections", str(idle_conns), "--hold"],
                              stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                              preexec_fn=_pin(pins.client_cpu))
        verified = None
        for line in cl.stdout:
            ev = json.loads(line)
            if ev["event"] == "verified":
                verified = ev
                break
            if ev["event"] == "error":
                break
        if verified is None:
            cl.kill()
            cl.wait()
            raise SystemExit(f"echobench: 10k client failed against {spec}")
        time.sleep(0.5)
        full = srv.rss()
        fds = srv.ps.num_fds()
        cl.stdin.write("\n")
        cl.stdin.flush()
        cl.wait(60)
        return {"rss_idle_kib": idle // 1024, "rss_open_kib": full // 1024, "fds": fds,
                "kib_per_conn": round((full - idle) / idle_conns / 1024, 2)}
    finally:
        srv.stop()


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.echobench")
    ap.add_argument("--servers", default="asyncio,goroutine:1,goroutine:2")
    ap.add_argument("--connections", type=int, default=100)
    ap.add_argument("--size", type=int, default=64)
    ap.add_argument("--warmup", type=float, default=2.0)
    ap.add_argument("--duration", type=float, default=10.0)
    ap.add_argument("--rate", type=float, default=0.0,
                    help="open loop at this many msg/s in all (default: closed loop)")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--idle-conns", type=int, default=10000)
    ap.add_argument("--server-cpu", type=int, default=0)
    ap.add_argument("--client-cpu", type=int, default=1)
    ap.add_argument("--skip-memory", action="store_true")
    args = ap.parse_args(argv)
    specs = [s for s in args.servers.split(",") if s]
    load = EchoLoad(args.connections, args.size, args.warmup, args.duration, args.rate)
    pins = Pinning(args.server_cpu, args.client_cpu)
    from tabulate import tabulate

    with tempfile.TemporaryDirectory() as tmp:
        client = compile_client(Path(tmp))
        rates: dict[str, list[float]] = {s: [] for s in specs}
        cpu: dict[str, list[float]] = {s: [] for s in specs}
        loadavg = os.getloadavg()[0]
        for i in range(args.repeat):
            for s in specs:
                spec, _, tree = s.partition("@")
                res = throughput(spec, load, pins, client, Path(tree) if tree else None)
                rates[s].append(res["rate"])
                cpu[s].append(res["cpu_us_per_msg"])
                print(f"[{i}] {s}: {res['rate']:.0f} msgs/s, server cpu {res['server_cpu_s']}s ="
                      f" {res['cpu_us_per_msg']} us/msg, threads {res['threads']}",
                      file=sys.stderr, flush=True)
        mem = {}
        if not args.skip_memory:
            for s in specs:
                spec, _, tree = s.partition("@")
                mem[s] = memory(spec, args.idle_conns, pins, Path(tree) if tree else None)
                print(f"{s}: {mem[s]}", file=sys.stderr, flush=True)
    base = statistics.median(rates[specs[0]])
    cbase = statistics.median(cpu[specs[0]])
    rows = []
    for s in specs:
        med = statistics.median(rates[s])
        m = mem.get(s, {})
        cmed = statistics.median(cpu[s])
        rows.append([s, f"{med:.0f}", " ".join(f"{r:.0f}" for r in rates[s]),
                     f"{med / base:.2f}x", f"{cmed:.1f}", f"{cbase / cmed:.2f}x",
                     m.get("rss_idle_kib", "-"), m.get("rss_open_kib", "-"),
                     m.get("kib_per_conn", "-")])
    print(f"client=bench/echoclient.c connections={args.connections} size={args.size} "
          f"{f'open loop at {args.rate:g} msg/s' if args.rate else 'closed loop'} "
          f"duration={args.duration}s repeat={args.repeat} server-cpu={args.server_cpu} "
          f"client-cpu={args.client_cpu} idle-conns={args.idle_conns} "
          f"loadavg-at-start={loadavg:.1f}")
    print(tabulate(rows, headers=["server", "msgs/s median", "runs", f"vs {specs[0]}",
                                  "cpu us/msg", f"efficiency vs {specs[0]}",
                                  "RSS idle KiB", "RSS open KiB", "KiB/conn"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
