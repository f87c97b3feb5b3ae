"""One bench case: a fresh server, the loadgen against it, sampling, and the record of it.

A case never raises for anything the server or the loadgen does: every outcome becomes a
``status`` ("ok", "failed: …", "aborted: …") so the run goes on with the next case. Only
Ctrl-C (KeyboardInterrupt) escapes, after the server and loadgen have been stopped.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shlex
import statistics
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import matrix, netstat
from bench.guard import MemoryGuard
from bench.progress import Progress
from bench.sampler import LARGE_TREE, Sampler, footprint
from bench.server_proc import Child, ServerStartError, wait_listening
from results import schema

ROOT = Path(__file__).resolve().parent.parent
LISTEN_TIMEOUT = 30.0
POLL = 0.25


def server_argv(cfg: dict, strategy: str) -> list[str]:
    if strategy == matrix.EXTERNAL:
        return shlex.split(cfg["server_cmd"])
    argv = [sys.executable, "-m", "servers", strategy, "--host", "127.0.0.1", "--port", "0"]
    if cfg["backlog"]:
        argv += ["--backlog", str(cfg["backlog"])]
    if cfg["procs"] and strategy == "goroutine":
        argv += ["--procs", str(cfg["procs"])]
    return argv


def loadgen_argv(cfg: dict, key: dict, port: int, json_out: Path) -> list[str]:
    n = key["connections"]
    argv = [
        sys.executable, "-m", "loadgen",
        "--host", "127.0.0.1", "--port", str(port),
        "--connections", str(n),
        "--size", str(key["size"]),
        "--duration", f"{cfg['duration']:g}",
        "--warmup", f"{cfg['warmup']:g}",
        "--mode", key["mode"],
        "--conn-mode", key["conn_mode"],
        "--timeout", f"{cfg['timeout']:g}",
        "--seed", str(cfg["seed"] + key["repeat"]),
        "--ramp-timeout", f"{matrix.ramp_timeout(cfg, n):g}",
        "--json-out", str(json_out),
        "--progress", "json",
    ]  # fmt: skip
    if key["rate"] is not None:
        argv += ["--rate", f"{key['rate']:g}"]
    if cfg["workers"]:
        argv += ["--workers", str(cfg["workers"])]
    if cfg["ramp_rate"]:
        argv += ["--ramp-rate", f"{cfg['ramp_rate']:g}"]
    return argv


def pin_plan(cfg: dict) -> dict | None:
    """With ``--pin``: the server on the first half of our CPUs, loadgen and sampler on the rest."""
    if not cfg["pin"]:
        return None
    cpus = sorted(os.sched_getaffinity(0))
    if len(cpus) < 2:
        return None
    half = len(cpus) // 2
    return {"server": cpus[:half], "loadgen": cpus[half:], "sampler": cpus[half:]}


class ProgressReader:
    """Follows the loadgen's stderr file: ``--progress json`` lines and the other lines."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.last: dict = {}
        self.phase_seen: dict[str, float] = {}  # phase -> monotonic time first seen
        self.other: list[str] = []

    def poll(self) -> None:
        try:
            with open(self.path, "rb") as f:
                f.seek(self.offset)
                data = f.read()
        except OSError:
            return
        self.offset += len(data)
        lines = (self.partial + data).split(b"\n")
        self.partial = lines.pop()
        now = time.monotonic()
        for raw in lines:
            line = raw.decode(errors="replace").strip()
            if not line:
                continue
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if isinstance(event, dict) and event.get("event") == "progress":
                self.last = event
                self.phase_seen.setdefault(str(event.get("phase")), now)
            else:
                self.other = [*self.other[-20:], line]


def _window(series: list[dict], w0: float, w1: float) -> list[dict]:
    """The samples inside [w0, w1]; if none (slow ticks), the one nearest the window."""
    inside = [r for r in series if w0 <= r["t"] <= w1]
    if inside or not series:
        return inside
    if w1 == float("inf"):
        return series
    mid = (w0 + w1) / 2
    return [min(series, key=lambda r: abs(r["t"] - mid))]


