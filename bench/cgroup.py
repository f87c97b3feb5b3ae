"""A cgroup per measured process tree: exact CPU time, every member, a CPU quota.

Placing a child in a cgroup of its own, before it starts anything, gives what sampling
``/proc`` cannot: the CPU time of the whole tree, children that already exited included,
in one read at the instant the runner chooses (v2 ``cpu.stat`` ``usage_usec``, or v1
``cpuacct.usage``); how long it waited for a CPU it wanted (v2 ``cpu.pressure``); the list
of every process still in it (``cgroup.procs``), and a way to kill them all (v2
``cgroup.kill``). With a quota it also caps the tree's CPU (v2
``cpu.max``, or v1 ``cpu.cfs_quota_us``), so a small machine can find the knee of a fast
server.

Groups live under ``c10k-bench/`` in each hierarchy, named ``<runner pid>-<runner start
tick>-<name>``: :func:`sweep` removes those of runners no longer alive (killing what is
left in them), so a runner killed with SIGKILL leaves nothing behind past the next start.
Where no hierarchy is writable (not root, no cgroupfs), :func:`open_group` says why and
the caller falls back to sampling ``/proc``.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

import psutil

TOP = "c10k-bench"
QUOTA_PERIOD_US = 10_000  # short, so a throttled tree waits at most ~10 ms per period
MIN_QUOTA_US = 1000  # the kernel's floor for a quota


class CgroupError(Exception):
    """A cgroup cannot be made or used here; ``str(e)`` is one line for the user."""


def _mounts() -> list[tuple[str, str, set[str]]]:
    """``(mount point, fstype, options)`` of every cgroup hierarchy."""
    out = []
    try:
        with open("/proc/self/mounts") as f:
            for line in f:
                parts = line.split()
                if len(parts) >= 4 and parts[2] in ("cgroup", "cgroup2"):
                    out.append((parts[1], parts[2], set(parts[3].split(","))))
    except OSError:
        pass
    return out


def _own_paths() -> dict[str, str]:
    """This process's cgroup path per hierarchy: ``""`` for v2, the controller list for v1."""
    out = {}
    try:
        with open("/proc/self/cgroup") as f:
            for line in f:
                _, controllers, path = line.rstrip("\n").split(":", 2)
                out[controllers] = path
    except (OSError, ValueError):
        pass
    return out


def _base(controller: str | None) -> Path | None:
    """Our ``c10k-bench`` directory in the v2 hierarchy (``controller=None``) or in the v1
    hierarchy holding ``controller``; ``None`` if there is none."""
    own = _own_paths()
    for point, fstype, opts in _mounts():
        if controller is None and fstype == "cgroup2":
            rel = own.get("", "/")
        elif controller is not None and fstype == "cgroup" and controller in opts:
            rel = next((p for c, p in own.items() if controller in c.split(",")), "/")
        else:
            continue
        return Path(point) / rel.lstrip("/") / TOP
    return None


def _v2_has_cpu(base: Path) -> bool:
    try:
        return "cpu" in (base.parent / "cgroup.subtree_control").read_text().split()
    except OSError:
        return False


def owner_tag() -> str:
    """``<pid>-<start tick>`` of this process: names what it leaves on the system, so a
    later run can tell whether its owner is still alive (pids are reused; start times
    with them are not)."""
    me = psutil.Process()
    return f"{me.pid}-{int(me.create_time() * 100)}"


def owner_alive(name: str) -> bool:
    """Whether the process whose :func:`owner_tag` begins ``name`` is still running."""
    try:
        pid, tick = name.split("-", 2)[:2]
        return int(psutil.Process(int(pid)).create_time() * 100) == int(tick)
    except (ValueError, psutil.Error):
        return False


def _kill_members(path: Path) -> None:
    kill = path / "cgroup.kill"
    if kill.exists():
        try:
            kill.write_text("1")
        except OSError:
            pass
    for pid in _read_pids(path):
        try:
            os.kill(pid, 9)
        except OSError:
            pass


def _read_pids(path: Path) -> list[int]:
    try:
        return [int(x) for x in (path / "cgroup.procs").read_text().split()]
    except (OSError, ValueError):
        return []


def _rmdir(path: Path, wait: float = 5.0) -> bool:
    """Remove an emptied group; the kernel refuses while a dying member is still in it."""
    deadline = time.monotonic() + wait
    while True:
        try:
            path.rmdir()
            return True
        except FileNotFoundError:
            return True
        except OSError:
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)


