"""The bench configuration and the case matrix it expands to.

A configuration comes from three layers, later ones winning: the built-in defaults (the
``make bench`` matrix, or the ``--quick`` one), a TOML file (``--config``), and the
command-line options the user actually typed. The result is a plain dict stored whole in
the run file, so ``--resume`` rebuilds exactly the same matrix from the file alone.
"""

from __future__ import annotations

import itertools
import math
import os
import re
import resource
import shlex
import socket
import tomllib
from typing import Any

import servers
from bench import UsageError
from loadgen.config import JOIN_TIMEOUT_S, MAX_RAMP_S, MAX_SIZE, ephemeral_ports, split_hostport
from loadgen.config import UsageError as HostPortError
from results import ceiling
from results.cases import CaseKey

STRATEGIES = (*servers.MODELS, *servers.REFERENCES)
# make bench: the four models and the fastest stdlib reference; "all" adds the others.
DEFAULT_STRATEGIES = (*servers.MODELS, "asyncio")
EXTERNAL = "external"  # the name of a --server-cmd given without NAME=
GiB = 1 << 30

# Open-loop rate per case when ``rate = "auto"``: 1 msg/s per connection, capped at what
# the loadgen offers on time: for each CPU the loadgen may use, the per-core figure
# ``runner.py ceiling`` measured on this machine (results/ceiling.json), or
# RATE_PER_LOADGEN_CPU where none was measured (half the per-core open-loop reach the
# loadgen is built for, so an unmeasured machine is not driven past it).
RATE_PER_CONN = 1.0
RATE_PER_LOADGEN_CPU = 20000.0
# The goroutine server's GOMAXPROCS in the matrix: one P, as the GIL lets one M run Python
# at a time (more Ps trade the GIL and only add latency); recorded with every case.
GOROUTINE_PROCS = 1

DEFAULTS: dict[str, Any] = {
    "strategies": list(DEFAULT_STRATEGIES),
    "connections": [100, 1000, 10000],
    "rate": "auto",
    "rate_per_conn": RATE_PER_CONN,
    "rate_cap": "auto",
    "size": [64],
    "mode": ["open"],
    "conn_mode": ["persistent"],
    # Extra closed-loop (max throughput) cases at these connection counts; by default only
    # with the default matrix (set explicitly to keep them with other --connections/--mode).
    "closed_connections": None,
    # 8 s measured + 1 s warm-up per case keeps the 60-case default matrix (fork and
    # iterative at 10,000 connections spend up to their ramp timeout connecting) within
    # 30 minutes on 2 cores; at 1,000+ msg/s that is 8,000+ messages per case.
    "duration": 8.0,
    "warmup": 1.0,
    "repeats": 3,
    "workers": None,
    "procs": GOROUTINE_PROCS,
    "backlog": None,
    # External servers by name: {NAME: command line}; "{host}" and "{port}" in it are
    # filled in by the runner.
    "server_cmd": None,
    # Seconds an external server has to print its listening line or accept a connection.
    "ready_timeout": 30.0,
    # The server on half the CPUs, the loadgen and the sampler on the others (when there
    # are 2 or more). Why by default: unpinned, 10,000 threads convoying on the GIL starved
    # the loadgen and the sampler on both cores (2 of 3 thread cases at 10k failed with no
    # echo during the measure phase; pinned, 2 of 2 held 5,000 msg/s) — a server must not
    # be able to starve its own measurement.
    "pin": True,
    "ramp_rate": None,
    "ramp_timeout": None,
    "timeout": 5.0,
    "seed": 1,
    "mem_floor": 2 * GiB,
    "mem_budget": None,
    "case_time_limit": None,
    "quick": False,
    # What "held" means (results/verdict.py): this share of the target rate achieved and
    # the corrected p99 within this many ms.
    "slo_held": 0.99,
    "slo_p99_ms": 10.0,
    # CPU cores the server's tree may use (a cgroup quota); None: no quota.
    "server_cpu_quota": None,
    # Capacity search (mode "capacity"): the first rate (None: a quarter of the rate cap),
    # the factor of the geometric sweep, when to stop bisecting (hi/lo below 1 + this), and
    # the most steps one search may take.
    "capacity_start": None,
    "capacity_factor": 2.0,
    "capacity_tolerance": 0.1,
    "capacity_steps": 8,
    # Past one machine: the server listens on server_host (it runs on this host, where it
    # is sampled; the loadgen dials the address it reports); remote_workers loadgen workers
    # from other hosts ('python -m loadgen worker --master MASTER_BIND', started once, they
    # rejoin case after case) join each case at master_bind, HOST:PORT with a fixed port;
    # a case waits join_timeout seconds for every worker.
    "server_host": "127.0.0.1",
    "remote_workers": 0,
    "master_bind": None,
    "join_timeout": JOIN_TIMEOUT_S,
}