def _load_footprint(series: list[dict], w0: float, w1: float, idle: dict) -> dict:
    """Median of each figure over the samples of the measure window [w0, w1].

    A throttled figure (PSS, USS, fds) with no reading inside the window takes the last
    reading before its end, else the first after it, else the idle value.
    """
    window = _window(series, w0, w1)
    out = {}
    for k in ("rss", "pss", "uss", "threads", "procs", "fds"):
        values = [r[k] for r in window if r.get(k) is not None]
        if not values:
            before = [r[k] for r in series if r["t"] <= w1 and r.get(k) is not None]
            after = [r[k] for r in series if r["t"] > w1 and r.get(k) is not None]
            values = before[-1:] or after[:1]
        out[k] = int(statistics.median(values)) if values else idle.get(k)
    return out


def _cpu_between(series: list[dict], t0: float, t1: float) -> float | None:
    """Server CPU use (cores) over [t0, t1] of the case clock, from the cumulative series.

    From the first to the last sample inside the window; with fewer than two inside (slow
    ticks), from the last sample before it to the first after it.
    """
    if not series:
        return None
    inside = [r for r in series if t0 <= r["t"] <= t1]
    if len(inside) >= 2:
        a, b = inside[0], inside[-1]
    else:
        before = [r for r in series if r["t"] <= t0] or series[:1]
        after = [r for r in series if r["t"] >= t1] or series[-1:]
        a, b = before[-1], after[0]
    if b["t"] <= a["t"]:
        return None
    return (b["cpu_s"] - a["cpu_s"]) / (b["t"] - a["t"])


def summary_line(case: dict) -> str:
    """The one line printed after a case: its outcome and headline figures."""
    key = case["key"]
    label = (
        f"{key['strategy']} c={key['connections']} "
        f"{'closed' if key['mode'] == 'closed' else format(key['rate'], 'g') + '/s'}"
    )
    if case["status"] != "ok":
        return f"{label}: {case['status']}"
    lg = case["loadgen"]
    p99 = lg["latency_us"]["corrected"]["p99"] / 1000
    errors = sum(lg["errors"].values()) + sum(lg["connect_errors"].values())
    cpu = case["cpu_s_per_1k_msgs"]
    mpc = case["mem_per_conn"]["bytes"]
    bits = [
        f"{lg['rate']['achieved']:,.0f} msg/s",
        f"p99 {p99:.2f} ms",
        f"err {errors}",
        f"starved {lg['fairness']['starved']}",
        f"cpu {cpu:.3f} s/1k" if cpu is not None else "cpu -",
        f"rss {case['server']['load']['rss'] / 2**20:.0f} MiB",
        f"{mpc / 1024:.1f} KiB/conn ({case['mem_per_conn']['metric']})",
    ]
    if lg["saturated"]:
        bits.append("SATURATED")
    if case["defects"]:
        bits.append(f"{len(case['defects'])} defect(s)")
    return f"{label}: ok | " + " | ".join(bits)


def run_case(cfg: dict, key: dict, progress: Progress) -> dict:
    """Run one case and return its record (see results/SCHEMA.md). Ctrl-C propagates."""
    started = dt.datetime.now(dt.UTC).isoformat(timespec="seconds")
    t0 = time.monotonic()
    pins = pin_plan(cfg)
    argv = server_argv(cfg, key["strategy"])
    case: dict = {
        "key": key,
        "status": "ok",
        "started": started,
        "duration_s": 0.0,
        "server_cmd": argv,
        "pin": pins,
        "loadgen": None,
        "loadgen_proc": None,
        "server": None,
        "cpu_s_per_1k_msgs": None,
        "mem_per_conn": {"metric": "rss", "bytes": None, "connections": None},
        "machine_mem": None,
        "netstat": dict.fromkeys(netstat.FIELDS),
        "defects": [],
        "notes": [],
    }
    guard = MemoryGuard(cfg["mem_floor"], cfg["mem_budget"])
    parts: dict = {}
    with tempfile.TemporaryDirectory(prefix="c10k-case-") as tmp:
        workdir = Path(tmp)
        try:
            _drive(cfg, key, case, progress, workdir, guard, pins, argv, t0, parts)
        finally:
            server, loadgen, sampler = (parts.get(k) for k in ("server", "loadgen", "sampler"))
            if sampler is not None and sampler.is_alive():
                sampler.stop()
            if loadgen is not None and loadgen.poll() is None:
                loadgen.kill()
            if server is not None and server.poll() is None and sys.exc_info()[0] is not None:
                server.kill()  # interrupted: no measurement to finish, just leave nothing behind
        if server is not None:
            try:
                case["defects"] += server.stop()
            except BaseException:
                server.kill()
                raise
            if case["server"] is not None:
                case["server"]["exit"] = server.exit_info()
    case["machine_mem"] = guard.summary()
    case["duration_s"] = round(time.monotonic() - t0, 3)
    return case


