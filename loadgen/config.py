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
from dataclasses import asdict, dataclass

MAX_SIZE = 1 << 20
CONNS_PER_WORKER = 5000
FD_RESERVE = 64  # fds a worker needs besides its connections (zmq, logs, epoll, pipes)


class UsageError(Exception):
    """A bad setting; str(e) is a one-line message telling what to do."""


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
    timeout: float
    seed: int
    master_bind: str
    json: bool
    json_out: str | None
    progress: str

    def to_dict(self) -> dict:
        return asdict(self)


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> None:  # argparse would print usage and exit itself
        raise UsageError(message)


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
    p.add_argument("--workers", type=_positive(int), help="local worker processes")
    p.add_argument("--remote-workers", type=int, default=0,
                   help="also wait for this many 'loadgen worker' processes to connect")
    p.add_argument("--master-bind", default="127.0.0.1:0",
                   help="HOST:PORT the master listens on for workers (default 127.0.0.1:0)")
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
    """At most 5,000 connections per worker, and one worker per core the loadgen may use."""
    return max(1, min(connections, max(math.ceil(connections / CONNS_PER_WORKER), usable_cpus())))


def ephemeral_ports() -> int:
    try:
        with open("/proc/sys/net/ipv4/ip_local_port_range") as f:
            lo, hi = (int(x) for x in f.read().split())
        return hi - lo + 1
    except (OSError, ValueError):
        return 28232


def check_capacity(cfg: Config) -> None:
    """Raise UsageError if N connections cannot fit in the local workers' fds and ports."""
    total_workers = cfg.workers + cfg.remote_workers
    per_worker = math.ceil(cfg.connections / total_workers)
    local = min(cfg.connections, per_worker * cfg.workers)
    hard = resource.getrlimit(resource.RLIMIT_NOFILE)[1]
    if hard != resource.RLIM_INFINITY and per_worker + FD_RESERVE > hard:
        need = math.ceil(cfg.connections / max(1, hard - FD_RESERVE))
        raise UsageError(
            f"{cfg.connections} connections need {per_worker + FD_RESERVE} fds per worker with "
            f"{total_workers} worker(s) but the fd hard limit is {hard}: "
            f"use --workers {need} or raise 'ulimit -Hn'"
        )
    ports = ephemeral_ports()
    if local > ports:
        raise UsageError(
            f"{local} local connections to one server need more ephemeral ports than the "
            f"{ports} in /proc/sys/net/ipv4/ip_local_port_range: widen it or use remote workers"
        )


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
    if a.remote_workers < 0:
        raise UsageError(f"--remote-workers must be >= 0, got {a.remote_workers}")
    if a.remote_workers >= a.connections:
        raise UsageError(
            f"{a.remote_workers} remote workers for {a.connections} connections: "
            "each worker needs at least one connection; lower --remote-workers"
        )
    # More local workers than connections would idle: the resolved config shows the clamp.
    workers = a.workers if a.workers is not None else default_workers(a.connections)
    workers = min(workers, a.connections - a.remote_workers)
    split_hostport(a.master_bind, "--master-bind")
    try:
        host = socket.getaddrinfo(a.host, a.port, socket.AF_INET, socket.SOCK_STREAM)[0][4][0]
    except (OSError, UnicodeError):
        raise UsageError(f"--host {a.host!r} does not resolve to an IPv4 address") from None
    ramp_timeout = a.ramp_timeout
    if ramp_timeout is None:
        ramp_timeout = a.connections / a.ramp_rate + 30.0
    if a.json_out:
        parent = os.path.dirname(os.path.abspath(a.json_out))
        if not os.path.isdir(parent):
            raise UsageError(f"--json-out {a.json_out!r}: directory {parent!r} does not exist")
    cfg = Config(
        host=host, port=a.port, connections=a.connections, rate=a.rate, size=a.size,
        duration=a.duration, warmup=a.warmup, ramp_rate=a.ramp_rate, ramp_timeout=ramp_timeout,
        mode=a.mode, conn_mode=a.conn_mode, workers=workers, remote_workers=a.remote_workers,
        timeout=a.timeout, seed=a.seed, master_bind=a.master_bind, json=a.json,
        json_out=a.json_out, progress=a.progress,
    )
    check_capacity(cfg)
    return cfg


def parse_worker(argv: list[str]) -> tuple[str, int, bool]:
    """Parse `worker --master HOST:PORT`; return (host, port, exit_with_parent)."""
    p = _Parser(prog="python -m loadgen worker", description="run one loadgen worker")
    p.add_argument("--master", required=True, help="HOST:PORT of the loadgen master")
    p.add_argument("--exit-with-parent", action="store_true", help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    host, port = split_hostport(a.master, "--master")
    return host, port, a.exit_with_parent