QUICK: dict[str, Any] = {
    "connections": [100, 1000],
    "repeats": 1,
    "duration": 3.0,
    "warmup": 1.0,
}

# Settings a version-1 run file's config does not hold: a resumed one takes the defaults.
ADDED_SINCE_V1 = ("slo_held", "slo_p99_ms", "server_cpu_quota", "capacity_start",
                  "capacity_factor", "capacity_tolerance", "capacity_steps", "ready_timeout",
                  "server_host", "remote_workers", "master_bind", "join_timeout")

# A capacity search is many short cases: shorter phases and one repeat unless told.
CAPACITY: dict[str, Any] = {
    "repeats": 1,
    "duration": 4.0,
    "warmup": 1.0,
}

MAX_PROCS = 1024  # python -m servers goroutine --procs
MAX_BACKLOG = 65535  # the kernel caps a listen backlog at somaxconn anyway
FD_HEADROOM = 64  # fds a server or loadgen worker needs beside its connections
_ENUMS = {"mode": ("open", "closed", "capacity"), "conn_mode": ("persistent", "per-message")}


def _bad(name: str, value: Any, why: str) -> UsageError:
    return UsageError(f"--{name.replace('_', '-')}: {value!r} {why}")


def _number(name: str, value: Any, *, lo: float = 0.0, lo_open: bool = True,
            hi: float | None = None, integer: bool = False) -> Any:
    """A finite number (an integer with ``integer``) in ``(lo, hi]`` (``[lo, hi]`` unless
    ``lo_open``). Strings are parsed (they come from the command line); booleans and
    floats for integers are refused, never coerced."""
    v = value
    if isinstance(value, str):
        try:
            v = int(value) if integer else float(value)
        except ValueError:
            raise _bad(name, value, "is not " + ("an integer" if integer else "a number")) \
                from None
    if isinstance(v, bool) or not isinstance(v, int | float) or (integer and
                                                                  not isinstance(v, int)):
        raise _bad(name, value, "is not " + ("an integer" if integer else "a number"))
    if not math.isfinite(v):
        raise _bad(name, value, "is not a finite number")
    if v < lo or (lo_open and v == lo):
        raise _bad(name, value, f"must be {'>' if lo_open else '>='} {_plain(lo)}")
    if hi is not None and v > hi:
        raise _bad(name, value, f"must be <= {_plain(hi)}")
    return v


def _plain(x: float) -> str:
    return str(int(x)) if float(x).is_integer() else f"{x:g}"


def _list(name: str, value: Any) -> list:
    if isinstance(value, str):
        return [v.strip() for v in value.split(",") if v.strip()]
    if isinstance(value, list):
        return value
    if isinstance(value, int | float) and not isinstance(value, bool):
        return [value]
    raise _bad(name, value, "is not a list")


def _words(name: str, value: Any, allowed: tuple[str, ...] | None = None) -> list[str]:
    out = _list(name, value)
    for v in out:
        if not isinstance(v, str):
            raise _bad(name, v, "is not a name")
        if allowed is not None and v not in allowed:
            raise _bad(name, v, f"is not one of {allowed}")
    return out


def _bool(name: str, value: Any) -> bool:
    if not isinstance(value, bool):
        raise _bad(name, value, "is not true or false")
    return value


def _optional(cfg: dict, name: str, **limits: Any) -> None:
    if cfg[name] is not None:
        cfg[name] = _number(name, cfg[name], **limits)


