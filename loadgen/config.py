"""Command line, resolved settings and the capacity check (no gevent, no Locust here).

`parse(argv)` returns a `Config` or raises `UsageError` whose text is the one line the
CLI prints before exiting 2.  Everything the run needs is decided here, before any
process is started, so a bad setting never leaves a half-started master behind.
"""

from __future__ import annotations

import argparse
import math
import os
import resource
import socket
import tempfile
from dataclasses import asdict, dataclass

from common.cli import Parser as _Parser
from common.cli import UsageError

MAX_SIZE = 1 << 20
# One worker's driver serves 10,000 connections on a core within the fd limit (20,000
# here, FD_RESERVE besides); a second worker on the same core would only compete for it.
CONNS_PER_WORKER = 10_000
FD_RESERVE = 64  # fds a worker needs besides its connections (zmq, logs, epoll, pipes)
# The longest ramp (connects at --ramp-rate) and ramp timeout accepted: past an hour a
# setting is a slip of the keyboard, not a plan, and would hang the run.
MAX_RAMP_S = 3600.0
JOIN_TIMEOUT_S = 60.0  # default wait for workers (master) and for a master (worker)

# Exit codes of the master besides 0 and 2 (bad usage): no result (1), or a result written
# for inspection that must not be taken as a clean measurement: no connection was ever
# established (1), or a worker was lost and the figures are the survivors' (3).
EXIT_FAILED = 1
EXIT_WORKER_LOST = 3


@dataclass
class Config:
    """Every setting of a run, resolved (the result's `config` block is `asdict` of it)."""

    host: str
    port: int
    connections: int
    rate: float | None
    size: int
    duration: float
    warmup: float
    ramp_rate: float
    ramp_timeout: float
    mode: str
    conn_mode: str
    workers: int
    remote_workers: int
    join_timeout: float
    timeout: float
    seed: int
    master_bind: str
    json: bool
    json_out: str | None
    progress: str

    def to_dict(self) -> dict:
        return asdict(self)


def _positive(kind):
    def conv(text: str):
        try:
            v = kind(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
        if not v > 0 or (isinstance(v, float) and not math.isfinite(v)):
            raise argparse.ArgumentTypeError(f"must be > 0, got {text!r}")
        return v

    return conv


def _count(text: str) -> int:
    try:
        v = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a whole number, got {text!r}") from None
    if v < 0:
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


def _non_negative(text: str) -> float:
    try:
        v = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not (v >= 0 and math.isfinite(v)):
        raise argparse.ArgumentTypeError(f"must be >= 0, got {text!r}")
    return v


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m loadgen",
        description="TCP echo load generator on Locust's master/worker engine. "
        "'python -m loadgen worker --master HOST:PORT' runs a worker for a remote master.",
        epilog=f"Exit status: 0 a result; {EXIT_FAILED} no result, or no connection "
        f"established (result kept); 2 bad usage; {EXIT_WORKER_LOST} a worker was lost "
        "(result kept: the survivors' figures); 128+N killed by signal N.",
    )
    p.add_argument("--host", default="127.0.0.1", help="echo server address")
    p.add_argument("--port", type=int, required=True, help="echo server port")
    p.add_argument("--connections", type=_positive(int), required=True, help="connections N")
    p.add_argument("--rate", type=_positive(float), help="open loop: total target msgs/s")
    p.add_argument("--size", type=_positive(int), default=64, help="message bytes (1..1 MiB)")
    p.add_argument("--duration", type=_positive(float), default=10.0, help="measure seconds")
    p.add_argument("--warmup", type=_non_negative, default=1.0, help="warm-up seconds")
    p.add_argument("--ramp-rate", type=_positive(float), default=1000.0, help="connects/s")
    p.add_argument("--ramp-timeout", type=_positive(float), help="default N/ramp-rate + 30 s")
    p.add_argument("--mode", choices=["open", "closed"], default="closed")
    p.add_argument("--conn-mode", choices=["persistent", "per-message"], default="persistent")
    p.add_argument("--workers", type=_count,
                   help="local worker processes (default: one per CPU, 10,000 connections "
                   "each at most; with --remote-workers 0: all the load is remote)")
    p.add_argument("--remote-workers", type=_count, default=0,
                   help="also wait for this many 'loadgen worker' processes to connect")
    p.add_argument("--master-bind", default="127.0.0.1:0",
                   help="HOST:PORT the master listens on for workers (default 127.0.0.1:0)")
    p.add_argument("--join-timeout", type=_positive(float), default=JOIN_TIMEOUT_S,
                   help=f"seconds to wait for every worker to join (default {JOIN_TIMEOUT_S:g})")
    p.add_argument("--timeout", type=_positive(float), default=5.0, help="per-message timeout s")
    p.add_argument("--seed", type=int, default=0, help="seed of schedules and sequence numbers")
    out = p.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true", help="print the result JSON on stdout")
    out.add_argument("--json-out", metavar="FILE", help="write the result JSON to FILE")
    p.add_argument("--progress", choices=["human", "json"], default="human")
    return p


