"""One bench case: a fresh server, the loadgen against it, the measurement, and its record.

A :class:`Case` runs in four steps: :meth:`~Case.start` (server in a cgroup of its own,
its idle footprint, the samplers, the loadgen), :meth:`~Case.watch` (progress, the memory
guard, the time limit, either side exiting), :meth:`~Case.collect` (figures over the
loadgen's exact measure window, the invariants, the verdict) and :meth:`~Case.stop`
(everything it started is gone, whatever happened before).

Figures are taken over the measure window the loadgen reports on ``time.monotonic()``'s
clock: server and loadgen CPU interpolated between readings at most
:data:`bench.cpumeter.PERIOD` apart around each end, memory as the median of the samples
strictly inside. A figure that breaks an invariant (CPU above the CPUs the process may
use, message counts that disagree, more served than connected) is recorded as a
measurement defect beside it, and reports flag it. A case never raises for anything the
server or the loadgen does: every outcome becomes a ``status`` and a ``verdict``; only
Ctrl-C (KeyboardInterrupt) escapes, after everything started has been stopped.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import shlex
import shutil
import signal
import socket
import statistics
import sys
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import psutil

from bench import cgroup, matrix, netstat
from bench.cpumeter import Counter, CpuMeter, Interval
from bench.guard import MemoryGuard
from bench.progress import Progress
from bench.sampler import LARGE_TREE, Sampler, footprint
from bench.server_proc import Child, ServerStartError, wait_listening
from common.host import boot_id
from common.proc import with_parent_death
from loadgen.config import EXIT_FAILED, EXIT_WORKER_LOST
from results import schema, verdict
from results.cases import CaseKey

ROOT = Path(__file__).resolve().parent.parent
POLL = 0.25
# A CPU reading may exceed the CPUs the process may use by this factor (the kernel's
# accounting and the interpolation at the window's ends) before it is a defect.
CPU_TOLERANCE = 1.05
FOOTPRINT_KEYS = ("rss", "pss", "uss", "threads", "procs", "fds")
TMP_PREFIX = "c10k-case-"


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on now (the kernel's pick), for an external server."""
    with socket.socket() as s:
        s.bind((host, 0))
        return s.getsockname()[1]


def server_argv(cfg: dict, strategy: str, port: int | None = None) -> list[str]:
    """The server's command line: a built-in strategy, or an external one by name with
    ``{host}`` and ``{port}`` filled in (split with :func:`shlex.split`, never a shell)."""
    externals = cfg["server_cmd"] or {}
    if strategy in externals:
        return [a.replace("{host}", cfg["server_host"]).replace("{port}", str(port))
                for a in shlex.split(externals[strategy])]
    argv = [sys.executable, "-m", "servers", strategy, "--host", cfg["server_host"],
            "--port", "0"]
    if cfg["backlog"]:
        argv += ["--backlog", str(cfg["backlog"])]
    if cfg["procs"] and strategy == "goroutine":
        argv += ["--procs", str(cfg["procs"])]
    return argv


def loadgen_argv(cfg: dict, key: CaseKey, listening: dict, json_out: Path) -> list[str]:
    """The loadgen's command line; it dials the address the server reported (``listening``),
    or ``server_host`` where the server names none or a wildcard."""
    n = key.connections
    host = listening.get("host")
    if host in (None, "", "0.0.0.0", "::", "*"):
        host = cfg["server_host"]
    argv = [
        sys.executable, "-m", "loadgen",
        "--host", host, "--port", str(listening["port"]),
        "--connections", str(n),
        "--size", str(key.size),
        "--duration", f"{cfg['duration']:g}",
        "--warmup", f"{cfg['warmup']:g}",
        "--mode", key.mode,
        "--conn-mode", key.conn_mode,
        "--timeout", f"{cfg['timeout']:g}",
        "--seed", str(cfg["seed"] + (key.repeat or 0)),
        "--ramp-timeout", f"{matrix.ramp_timeout(cfg, n):g}",
        "--json-out", str(json_out),
        "--progress", "json",
    ]  # fmt: skip
    if key.rate is not None:
        argv += ["--rate", f"{key.rate:g}"]
    if cfg["workers"] is not None:
        argv += ["--workers", str(cfg["workers"])]
    if cfg["remote_workers"]:
        argv += ["--remote-workers", str(cfg["remote_workers"])]
    if cfg["master_bind"]:
        argv += ["--master-bind", cfg["master_bind"]]
    argv += ["--join-timeout", f"{cfg['join_timeout']:g}"]
    if cfg["ramp_rate"]:
        argv += ["--ramp-rate", f"{cfg['ramp_rate']:g}"]
    return argv