def _drive(cfg, key, case, progress, workdir, guard, pins, argv, t0, parts) -> None:
    """The body of :func:`run_case`; ``parts`` collects the children for its cleanup."""
    try:
        server = Child(
            argv, workdir, "server", pins and pins["server"],
            cwd=None if key["strategy"] == matrix.EXTERNAL else ROOT,
        )  # fmt: skip
    except OSError as e:
        case["status"] = f"failed: server did not start ({e.strerror or e}: {argv[0]})"
        return
    parts["server"] = server
    try:
        listening = wait_listening(server, LISTEN_TIMEOUT)
    except ServerStartError as e:
        case["status"] = f"failed: {e}"
        return
    time.sleep(0.3)  # let the server settle before its idle footprint
    fp = footprint(server.pid)
    idle = {k: fp[k] for k in ("rss", "pss", "uss", "threads", "procs", "fds")}
    net_before = netstat.read()
    guard.available_before = guard.available_min = int(psutil.virtual_memory().available)
    sampler = Sampler(server.pid, guard, t0, pins and pins["sampler"])
    parts["sampler"] = sampler
    sampler.start()

    json_out = workdir / "loadgen.json"
    lg_argv = loadgen_argv(cfg, key, listening["port"], json_out)
    loadgen = Child(lg_argv, workdir, "loadgen", pins and pins["loadgen"], cwd=ROOT)
    parts["loadgen"] = loadgen
    sampler.loadgen_pid = loadgen.pid
    reader = ProgressReader(loadgen.stderr_path)
    limit = matrix.case_time_limit(cfg, key["connections"])
    lg_end = None
    measuring = drained = False
    while True:
        reader.poll()
        if "measure" in reader.phase_seen and not measuring:
            measuring = True
            sampler.request_full()
        if "drain" in reader.phase_seen and not drained:
            drained = True
            sampler.request_tick()
        last = reader.last
        progress.update(last.get("phase", "starting"), last.get("rate"), last.get("errors"),
                        last.get("connected"))
        if loadgen.poll() is not None:
            lg_end = time.monotonic()
            break
        if server.poll() is not None:
            case["status"] = f"failed: server exited ({server.describe_exit()})"
            tail = server.stderr_tail()
            if tail:
                case["notes"].append(f"server stderr: {tail[-300:]}")
            break
        # Checked here too, every poll: a slow sampler tick (thousands of processes) must
        # not delay the guard.
        if guard.check(int(psutil.virtual_memory().available)) or sampler.tripped.is_set():
            case["status"] = f"aborted: memory guard ({guard.reason})"
            break
        if time.monotonic() - t0 > limit:
            case["status"] = f"aborted: time limit ({limit:g} s)"
            break
        time.sleep(POLL)
    reader.poll()
    if loadgen.poll() is None:
        loadgen.kill()
        lg_end = time.monotonic()
    sampler.stop()
    case["netstat"] = netstat.delta(net_before, netstat.read())
    if case["status"] == "ok" and server.poll() is not None:
        case["status"] = f"failed: server exited ({server.describe_exit()})"
    if case["status"] == "ok":
        case["loadgen"] = _loadgen_result(case, loadgen, json_out, reader)
    _fill_server(case, key, server, sampler, idle, reader, t0, lg_end)
    tail = server.stderr_tail(3)
    if tail and not any(n.startswith("server stderr") for n in case["notes"]):
        case["notes"].append(f"server stderr: {tail[-300:]}")