def split_hostport(text: str, what: str) -> tuple[str, int]:
    host, sep, port = text.rpartition(":")
    if not sep or not host or not port.isdigit() or int(port) > 65535:
        raise UsageError(f"{what} must be HOST:PORT, got {text!r}")
    return host, int(port)


def usable_cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:
        return os.cpu_count() or 1


def default_workers(connections: int) -> int:
    """At most CONNS_PER_WORKER connections per worker (fewer where the fd limit is lower),
    and one worker per core the loadgen may use."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    per_worker = CONNS_PER_WORKER if hard == resource.RLIM_INFINITY else max(
        1, min(CONNS_PER_WORKER, hard - FD_RESERVE))
    return max(1, min(connections, max(math.ceil(connections / per_worker), usable_cpus())))


def ephemeral_ports() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return hi - lo + 1
    except (OSError, ValueError):
        return 28232


def worker_share(connections: int, workers: int) -> int:
    """The most connections one of ``workers`` workers gets (Locust spreads users evenly)."""
    return math.ceil(connections / workers)


def share_problem(share: int, connections_here: int, whose: str) -> str | None:
    """Why ``share`` connections per worker, ``connections_here`` of them from this host's
    address, do not fit this host's fd limit or ephemeral ports (``None``: they fit)."""
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and share + FD_RESERVE > hard:
        return (f"{share} connections per worker need {share + FD_RESERVE} fds but the fd hard "
                f"limit {whose} is {hard}: use more workers or raise 'ulimit -Hn'")
    ports = ephemeral_ports()
    if connections_here > ports:
        return (f"{connections_here} connections {whose} to one server need more ephemeral "
                f"ports than the {ports} in /proc/sys/net/ipv4/ip_local_port_range: widen it "
                "or use more hosts")
    return None


def check_capacity(cfg: Config) -> None:
    """Raise UsageError if the local workers' share of N connections cannot fit in this
    host's fds and ports (each remote worker checks its own share when it gets the run)."""
    if cfg.workers == 0:
        return
    share = worker_share(cfg.connections, cfg.workers + cfg.remote_workers)
    problem = share_problem(share, min(cfg.connections, share * cfg.workers), "here")
    if problem:
        raise UsageError(problem)


def _check_json_out(path: str) -> None:
    """The result file can be written: its directory exists and takes a new file (checked
    by making one, which also catches read-only mounts and /proc)."""
    parent = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(parent):
        raise UsageError(f"--json-out {path!r}: directory {parent!r} does not exist")
    if os.path.isdir(path):
        raise UsageError(f"--json-out {path!r} is a directory; give a file name")
    try:
        with tempfile.TemporaryFile(dir=parent, prefix=".loadgen-"):
            pass
    except OSError as e:
        raise UsageError(f"--json-out {path!r}: cannot write in {parent!r} "
                         f"({e.strerror or e})") from None