def _check(cfg: dict) -> dict:
    """Check every setting's type, finiteness and range, and the limits between settings
    and this machine; normalise lists. Raises a one-line :class:`UsageError`."""
    for name in ("pin", "quick"):
        cfg[name] = _bool(name, cfg[name])
    fd_hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    # Remote workers bring their own ports (each checks its share); the server's fds remain.
    remote = _number("remote_workers", cfg["remote_workers"], lo=0, lo_open=False,
                     integer=True)
    max_conns = fd_hard - FD_HEADROOM if remote else min(fd_hard - FD_HEADROOM,
                                                         ephemeral_ports())
    for name in ("connections", "closed_connections"):
        if cfg[name] is not None:
            cfg[name] = [_number(name, v, lo=1, lo_open=False, hi=max_conns, integer=True)
                         for v in _list(name, cfg[name])]
    if not cfg["connections"]:
        raise UsageError("--connections: give at least one connection count, e.g. 100,1000")
    cfg["size"] = [_number("size", v, lo=1, lo_open=False, hi=MAX_SIZE, integer=True)
                   for v in _list("size", cfg["size"])]
    for name, allowed in _ENUMS.items():
        cfg[name] = _words(name, cfg[name], allowed)
    if "capacity" in cfg["mode"] and len(cfg["mode"]) > 1:
        raise UsageError("--mode: capacity is a search of its own; give it alone")
    if cfg["rate"] != "auto":
        cfg["rate"] = [_number("rate", v) for v in _list("rate", cfg["rate"])]
    if cfg["rate_cap"] == "auto":
        cfg["rate_cap"] = auto_rate_cap(len(cpu_plan(cfg["pin"])["loadgen"]))
    for name in ("duration", "rate_per_conn", "rate_cap", "timeout", "slo_p99_ms",
                 "capacity_tolerance"):
        cfg[name] = _number(name, cfg[name])
    cfg["slo_held"] = _number("slo_held", cfg["slo_held"], hi=1.0)
    cfg["capacity_factor"] = _number("capacity_factor", cfg["capacity_factor"], lo=1.0)
    cfg["warmup"] = _number("warmup", cfg["warmup"], lo_open=False)
    cfg["mem_floor"] = _number("mem_floor", cfg["mem_floor"], lo_open=False)
    for name in ("repeats", "capacity_steps"):
        cfg[name] = _number(name, cfg[name], lo=1, lo_open=False, integer=True)
    cfg["seed"] = _number("seed", cfg["seed"], lo=-(2**63), lo_open=False, integer=True)
    if remote > min(cfg["connections"]):
        raise _bad("remote_workers", remote, "is more than the fewest connections of a case "
                   "(each worker needs one)")
    cfg["remote_workers"] = remote
    _optional(cfg, "workers", lo=0 if remote else 1, lo_open=False, hi=max(cfg["connections"]),
              integer=True)
    cfg["server_host"] = _local_address("server_host", cfg["server_host"])
    cfg["master_bind"] = _master_bind(cfg["master_bind"], remote)
    cfg["join_timeout"] = _number("join_timeout", cfg["join_timeout"], hi=MAX_RAMP_S)
    _optional(cfg, "procs", lo=1, lo_open=False, hi=MAX_PROCS, integer=True)
    _optional(cfg, "backlog", lo=1, lo_open=False, hi=MAX_BACKLOG, integer=True)
    # A ramp slower than 1 connection per second would outlast any case.
    _optional(cfg, "ramp_rate", lo=1.0, lo_open=False)
    for name in ("ramp_timeout", "case_time_limit", "mem_budget", "capacity_start"):
        _optional(cfg, name)
    server_cpus = len(cpu_plan(cfg["pin"])["server"])
    _optional(cfg, "server_cpu_quota", hi=float(server_cpus))
    cfg["ready_timeout"] = _number("ready_timeout", cfg["ready_timeout"])
    cfg["server_cmd"] = server_cmds(cfg["server_cmd"])
    cfg["strategies"] = _words("strategies", cfg["strategies"])
    if "all" in cfg["strategies"]:
        cfg["strategies"] = [*STRATEGIES, *[s for s in cfg["strategies"]
                                            if s not in STRATEGIES and s != "all"]]
    externals = list(cfg["server_cmd"] or {})
    unknown = [s for s in cfg["strategies"] if s not in STRATEGIES and s not in externals]
    if unknown:
        hint = " needs --server-cmd CMD" if unknown[0] == EXTERNAL else (
            f" (known: {', '.join(STRATEGIES)}, all, or a --server-cmd NAME)")
        raise UsageError(f"--strategies: unknown strategy {unknown[0]!r}{hint}")
    cfg["strategies"] += [n for n in externals if n not in cfg["strategies"]]
    if not cfg["strategies"]:
        raise UsageError("--strategies: give at least one strategy")
    return cfg


def _local_address(name: str, value: Any) -> str:
    """An address of this host a server or master can bind (not a wildcard: the loadgen and
    remote workers must be able to dial it)."""
    if not isinstance(value, str) or not value.strip():
        raise _bad(name, value, "is not an address")
    if value in ("0.0.0.0", "::", "*"):
        raise _bad(name, value, "is a wildcard: give the address the load should reach")
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
            s.bind((value, 0))
    except (OSError, UnicodeError) as e:
        why = getattr(e, "strerror", None) or e
        raise _bad(name, value, f"is not an IPv4 address of this host ({why})") from None
    return value


