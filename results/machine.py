"""What a run was measured on: the machine block and the git state of the tree."""

from __future__ import annotations

import os
import platform
import resource
import socket
import subprocess
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parent.parent


def _read_int(path: str) -> int | None:
    try:
        return int(Path(path).read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return None


def _cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def machine_info() -> dict:
    """The machine block of a run: CPU, cores, affinity, kernel, Python, limits, memory.

    Also the kernel settings that bound a 10,000-connection run (accept backlog cap,
    SYN backlog, ephemeral port range), or ``None`` where they cannot be read.
    """
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    vm = psutil.virtual_memory()
    ports = None
    try:
        ports = [int(x) for x in Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()]
    except (OSError, ValueError):
        pass
    return {
        "hostname": socket.gethostname(),
        "cpu_model": _cpu_model(),
        "cores_logical": os.cpu_count() or 1,
        "cores_physical": psutil.cpu_count(logical=False),
        "affinity": sorted(os.sched_getaffinity(0)),
        "kernel": platform.release(),
        "os": platform.platform(),
        "python": f"{platform.python_implementation()} {platform.python_version()}",
        "fd_limit": {"soft": soft, "hard": hard},
        "memory_total": vm.total,
        "memory_available": vm.available,
        "somaxconn": _read_int("/proc/sys/net/core/somaxconn"),
        "tcp_max_syn_backlog": _read_int("/proc/sys/net/ipv4/tcp_max_syn_backlog"),
        "ip_local_port_range": ports,
    }


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", *args], cwd=ROOT, capture_output=True, text=True, timeout=10, check=True
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip()


def git_info() -> dict:
    """``{"sha", "dirty", "commit_time"}`` of the tree the code runs from.

    ``sha`` is ``"unknown"`` and the others ``None`` outside a git checkout. Untracked
    files count as dirty only if git would show them (run files are git-ignored).
    """
    sha = _git("rev-parse", "HEAD")
    if not sha:
        return {"sha": "unknown", "dirty": None, "commit_time": None}
    status = _git("status", "--porcelain")
    return {
        "sha": sha,
        "dirty": None if status is None else bool(status),
        "commit_time": _git("show", "-s", "--format=%cI", "HEAD"),
    }