class ProgressReader:
    """Follows the loadgen's stderr file: ``--progress json`` lines and the other lines."""

    def __init__(self, path: Path):
        self.path = path
        self.offset = 0
        self.partial = b""
        self.last: dict = {}
        self.phases: set[str] = set()
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
                self.phases.add(str(event.get("phase")))
            elif isinstance(event, dict) and event.get("event") == "waiting_for_workers":
                continue  # the master's announcement, not a line that explains a failure
            else:
                self.other = [*self.other[-20:], line]


def load_footprint(series: list[dict], w0: float, w1: float) -> dict:
    """Median of each figure over the samples strictly inside ``(w0, w1)``; ``None`` for a
    figure with no reading there (PSS, USS and fds are throttled for large trees)."""
    inside = [r for r in series if w0 < r["t"] < w1]
    out = {}
    for k in FOOTPRINT_KEYS:
        values = [r[k] for r in inside if r.get(k) is not None]
        out[k] = int(statistics.median(values)) if values else None
    return out


def summary_line(case: dict) -> str:
    """The one line printed after a case: its verdict and headline figures."""
    key = CaseKey.from_dict(case["key"])
    v = case["verdict"]
    head = f"{key.group.label}: {v['kind']}"
    if case["loadgen"] is None:
        return f"{head} ({v['reason']})"
    lg = case["loadgen"]
    cpu = (case["cpu"] or {}).get("server") or {}
    bits = [
        f"{verdict.throughput(case)} msg/s",
        f"p99 {lg['latency_us']['corrected']['p99'] / 1000:.2f} ms",
        f"err {sum(lg['errors'].values()) + sum(lg['connect_errors'].values())}",
        f"starved {lg['fairness']['starved']}",
    ]
    if cpu.get("cores") is not None:
        bits.append(f"cpu {100 * cpu['cores']:.0f}% of {cpu['limit_cores']:g}")
    if case["cpu_s_per_1k_msgs"] is not None:
        bits.append(f"{case['cpu_s_per_1k_msgs']:.3f} cpu s/1k msg")
    mpc = case["mem_per_conn"]
    if mpc["bytes"] is not None:
        bits.append(f"{mpc['bytes'] / 1024:.1f} KiB/conn ({mpc['metric']})")
    if v["kind"] != "held":
        bits.append(v["reason"])
    if case["measurement_defects"]:
        bits.append(f"MEASUREMENT DEFECT: {'; '.join(case['measurement_defects'])}")
    if case["defects"]:
        bits.append(f"{len(case['defects'])} defect(s)")
    return f"{head} | " + " | ".join(bits)


def new_record(key: CaseKey, argv: list[str], pins: dict) -> dict:
    """A case record with nothing measured yet (see results/SCHEMA.md)."""
    return {
        "key": key.to_dict(),
        "status": "ok",
        "verdict": {"kind": "failed", "reason": "not run"},
        "started": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "duration_s": 0.0,
        "server_cmd": argv,
        "pin": pins,
        "window": None,
        "cpu": {"server": None, "loadgen": None, "series": {"server": [], "loadgen": []}},
        "loadgen": None,
        "loadgen_proc": None,
        "server": None,
        "cpu_s_per_1k_msgs": None,
        "mem_per_conn": {"metric": "rss", "bytes": None, "connections": None},
        "machine_mem": None,
        "netstat": dict.fromkeys(netstat.FIELDS),
        "defects": [],
        "measurement_defects": [],
        "notes": [],
    }