def _master_bind(value: Any, remote: int) -> str | None:
    """``HOST:PORT`` the loadgen master listens on; with remote workers, required and with
    a fixed port (the workers rejoin it case after case)."""
    if value is None:
        if remote:
            raise UsageError("--remote-workers needs --master-bind HOST:PORT (an address of "
                             "this host the workers can reach, and a fixed port)")
        return None
    if not isinstance(value, str):
        raise _bad("master_bind", value, "is not HOST:PORT")
    try:
        host, port = split_hostport(value, "--master-bind")
    except HostPortError as e:
        raise UsageError(str(e)) from None
    if remote and port == 0:
        raise _bad("master_bind", value, "needs a fixed port: the remote workers rejoin it")
    if host not in ("*", "0.0.0.0"):  # every interface: fine for a master
        _local_address("master_bind", host)
    return value


_NAME = re.compile(r"[A-Za-z0-9_-]+")
_NAMED = re.compile(r"([A-Za-z0-9_-]+)=(.*)", re.S)


def server_cmds(value: Any) -> dict[str, str] | None:
    """External servers as ``{NAME: CMD}``, from ``NAME=CMD`` strings (repeatable option, a
    TOML list), a TOML table, or one bare ``CMD`` (named :data:`EXTERNAL`).

    Each CMD must split with :func:`shlex.split` (it is never given to a shell); a NAME is
    one word, not a built-in strategy's, and given once.
    """
    if value is None or value == {}:
        return None
    if isinstance(value, str):
        value = [value]
    if isinstance(value, dict):
        pairs = list(value.items())
    elif isinstance(value, list):
        pairs = []
        for item in value:
            if not isinstance(item, str):
                raise _bad("server_cmd", item, "is not a command line")
            named = _NAMED.match(item)
            if item.startswith("="):
                raise _bad("server_cmd", item, "needs a NAME before '='")
            pairs.append((named[1], named[2]) if named else (EXTERNAL, item))
    else:
        raise _bad("server_cmd", value, "is not a command line")
    out: dict[str, str] = {}
    for name, cmd in pairs:
        if not isinstance(name, str) or not _NAME.fullmatch(name):
            raise _bad("server_cmd", f"{name}={cmd}", "needs a NAME of letters, digits, - or _")
        if name in STRATEGIES or name == "all":
            raise _bad("server_cmd", name, "is a built-in strategy's name: choose another")
        if name in out:
            raise _bad("server_cmd", name, "is given twice")
        if not isinstance(cmd, str) or not cmd.strip():
            raise _bad("server_cmd", f"{name}={cmd}", "is not a command line")
        try:
            shlex.split(cmd)
        except ValueError as e:
            raise _bad("server_cmd", cmd, f"cannot be split ({e})") from None
        out[name] = cmd
    return out


def check_stored(cfg: Any, where: str) -> dict:
    """A configuration read back from a run file (``--resume``), checked as a new one is.

    Settings added since the file was written take their defaults; a file missing any
    other setting, or holding a bad value, is refused in one line naming ``where``.
    """
    if not isinstance(cfg, dict):
        raise UsageError(f"{where}: its config is not a table of settings")
    missing = [k for k in DEFAULTS if k not in cfg and k not in ADDED_SINCE_V1]
    if missing:
        raise UsageError(f"{where}: its config lacks {missing[0]!r}: not a bench run this "
                         "runner can resume")
    merged = {**{k: DEFAULTS[k] for k in ADDED_SINCE_V1}, **cfg}
    try:
        return _check(merged)
    except UsageError as e:
        raise UsageError(f"{where}: stored config: {e}") from None


def read_toml(path: str) -> dict:
    """The settings in a TOML file: top-level keys named like the options (``conn_mode``)."""
    try:
        with open(path, "rb") as f:
            data = tomllib.load(f)
    except OSError as e:
        raise UsageError(f"--config {path}: cannot read ({e.strerror or e})") from None
    except tomllib.TOMLDecodeError as e:
        raise UsageError(f"--config {path}: not valid TOML ({e})") from None
    except UnicodeDecodeError:
        raise UsageError(f"--config {path}: not valid TOML (not UTF-8 text)") from None
    data = {k.replace("-", "_"): v for k, v in data.items()}
    unknown = sorted(set(data) - set(DEFAULTS))
    if unknown:
        raise UsageError(f"--config {path}: unknown setting {unknown[0]!r}")
    return data