def parse(argv: list[str]) -> Config:
    """Parse and validate the master's command line; raise UsageError on bad input."""
    a = build_parser().parse_args(argv)
    if not 0 < a.port <= 65535:
        raise UsageError(f"--port must be 1..65535, got {a.port}")
    if a.size > MAX_SIZE:
        raise UsageError(f"--size must be 1..{MAX_SIZE} bytes, got {a.size}")
    if a.mode == "open" and a.rate is None:
        raise UsageError("--mode open needs --rate (total messages per second)")
    if a.mode == "closed" and a.rate is not None:
        raise UsageError("--rate applies to --mode open only; drop it for --mode closed")
    if a.workers == 0 and a.remote_workers == 0:
        raise UsageError("--workers 0 needs --remote-workers N (someone must make the load)")
    if a.remote_workers > a.connections:
        raise UsageError(
            f"{a.remote_workers} remote workers for {a.connections} connections: "
            "each worker needs at least one connection; lower --remote-workers"
        )
    # More local workers than connections would idle: the resolved config shows the clamp.
    workers = a.workers if a.workers is not None else (
        0 if a.remote_workers else default_workers(a.connections))
    workers = min(workers, a.connections - a.remote_workers)
    split_hostport(a.master_bind, "--master-bind")
    if a.join_timeout > MAX_RAMP_S:
        raise UsageError(f"--join-timeout must be at most {MAX_RAMP_S:g} s, got {a.join_timeout:g}")
    try:
        host = socket.getaddrinfo(a.host, a.port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (OSError, UnicodeError):
        raise UsageError(f"--host {a.host!r} does not resolve to an IPv4 address") from None
    ramp_s = a.connections / a.ramp_rate
    if ramp_s > MAX_RAMP_S:
        raise UsageError(
            f"--ramp-rate {a.ramp_rate:g}: {a.connections} connections would take {ramp_s:.3g} s "
            f"to open (at most {MAX_RAMP_S:g} s): use --ramp-rate "
            f"{math.ceil(a.connections / MAX_RAMP_S)} or more"
        )
    ramp_timeout = a.ramp_timeout if a.ramp_timeout is not None else ramp_s + 30.0
    if ramp_timeout > MAX_RAMP_S + 30.0:
        raise UsageError(f"--ramp-timeout must be at most {MAX_RAMP_S + 30.0:g} s, "
                         f"got {ramp_timeout:g}")
    if a.json_out:
        _check_json_out(a.json_out)
    cfg = Config(
        host=host, port=a.port, connections=a.connections, rate=a.rate, size=a.size,
        duration=a.duration, warmup=a.warmup, ramp_rate=a.ramp_rate, ramp_timeout=ramp_timeout,
        mode=a.mode, conn_mode=a.conn_mode, workers=workers, remote_workers=a.remote_workers,
        join_timeout=a.join_timeout, timeout=a.timeout, seed=a.seed,
        master_bind=a.master_bind, json=a.json, json_out=a.json_out, progress=a.progress,
    )
    check_capacity(cfg)
    return cfg


@dataclass
class WorkerArgs:
    """A worker's settings: its master, how long to wait for one, and whether the master
    started it (``local``: one case, no chatter) or a person did on some host (serves case
    after case, saying when it waits)."""

    host: str
    port: int
    join_timeout: float
    local: bool


def parse_worker(argv: list[str]) -> WorkerArgs:
    """Parse `worker --master HOST:PORT [--join-timeout S]`; raise UsageError on bad input."""
    p = _Parser(
        prog="python -m loadgen worker",
        description="Run one loadgen worker: it joins the master at HOST:PORT, makes its share "
        "of the load, and after the case joins the next master at the same address. It exits "
        "when no master appears for --join-timeout seconds, when its master is lost (silent "
        "for a few seconds), or when it is refused (a case had started without it).",
    )
    p.add_argument("--master", required=True, help="HOST:PORT of the loadgen master")
    p.add_argument("--join-timeout", type=_positive(float), default=JOIN_TIMEOUT_S,
                   help=f"seconds to wait for a master (default {JOIN_TIMEOUT_S:g})")
    p.add_argument("--local", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    host, port = split_hostport(a.master, "--master")
    if port == 0:
        raise UsageError("--master needs the master's port, got 0")
    return WorkerArgs(host, port, a.join_timeout, a.local)
