"""Hosts for tests of load from several machines: Linux network namespaces on a bridge.

:class:`Topology` makes a hub namespace holding a bridge and, per host, a namespace with
one veth into the bridge carrying an address from the RFC 2544 benchmarking range
198.18.0.0/15. Nothing is added to the caller's own namespace: the addresses exist only
inside the namespaces made here. :meth:`Topology.close` kills every process left in them
and deletes every namespace, whatever happened before; a namespace left by a test process
that was itself killed is removed by the next one (:func:`sweep`).

Processes run in a host with :meth:`Topology.popen` (``ip netns exec``, and ``unshare
--uts`` so each host has a name of its own); their pid is the command's own (every step
execs). Where any of that is refused (a container without the privileges) the topology
is :class:`Unavailable`.
"""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

PREFIX = "c10k-mh-"
NETNS_DIR = Path("/run/netns")
NET = "198.18.0.0/15"
PREFIXLEN = 16


class Unavailable(Exception):
    """Namespaces cannot be made here; str(e) says why (a test skips with it)."""


def _ip(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=30,
                          check=check)


def why_unavailable() -> str | None:
    """Why this machine cannot build the topology (``None``: it can)."""
    if shutil.which("ip") is None:
        return "no 'ip' command (iproute2)"
    if shutil.which("unshare") is None:
        return "no 'unshare' command (util-linux)"
    if os.geteuid() != 0:
        return "network namespaces need root"
    return None


def sweep() -> list[str]:
    """Delete namespaces of this module left by test processes no longer alive."""
    gone = []
    for ns in _ip("netns", "list", check=False).stdout.split():
        if not ns.startswith(PREFIX):
            continue
        owner = ns[len(PREFIX):].split("-", 1)[0]
        if owner.isdigit() and not Path(f"/proc/{owner}").exists():
            _kill_all(ns)
            _ip("netns", "del", ns, check=False)
            gone.append(ns)
    return gone


def _kill_all(ns: str) -> list[int]:
    pids = [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]
    for pid in pids:
        try:
            os.kill(pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
    return pids


class Topology:
    """A bridge and hosts on it, each ``name -> address``; use as a context manager."""

    def __init__(self) -> None:
        why = why_unavailable()
        if why:
            raise Unavailable(why)
        sweep()
        self.tag = f"{PREFIX}{os.getpid()}-"
        self.hub = self.tag + "hub"
        self.hosts: dict[str, str] = {}
        self.made: list[str] = []
        self.procs: list[subprocess.Popen] = []
        try:
            self._add_ns(self.hub)
            _ip("-n", self.hub, "link", "add", "br0", "type", "bridge")
            _ip("-n", self.hub, "link", "set", "br0", "up")
            probe = subprocess.run(self.argv("hub", ["true"]), capture_output=True,
                                   text=True, timeout=30)
        except subprocess.CalledProcessError as e:
            self.close()
            raise Unavailable(f"'{' '.join(e.cmd)}' failed: {e.stderr.strip()}") from None
        if probe.returncode != 0:
            self.close()
            raise Unavailable(f"cannot run a command in a host: {probe.stderr.strip()}")

    def __enter__(self) -> Topology:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def ns(self, host: str) -> str:
        return self.tag + host

    def _add_ns(self, ns: str) -> None:
        _ip("netns", "add", ns)
        self.made.append(ns)
        _ip("-n", ns, "link", "set", "lo", "up")

    def add_host(self, name: str, address: str) -> str:
        """A host ``name`` on the bridge at ``address`` (in 198.18.0.0/15); returns it."""
        assert address.startswith(("198.18.", "198.19.")), f"{address} is not in {NET}"
        ns = self.ns(name)
        self._add_ns(ns)
        port = f"v-{name}"
        _ip("-n", self.hub, "link", "add", port, "type", "veth", "peer", "name", "eth0",
            "netns", ns)
        _ip("-n", self.hub, "link", "set", port, "master", "br0", "up")
        _ip("-n", ns, "addr", "add", f"{address}/{PREFIXLEN}", "dev", "eth0")
        _ip("-n", ns, "link", "set", "eth0", "up")
        self.hosts[name] = address
        return address

    def argv(self, host: str, argv: list[str]) -> list[str]:
        """``argv`` run on ``host``, whose hostname there is ``host``."""
        return ["ip", "netns", "exec", self.ns(host), "unshare", "--uts", "--", "sh", "-c",
                'hostname "$0" && exec "$@"', host, *argv]

    def popen(self, host: str, argv: list[str], **kw) -> subprocess.Popen:
        p = subprocess.Popen(self.argv(host, argv), **kw)
        self.procs.append(p)
        return p

    def pids(self) -> list[int]:
        """Every process alive in any host of the topology."""
        out = []
        for ns in self.made:
            out += [int(p) for p in _ip("netns", "pids", ns, check=False).stdout.split()]
        return out

    def close(self) -> None:
        """Kill what runs in the hosts, reap it, delete every namespace made."""
        for p in self.procs:
            if p.poll() is None:
                p.kill()
        for ns in self.made:
            _kill_all(ns)
        for p in self.procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                pass
        for ns in reversed(self.made):
            _ip("netns", "del", ns, check=False)
        self.made.clear()


@contextlib.contextmanager
def hosts_or_skip(hosts: dict[str, str]) -> Iterator[Topology]:
    """A topology of ``hosts`` (name -> address), or the calling test skipped with the
    reason this machine cannot make one; removed on leaving."""
    why = why_unavailable()
    if why:
        pytest.skip(f"multi-host tests need network namespaces: {why}")
    try:
        topo = Topology()
    except Unavailable as e:
        pytest.skip(f"multi-host tests need network namespaces: {e}")
    with topo:
        for name, address in hosts.items():
            topo.add_host(name, address)
        yield topo