def build_config(cli: dict[str, Any], toml_path: str | None = None) -> dict:
    """Defaults < ``--quick`` < TOML file < the options given on the command line.

    ``cli`` holds only the options the user typed (others absent or ``None``).
    """
    given = {k: v for k, v in cli.items() if v is not None and k in DEFAULTS}
    from_file = read_toml(toml_path) if toml_path else {}
    cfg = dict(DEFAULTS)
    if given.get("quick") or from_file.get("quick"):
        cfg.update(QUICK)
    mode = given.get("mode") or from_file.get("mode") or ""
    if "capacity" in (mode.split(",") if isinstance(mode, str) else mode):
        cfg.update(CAPACITY)
    cfg.update(from_file)
    cfg.update(given)
    if cfg["server_cmd"] and "strategies" not in given and "strategies" not in from_file:
        cfg["strategies"] = []  # the external servers alone
    if cfg["closed_connections"] is None:
        custom = any(k in given or k in from_file for k in ("connections", "mode"))
        cfg["closed_connections"] = [] if custom else [100]
    return _check(cfg)


def auto_rate_cap(loadgen_cpus: int) -> float:
    """``rate_cap = "auto"``: the measured per-core ceiling (or RATE_PER_LOADGEN_CPU) times
    the loadgen's CPUs."""
    measured = ceiling.load()
    per_core = (measured.per_core_rate() if measured else None) or RATE_PER_LOADGEN_CPU
    return per_core * loadgen_cpus


def cpu_plan(pin: bool) -> dict[str, list[int]]:
    """The CPUs of the server, the loadgen and the sampler.

    Pinned (and 2+ CPUs): the server on the first half of ours, loadgen and sampler on the
    rest. Unpinned: all of them share every CPU.
    """
    cpus = sorted(os.sched_getaffinity(0))
    if not pin or len(cpus) < 2:
        return {"server": cpus, "loadgen": cpus, "sampler": cpus}
    half = len(cpus) // 2
    return {"server": cpus[:half], "loadgen": cpus[half:], "sampler": cpus[half:]}


def server_cpu_limit(cfg: dict) -> float:
    """The most CPU (cores) the server can use: its CPUs, or its quota if lower."""
    n = float(len(cpu_plan(cfg["pin"])["server"]))
    quota = cfg.get("server_cpu_quota")
    return min(n, quota) if quota else n


def rate_for(cfg: dict, connections: int) -> list[float]:
    """The open-loop target rates (msg/s in total) for a connection count."""
    if cfg["rate"] == "auto":
        return [min(cfg["rate_per_conn"] * connections, cfg["rate_cap"])]
    return list(cfg["rate"])


def case_keys(cfg: dict, strategies: list[str] | None = None) -> list[CaseKey]:
    """Every case key of the matrix, in run order.

    Repeats are the outer loop, so an interrupted run still holds whole passes over the
    matrix and slow drift of the machine hits every strategy alike; within a pass, cases
    go by connection count, then strategy.
    """
    strategies = cfg["strategies"] if strategies is None else strategies
    keys = []
    for repeat in range(cfg["repeats"]):
        combos = []
        for n, size, mode, conn_mode in itertools.product(
            cfg["connections"], cfg["size"], cfg["mode"], cfg["conn_mode"]
        ):
            if mode == "capacity":
                continue
            rates = rate_for(cfg, n) if mode == "open" else [None]
            combos += [(n, r, size, mode, conn_mode) for r in rates]
        if "closed" not in cfg["mode"] and "capacity" not in cfg["mode"]:
            for n, size, conn_mode in itertools.product(
                cfg["closed_connections"], cfg["size"], cfg["conn_mode"]
            ):
                combos.append((n, None, size, "closed", conn_mode))
        for (n, rate, size, mode, conn_mode), strategy in itertools.product(combos, strategies):
            keys.append(CaseKey(strategy, n, rate, size, mode, conn_mode, repeat))
    return keys


def ramp_timeout(cfg: dict, connections: int) -> float:
    """How long the loadgen may take to open every connection before it measures anyway."""
    if cfg["ramp_timeout"] is not None:
        return cfg["ramp_timeout"]
    return 5.0 + connections / 400.0


def case_time_limit(cfg: dict, connections: int) -> float:
    """Hard wall-clock limit of one case: every phase, plus generous start/stop slack."""
    if cfg["case_time_limit"] is not None:
        return cfg["case_time_limit"]
    join = cfg.get("join_timeout") or 0.0 if cfg.get("remote_workers") else 0.0
    return ramp_timeout(cfg, connections) + cfg["warmup"] + cfg["duration"] + join + 60.0


def estimate_case_s(cfg: dict, connections: int) -> float:
    """A rough duration of one case, for the ETA before any case has finished."""
    return 6.0 + connections / 1000.0 + cfg["warmup"] + cfg["duration"]