def sweep() -> list[str]:
    """Kill the members of, and remove, every group of a runner that is no longer alive.

    Returns what was removed (one string per group), for a note.
    """
    removed = []
    for base in {b for b in (_base(None), _base("cpu"), _base("cpuacct")) if b is not None}:
        if not base.is_dir():
            continue
        for d in base.iterdir():
            if d.is_dir() and not owner_alive(d.name):
                left = _read_pids(d)
                _kill_members(d)
                if _rmdir(d):
                    removed.append(f"{d} ({len(left)} process(es) killed)" if left else str(d))
    return removed


class Group:
    """The cgroup(s) of one process tree: CPU accounting, membership, an optional quota.

    Use :meth:`add` on the tree's root before it forks or starts threads; its descendants
    inherit the group. :meth:`close` kills whatever is still inside and removes it.
    """

    def __init__(self, name: str, cpu_quota: float | None = None):
        tag = f"{owner_tag()}-{name}"
        v2 = _base(None)
        self.paths: list[Path] = []
        self.usage_file: Path | None = None
        self.quota_cores = cpu_quota
        if v2 is not None:
            self.v2 = self._make(v2 / tag)
            self.usage_file = self.v2 / "cpu.stat" if self.v2 else None
        else:
            self.v2 = None
        if self.usage_file is None:
            acct = _base("cpuacct")
            d = self._make(acct / tag) if acct else None
            self.usage_file = d / "cpuacct.usage" if d else None
        if self.usage_file is None:
            self.close()
            raise CgroupError("no writable cgroup hierarchy with CPU accounting "
                              "(needs root and cgroupfs)")
        if cpu_quota is not None:
            self._set_quota(tag, cpu_quota)

    def _make(self, path: Path) -> Path | None:
        try:
            path.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        self.paths.append(path)
        return path

    def _set_quota(self, tag: str, cores: float) -> None:
        period = QUOTA_PERIOD_US
        quota = int(cores * period)
        if quota < MIN_QUOTA_US:
            period = int(MIN_QUOTA_US / cores)
            quota = MIN_QUOTA_US
        try:
            if self.v2 is not None and _v2_has_cpu(self.v2.parent):
                (self.v2 / "cpu.max").write_text(f"{quota} {period}")
                return
            cpu = _base("cpu")
            d = self._make(cpu / tag) if cpu else None
            if d is None:
                raise OSError("no writable cpu controller")
            (d / "cpu.cfs_period_us").write_text(str(period))
            (d / "cpu.cfs_quota_us").write_text(str(quota))
        except OSError as e:
            self.close()
            raise CgroupError(f"cannot set a CPU quota here (cgroup v2 cpu.max or v1 "
                              f"cpu.cfs_quota_us not writable: {e.strerror or e})") from None

    def add(self, pid: int) -> None:
        """Move ``pid`` (and all its threads) into every hierarchy of the group."""
        for path in self.paths:
            (path / "cgroup.procs").write_text(str(pid))

    def cpu_s(self) -> float | None:
        """CPU seconds used by every process ever in the group (``None`` if unreadable)."""
        try:
            text = self.usage_file.read_text()
        except OSError:
            return None
        if self.usage_file.name == "cpuacct.usage":
            return int(text) / 1e9
        for line in text.splitlines():
            k, _, v = line.partition(" ")
            if k == "usage_usec":
                return int(v) / 1e6
        return None

    def cpu_stall_s(self) -> float | None:
        """Seconds during which some process of the group was runnable but waiting for a
        CPU (v2 pressure stall information, ``cpu.pressure`` "some"; ``None`` without)."""
        if self.v2 is None:
            return None
        try:
            text = (self.v2 / "cpu.pressure").read_text()
        except OSError:
            return None
        for line in text.splitlines():
            if line.startswith("some "):
                fields = dict(f.split("=", 1) for f in line.split()[1:])
                return int(fields["total"]) / 1e6
        return None

    def pids(self) -> list[int]:
        """The processes in the group now."""
        return sorted({p for path in self.paths for p in _read_pids(path)})

    def close(self) -> list[int]:
        """Kill what is left in the group and remove it; returns the pids that were left."""
        left = self.pids()
        for path in reversed(self.paths):
            if left:
                _kill_members(path)
            _rmdir(path)
        self.paths = []
        return left


def open_group(name: str, cpu_quota: float | None = None) -> tuple[Group | None, str | None]:
    """A :class:`Group`, or ``None`` and why not (the caller samples ``/proc`` instead).

    A quota that cannot be set is not downgraded: it raises :class:`CgroupError`.
    """
    try:
        return Group(name, cpu_quota), None
    except CgroupError as e:
        if cpu_quota is not None:
            raise
        return None, str(e)


def check_quota() -> str | None:
    """Why a CPU quota cannot be set here (``None``: it can)."""
    try:
        Group("probe", cpu_quota=0.5).close()
    except CgroupError as e:
        return str(e)
    return None