@dataclass
class Case:
    """One case of a run: the children it starts and the record it fills.

    Invariant: every child in ``server``/``loadgen`` and every group in ``groups`` is
    stopped and removed by :meth:`stop`, which :meth:`run` always calls.
    """

    cfg: dict
    key: CaseKey
    progress: Progress
    t0: float = field(default_factory=time.monotonic)
    workdir: Path = Path(".")
    guard: MemoryGuard | None = None
    server: Child | None = None
    loadgen: Child | None = None
    sampler: Sampler | None = None
    meter: CpuMeter | None = None
    groups: dict[str, cgroup.Group] = field(default_factory=dict)
    idle: dict = field(default_factory=dict)
    net_before: dict = field(default_factory=dict)
    record: dict = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.pins = matrix.cpu_plan(self.cfg["pin"])
        external = (self.cfg["server_cmd"] or {}).get(self.key.strategy)
        self.external_port = free_port() if external and "{port}" in external else None
        self.argv = server_argv(self.cfg, self.key.strategy, self.external_port)
        self.record = new_record(self.key, self.argv, self.pins if self.cfg["pin"] else None)
        self.guard = MemoryGuard(self.cfg["mem_floor"], self.cfg["mem_budget"])

    # -- the steps

    def run(self) -> dict:
        """Run the case and return its record. Ctrl-C propagates after :meth:`stop`, which
        a second Ctrl-C (or SIGTERM, SIGHUP) cannot cut short."""
        with tempfile.TemporaryDirectory(prefix=f"{TMP_PREFIX}{cgroup.owner_tag()}-") as tmp:
            self.workdir = Path(tmp)
            interrupted = True
            try:
                if self.start():
                    self.watch()
                    self.collect()
                interrupted = False
            finally:
                with deferred_signals() as pending:
                    self.stop(interrupted)
                if pending and not interrupted:
                    raise KeyboardInterrupt
        self.record["verdict"] = verdict.judge(self.record, verdict.SLO.from_config(self.cfg))
        self.record["machine_mem"] = self.guard.summary()
        self.record["duration_s"] = round(time.monotonic() - self.t0, 3)
        return self.record

    def start(self) -> bool:
        """Server, idle footprint, samplers, loadgen; ``False`` (status set) on failure."""
        rec = self.record
        self.meter = CpuMeter(self.t0, self.pins["sampler"] if self.cfg["pin"] else None)
        try:
            builtin = self.key.strategy in matrix.STRATEGIES
            self.server = Child(with_parent_death(self.argv), self.workdir, "server",
                                self._cpus("server"), cwd=ROOT if builtin else None)
        except OSError as e:
            rec["status"] = f"failed: server did not start ({e.strerror or e}: {self.argv[0]})"
            return False
        self._account("server", self.server.pid, self.cfg["server_cpu_quota"])
        try:
            listening = wait_listening(self.server, self.cfg["ready_timeout"],
                                       self.external_port)
        except ServerStartError as e:
            rec["status"] = f"failed: {e}"
            return False
        time.sleep(0.3)  # let the server settle before its idle footprint
        fp = footprint(self.server.pid)
        self.idle = {k: fp[k] for k in FOOTPRINT_KEYS}
        self.net_before = netstat.read()
        self.guard.available_before = self.guard.available_min = int(
            psutil.virtual_memory().available)
        self.sampler = Sampler(self.server.pid, self.guard, self.t0, self._cpus("sampler"))
        self.sampler.start()
        self.meter.start()

        json_out = self.workdir / "loadgen.json"
        lg_argv = loadgen_argv(self.cfg, self.key, listening, json_out)
        self.loadgen = Child(with_parent_death(lg_argv), self.workdir, "loadgen",
                             self._cpus("loadgen"), cwd=ROOT)
        self._account("loadgen", self.loadgen.pid, None)
        self.sampler.loadgen_pid = self.loadgen.pid
        return True

    def watch(self) -> None:
        """Follow the loadgen until it exits, or end the case on a server exit, the memory
        guard or the time limit (status set)."""
        rec, server, loadgen = self.record, self.server, self.loadgen
        reader = self.reader = ProgressReader(loadgen.stderr_path)
        limit = matrix.case_time_limit(self.cfg, self.key.connections)
        measuring = drained = False
        while True:
            reader.poll()
            if "measure" in reader.phases and not measuring:
                measuring = True
                self.sampler.request_full()
            if "drain" in reader.phases and not drained:
                drained = True
                self.sampler.request_tick()
            last = reader.last
            self.progress.update(last.get("phase", "starting"), last.get("rate"),
                                 last.get("errors"), last.get("connected"))
            if loadgen.poll() is not None:
                break
            if server.poll() is not None:
                rec["status"] = f"failed: server exited ({server.describe_exit()})"
                break
            # Checked here too, every poll: a slow sampler tick (thousands of processes)
            # must not delay the guard.
            if self.guard.check(int(psutil.virtual_memory().available)) or \
                    self.sampler.tripped.is_set():
                rec["status"] = f"aborted: memory guard ({self.guard.reason})"
                break
            if time.monotonic() - self.t0 > limit:
                rec["status"] = f"aborted: time limit ({limit:g} s)"
                break
            time.sleep(POLL)
        reader.poll()
        if loadgen.poll() is None:
            loadgen.kill()
        self.sampler.stop()
        self.meter.stop()
        rec["netstat"] = netstat.delta(self.net_before, netstat.read())
        if rec["status"] == "ok" and server.poll() is not None:
            rec["status"] = f"failed: server exited ({server.describe_exit()})"

    def collect(self) -> None:
        """The loadgen's result, figures over its window, invariants; the server block."""
        rec = self.record
        if rec["status"] == "ok":
            rec["loadgen"] = self._loadgen_result()
        window = self._window()
        if window is not None:
            rec["window"] = {"start": round(window[0], 4), "end": round(window[1], 4)}
            rec["cpu"]["server"] = self._cpu("server", window, matrix.server_cpu_limit(self.cfg))
            rec["cpu"]["loadgen"] = self._cpu("loadgen", window,
                                              float(len(self.pins["loadgen"])))
        rec["cpu"]["series"] = {k: self.meter.series(k) for k in ("server", "loadgen")}
        load = load_footprint(self.sampler.series, *window) if window else dict.fromkeys(
            FOOTPRINT_KEYS)
        self._fill_server(load)
        self._fill_figures(load)
        rec["measurement_defects"] += self._invariants()

    def stop(self, interrupted: bool) -> None:
        """Stop and reap everything this case started; record what misbehaved."""
        rec = self.record
        for part in (self.sampler, self.meter):
            if part is not None and part.is_alive():
                part.stop()
        if self.loadgen is not None and self.loadgen.poll() is None:
            self.loadgen.kill()
        if self.server is not None:
            if interrupted:
                self.server.kill()  # no measurement to finish, just leave nothing behind
            else:
                rec["defects"] += self.server.stop()
            if rec["server"] is not None:
                rec["server"]["exit"] = self.server.exit_info()
            tail = self.server.stderr_tail(3)
            if tail and (rec["status"] != "ok" or self.server.exit_info()["code"]):
                rec["notes"].append(f"server stderr: {tail[-300:]}")
        for name, group in self.groups.items():
            left = group.close()
            if left and not interrupted:
                rec["defects"].append(f"{len(left)} process(es) of the {name} still in its "
                                      "cgroup after it exited: killed")
        self.groups.clear()

    # -- pieces

    def _cpus(self, role: str) -> list[int] | None:
        return self.pins[role] if self.cfg["pin"] else None

    def _account(self, role: str, pid: int, quota: float | None) -> None:
        """Put ``pid``'s tree in a cgroup of its own (CPU counted exactly there), or fall
        back to summing ``/proc`` over its tree."""
        group, why = cgroup.open_group(f"{role}", quota)
        if group is not None:
            try:
                group.add(pid)
                self.groups[role] = group
                self.meter.watch(role, Counter(group.cpu_s, "cgroup"))
                if group.cpu_stall_s() is not None:
                    self.meter.watch(f"{role}_stall", Counter(group.cpu_stall_s, "cgroup"))
                return
            except OSError as e:
                group.close()
                why = f"cannot join a cgroup ({e.strerror or e})"
        self.meter.watch(role, Counter.of_tree(pid))
        if role == "server":
            self.record["notes"].append(f"CPU from /proc tree sampling: {why}")

    def _loadgen_result(self) -> dict | None:
        rec, loadgen, reader = self.record, self.loadgen, self.reader
        rc = loadgen.poll()
        tail = reader.other[-1] if reader.other else loadgen.stderr_tail()
        if rc == EXIT_WORKER_LOST:
            result = self._read_result()
            lost = (result or {}).get("lost_workers") or [{}]
            w = lost[0]
            rec["status"] = (f"failed: worker lost ({w.get('host', '?')} {w.get('address', '')} "
                             f"pid {w.get('pid', '?')}, at t={w.get('at', self.t0) - self.t0:.1f}"
                             f" s, {w.get('phase', '?')})")
            if result is not None:
                rec["notes"].append("the survivors' figures are kept in loadgen for inspection")
            return result
        if rc == EXIT_FAILED and (result := self._read_result()) is not None:
            return result  # no connection established: the result says so, the verdict too
        if rc != 0:
            what = "rejected its arguments" if rc == 2 else f"exited ({loadgen.describe_exit()})"
            rec["status"] = f"failed: loadgen {what}" + (f": {tail[:300]}" if tail else "")
            if len(reader.other) > 1:  # what led up to it (workers going missing, say)
                rec["notes"].append("loadgen stderr: " + " | ".join(reader.other[-8:-1])[-1500:])
            return None
        try:
            return self._read_result(strict=True)
        except (OSError, json.JSONDecodeError, schema.SchemaError) as e:
            rec["status"] = f"failed: loadgen result unusable ({str(e)[:200]})"
            return None

    def _read_result(self, strict: bool = False) -> dict | None:
        """The loadgen's result file (``None`` if missing or invalid, unless ``strict``)."""
        try:
            result = json.loads((self.workdir / "loadgen.json").read_text())
            schema.check(result, schema.LOADGEN, "loadgen")
            return result
        except (OSError, json.JSONDecodeError, schema.SchemaError):
            if strict:
                raise
            return None

    def _window(self) -> tuple[float, float] | None:
        """The measure window on the case clock, from the loadgen's monotonic instants."""
        lg = self.record["loadgen"]
        w = lg and lg.get("window")
        if not w:
            return None
        if w.get("boot_id") != boot_id():
            self.record["measurement_defects"].append(
                "measure window on another host's clock: server figures not aligned")
            return None
        return w["start"] - self.t0, w["end"] - self.t0

    def _cpu(self, role: str, window: tuple[float, float], limit: float) -> dict | None:
        counter = self.meter.counters.get(role)
        iv: Interval | None = counter.between(*window) if counter else None
        if iv is None:
            self.record["measurement_defects"].append(
                f"{role} CPU: no readings around the measure window")
            return None
        stall_counter = self.meter.counters.get(f"{role}_stall")
        stall = stall_counter.between(*window) if stall_counter else None
        return {"cores": round(iv.cores, 4), "percent": round(100 * iv.cores, 2),
                "cpu_s": round(iv.cpu_s, 5), "limit_cores": limit,
                "quota": self.cfg["server_cpu_quota"] if role == "server" else None,
                "source": counter.source, "gap_s": round(iv.gap_s, 4),
                "stall": round(stall.cores, 4) if stall else None}

    def _fill_server(self, load: dict) -> None:
        s = self.sampler
        if self.idle == {}:
            return
        self.record["server"] = {
            "pid": self.server.pid,
            "idle": self.idle,
            "load": load,
            "peak": dict(s.peak),
            "ctx_switches": dict(s.ctx),
            "smaps_interval_s": round(s.smaps_interval_max, 3) if s.smaps_interval_max else None,
            "samples": len(s.series),
            "series": s.series,
            "exit": {"code": None, "signal": None},
        }
        self.record["loadgen_proc"] = {"peak_rss": int(s.loadgen_peak_rss)}
        slow_smaps = s.smaps_interval_max and s.smaps_interval_max > 2 * s.interval
        if slow_smaps and s.peak["procs"] > LARGE_TREE:
            self.record["notes"].append(
                f"PSS/USS/fds throttled: read every {s.smaps_interval_max:.1f} s at most "
                f"(smaps of {s.peak['procs']} processes is slow); RSS every tick")

    def _fill_figures(self, load: dict) -> None:
        """CPU per 1k messages and memory per connection held."""
        rec, lg = self.record, self.record["loadgen"]
        cpu = rec["cpu"]["server"]
        if lg is None or rec["server"] is None:
            return
        if cpu is not None and lg["messages"] > 0:
            rec["cpu_s_per_1k_msgs"] = round(cpu["cpu_s"] / lg["messages"] * 1000, 6)
        multi = self.sampler.peak["procs"] > 1 or self.key.strategy == "fork"
        metric = "pss" if multi and self.idle.get("pss") is not None else "rss"
        # Connections the server actually holds: one still waiting in the accept queue (a
        # fork server at 10,000 forks only so fast) costs the server nothing yet.
        c = lg["connections"]
        n = c["served"] or c["connected"] or self.key.connections
        per_conn = None
        if load.get(metric) is not None and self.idle.get(metric) is not None:
            per_conn = round((load[metric] - self.idle[metric]) / n, 1)
        else:
            rec["notes"].append(f"no {metric.upper()} reading inside the measure window")
        rec["mem_per_conn"] = {"metric": metric, "bytes": per_conn, "connections": n}

    def _invariants(self) -> list[str]:
        """What cannot be true of a correct measurement, found in this one."""
        rec, lg = self.record, self.record["loadgen"]
        out = []
        for role, cpu in (("server", rec["cpu"]["server"]), ("loadgen", rec["cpu"]["loadgen"])):
            if cpu is not None and cpu["cores"] > CPU_TOLERANCE * cpu["limit_cores"]:
                out.append(f"{role} CPU {cpu['percent']:.0f}% > {100 * cpu['limit_cores']:.0f}%"
                           " it may use")
        if lg is None:
            return out
        counts = {"messages": lg["messages"],
                  "corrected": lg["latency_us"]["corrected"]["count"],
                  "uncorrected": lg["latency_us"]["uncorrected"]["count"]}
        if len(set(counts.values())) > 1:
            out.append("message counts disagree: " + ", ".join(
                f"{k} {v}" for k, v in counts.items()))
        c = lg["connections"]
        if not c["served"] <= c["connected"] <= c["target"]:
            out.append(f"connections: served {c['served']} <= connected {c['connected']} <= "
                       f"target {c['target']} does not hold")
        w = rec["window"]
        if w is not None and abs((w["end"] - w["start"]) - lg["measure_s"]) > \
                0.1 * lg["measure_s"] + 0.1:
            out.append(f"measure window {w['end'] - w['start']:.2f} s for a "
                       f"{lg['measure_s']:g} s measure phase")
        return out


@contextlib.contextmanager
def deferred_signals() -> Iterator[list[int]]:
    """Hold off SIGINT, SIGTERM and SIGHUP while the body runs (cleanup that must finish);
    the list yielded collects those that arrived. Main thread only."""
    pending: list[int] = []
    sigs = (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
    old = {s: signal.signal(s, lambda signum, frame: pending.append(signum)) for s in sigs}
    try:
        yield pending
    finally:
        for s, handler in old.items():
            signal.signal(s, handler)


def sweep_workdirs() -> list[str]:
    """Remove the case directories of runners no longer alive (a runner killed with
    SIGKILL cannot remove its own)."""
    removed = []
    for d in Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}*"):
        tag = d.name[len(TMP_PREFIX):]
        if d.is_dir() and not cgroup.owner_alive(tag):
            shutil.rmtree(d, ignore_errors=True)
            removed.append(str(d))
    return removed


def run_case(cfg: dict, key: CaseKey, progress: Progress) -> dict:
    """Run one case and return its record (see results/SCHEMA.md). Ctrl-C propagates."""
    return Case(cfg, key, progress).run()
