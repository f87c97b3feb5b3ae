"""Load from several hosts: a server host and worker hosts on a bridge (network namespaces).

Workers are started once and serve case after case; the worker set is fixed when a case
starts (a late worker is refused); a lost worker ends the case within seconds with the
survivors' figures, marked; remote workers exit within 5 s of their master's death.
"""

from __future__ import annotations

import json
import signal
import subprocess
import time

import psutil
import pytest

from tests import netns
from tests.loadgen.conftest import HERE, PY, ROOT

SERVER = "198.18.0.1"
WORKERS = {"w1": "198.18.0.11", "w2": "198.18.0.12", "w3": "198.18.0.13"}
MASTER_PORT = 5557
JOIN_S = 30


@pytest.fixture(scope="module")
def hosts():
    with netns.hosts_or_skip({"srv": SERVER, **WORKERS}) as topo:
        yield topo
        left = [p.pid for p in topo.procs if p.poll() is None]
        assert not left, f"processes left running: {left}"


class Case:
    """A server and a master on the server host, the master's stderr followed."""

    def __init__(self, topo: netns.Topology, *args: str) -> None:
        self.server = topo.popen("srv", [PY, str(HERE / "echo_server.py"), "echo", "--host",
                                         SERVER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
        port = json.loads(self.server.stdout.readline())["port"]
        self.master = topo.popen(
            "srv", [PY, "-m", "loadgen", "--host", SERVER, "--port", str(port), "--workers",
                    "0", "--master-bind", f"{SERVER}:{MASTER_PORT}", "--join-timeout",
                    str(JOIN_S), "--progress", "json", "--json", *args],
            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.other: list[str] = []

    def wait_for_phase(self, phase: str) -> None:
        for line in self.master.stderr:
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                self.other.append(line)
                continue
            if event.get("phase") == phase:
                return
        raise AssertionError(f"master ended before {phase}: {self.other}")

    def finish(self, timeout: float = 60) -> tuple[int, dict | None, str]:
        out, err = self.master.communicate(timeout=timeout)
        self.server.send_signal(signal.SIGTERM)
        stopped = json.loads(self.server.communicate(timeout=10)[0].strip().splitlines()[-1])
        self.peers = stopped["peers"]
        return self.master.returncode, json.loads(out) if out.strip() else None, err


def worker(topo: netns.Topology, host: str) -> subprocess.Popen:
    return topo.popen(host, [PY, "-m", "loadgen", "worker", "--master",
                             f"{SERVER}:{MASTER_PORT}", "--join-timeout", str(JOIN_S)],
                      cwd=ROOT, stderr=subprocess.PIPE, text=True)


def gone_within(proc: subprocess.Popen, seconds: float) -> float | None:
    """Seconds until ``proc`` exited, or None if it outlived ``seconds``."""
    t0 = time.monotonic()
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        return None
    return time.monotonic() - t0


def test_workers_started_once_serve_cases_refuse_the_late_and_survive_a_loss(hosts):
    w1, w2 = worker(hosts, "w1"), worker(hosts, "w2")

    # Case 1: 1,000 connections from two hosts; a third joins mid-measure and is refused.
    case = Case(hosts, "--connections", "1000", "--remote-workers", "2", "--mode", "open",
                "--rate", "1000", "--duration", "3", "--warmup", "0.5")
    case.wait_for_phase("measure")
    w3 = worker(hosts, "w3")
    assert w3.wait(timeout=30) == 1
    assert "refused by the master" in w3.stderr.read()
    rc, r, err = case.finish()
    assert rc == 0, err
    by_address = {w["address"]: w for w in r["workers"]}
    assert set(by_address) == {WORKERS["w1"], WORKERS["w2"]}
    assert {w["host"] for w in r["workers"]} == {"w1", "w2"}
    assert {a: by_address[a]["connections"] for a in by_address} == case.peers == {
        WORKERS["w1"]: 500, WORKERS["w2"]: 500}
    assert r["messages"] == sum(w["messages"] for w in r["workers"]) \
        == r["latency_us"]["corrected"]["count"] \
        == sum(w["histogram_count"] for w in r["workers"]) > 2000
    assert [(x["host"], x["phase"]) for x in r["late_workers"]] == [("w3", "measure")]
    assert r["lost_workers"] == []
    pids = {w["address"]: w["pid"] for w in r["workers"]}
    assert pids == {WORKERS["w1"]: w1.pid, WORKERS["w2"]: w2.pid}

    # Case 2: the same worker processes join the next master; w2 is killed mid-measure.
    case = Case(hosts, "--connections", "200", "--remote-workers", "2", "--duration", "8",
                "--warmup", "0")
    case.wait_for_phase("measure")
    time.sleep(1.0)
    w2.kill()
    killed = time.monotonic()
    rc, r, err = case.finish(timeout=30)
    ended_s = time.monotonic() - killed
    assert rc == 3, err
    assert ended_s <= 10, f"case ended {ended_s:.1f} s after the worker was killed"
    [lost] = r["lost_workers"]
    assert (lost["address"], lost["pid"], lost["phase"]) == (WORKERS["w2"], w2.pid, "measure")
    assert f"worker {lost['index']} lost" in err
    [survivor] = r["workers"]
    assert (survivor["address"], survivor["pid"]) == (WORKERS["w1"], w1.pid)
    assert r["messages"] == survivor["messages"] > 0
    assert 0.5 < r["measure_s"] < 8  # ended early, at the loss
    assert case.peers == {WORKERS["w1"]: 100, WORKERS["w2"]: 100}

    # Case 3: w1 again and a fresh w2; the master dies mid-measure: the workers follow.
    w2 = worker(hosts, "w2")
    case = Case(hosts, "--connections", "200", "--remote-workers", "2", "--duration", "8",
                "--warmup", "0")
    case.wait_for_phase("measure")
    remote = [psutil.Process(w1.pid), psutil.Process(w2.pid)]
    case.master.kill()
    exits = [gone_within(w, 5.0) for w in (w1, w2)]
    assert None not in exits, f"remote workers still running 5 s after the master's death: {exits}"
    assert [w.returncode for w in (w1, w2)] == [1, 1]
    assert not [p.pid for p in remote if p.is_running() and p.status() != "zombie"]
    case.master.wait()
    case.server.kill()
    case.server.wait()