def _loadgen_result(case: dict, loadgen: Child, json_out: Path, reader: ProgressReader):
    rc = loadgen.poll()
    tail = reader.other[-1] if reader.other else loadgen.stderr_tail()
    if rc != 0:
        what = "rejected its arguments" if rc == 2 else f"exited ({loadgen.describe_exit()})"
        case["status"] = f"failed: loadgen {what}" + (f": {tail[:300]}" if tail else "")
        if len(reader.other) > 1:  # what led up to it (workers going missing, say)
            case["notes"].append("loadgen stderr: " + " | ".join(reader.other[-8:-1])[-1500:])
        return None
    try:
        result = json.loads(json_out.read_text())
        schema.check(result, schema.LOADGEN, "loadgen")
    except (OSError, json.JSONDecodeError, schema.SchemaError) as e:
        case["status"] = f"failed: loadgen result unusable ({str(e)[:200]})"
        return None
    return result


def _fill_server(case, key, server, sampler, idle, reader, t0, lg_end) -> None:
    series = sampler.series
    measure_start = reader.phase_seen.get("measure")
    measure_end = reader.phase_seen.get("drain") or lg_end
    if measure_start is not None and measure_end is not None:
        # Progress lines arrive once a second: widen the start back by one line's period
        # and stop half a second early, so the window lies inside the measure phase.
        w0, w1 = measure_start - t0 - 1.0, measure_end - t0 - 0.5
    else:
        w0, w1 = -1.0, float("inf")
        if case["status"] == "ok":
            case["notes"].append("loadgen gave no measure phase: load window = whole case")
    load = _load_footprint(series, w0, w1, idle)
    cpu_util = _cpu_between(series, w0, w1)
    if cpu_util is None and len(series) >= 2:
        cpu_util = _cpu_between(series, series[0]["t"], series[-1]["t"])
    lg = case["loadgen"]
    if lg is not None and cpu_util is not None and lg["messages"] > 0:
        case["cpu_s_per_1k_msgs"] = round(cpu_util * lg["measure_s"] / lg["messages"] * 1000, 6)
    multi = sampler.peak["procs"] > 1 or key["strategy"] == "fork"
    has_pss = load.get("pss") is not None and idle.get("pss") is not None
    metric = "pss" if multi and has_pss else "rss"
    if lg is not None:
        # Connections the server actually holds: a connection still waiting in the accept
        # queue (a fork server at 10,000 forks only so fast) costs the server nothing yet.
        c = lg["connections"]
        n = c["served"] or c["connected"] or key["connections"]
        per_conn = round((load[metric] - idle[metric]) / n, 1)
        case["mem_per_conn"] = {"metric": metric, "bytes": per_conn, "connections": n}
    else:
        case["mem_per_conn"] = {"metric": metric, "bytes": None, "connections": None}
    slow_smaps = sampler.smaps_interval_max and sampler.smaps_interval_max > 2 * sampler.interval
    if slow_smaps and sampler.peak["procs"] > LARGE_TREE:
        case["notes"].append(
            f"PSS/USS/fds throttled: read every {sampler.smaps_interval_max:.1f} s at most "
            f"(smaps of {sampler.peak['procs']} processes is slow); RSS and CPU every tick"
        )
    gaps = [b["t"] - a["t"] for a, b in zip(series, series[1:], strict=False)]
    if gaps and max(gaps) > 2 * sampler.interval:
        case["notes"].append(
            f"sampling slowed to one tick per {max(gaps):.2f} s at worst "
            f"({sampler.peak['procs']} processes, {sampler.peak['threads']} threads)"
        )
    duration = max(1e-9, (series[-1]["t"] - series[0]["t"]) if len(series) >= 2 else 1e-9)
    case["server"] = {
        "pid": server.pid,
        "idle": idle,
        "load": load,
        "peak": dict(sampler.peak),
        "cpu_s": round(sampler.cpu_s, 4),
        "cpu_percent": round(100 * (cpu_util if cpu_util is not None else
                                    (series[-1]["cpu_s"] - series[0]["cpu_s"]) / duration
                                    if len(series) >= 2 else 0.0), 2),
        "ctx_switches": dict(sampler.ctx),
        "smaps_interval_s": round(sampler.smaps_interval_max, 3)
        if sampler.smaps_interval_max else None,
        "samples": len(series),
        "series": series,
        "exit": {"code": None, "signal": None},
    }
    case["loadgen_proc"] = {
        "cpu_s": round(sampler.loadgen_cpu_s, 4),
        "peak_rss": int(sampler.loadgen_peak_rss),
    }
