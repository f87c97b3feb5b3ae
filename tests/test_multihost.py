"""`runner.py bench` past one machine: the server on the runner's host, load from others.

The hosts are network namespaces on a bridge (tests/netns.py). Two worker hosts start
their workers once; the runner's cases each get them, and each case records where its
load came from.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from tests import netns

ROOT = Path(__file__).resolve().parent.parent
PY = sys.executable
SERVER = "198.18.0.1"
WORKERS = {"w1": "198.18.0.11", "w2": "198.18.0.12"}
MASTER = f"{SERVER}:5557"


def runner(args: list[str], **kw) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "runner.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=60, **kw)


@pytest.mark.parametrize("args,msg", [
    (["--remote-workers", "2"], "--remote-workers needs --master-bind HOST:PORT"),
    (["--remote-workers", "2", "--master-bind", "127.0.0.1:0"], "needs a fixed port"),
    (["--remote-workers", "-1", "--master-bind", "127.0.0.1:5557"],
     "--remote-workers: -1 must be >= 0"),
    (["--remote-workers", "200", "--master-bind", "127.0.0.1:5557", "--connections", "100"],
     "--remote-workers: 200 is more than the fewest connections"),
    (["--master-bind", "nocolon"], "--master-bind must be HOST:PORT"),
    (["--workers", "0"], "--workers: 0 must be >= 1"),
    (["--server-host", "0.0.0.0"], "--server-host: '0.0.0.0' is a wildcard"),
    (["--server-host", "198.18.255.254"], "is not an IPv4 address of this host"),
    (["--join-timeout", "nan"], "--join-timeout: nan is not a finite number"),
])
def test_bad_multihost_settings_are_one_line_and_exit_2(tmp_path, args, msg):
    out = runner(["bench", "--out", str(tmp_path), *args])
    assert out.returncode == 2, out.stderr
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0], out.stderr
    assert list(tmp_path.iterdir()) == []


def test_toml_takes_the_multihost_settings(tmp_path):
    toml = tmp_path / "c.toml"
    toml.write_text('server_host = "127.0.0.2"\nremote_workers = "x"\n')
    out = runner(["bench", "--config", str(toml), "--out", str(tmp_path)])
    assert out.returncode == 2
    assert "--remote-workers: 'x' is not an integer" in out.stderr


@pytest.fixture
def hosts():
    with netns.hosts_or_skip({"srv": SERVER, **WORKERS}) as topo:
        yield topo


def test_remote_workers_started_once_serve_every_case_of_a_run(hosts, tmp_path):
    workers = {h: hosts.popen(h, [PY, "-m", "loadgen", "worker", "--master", MASTER,
                                  "--join-timeout", "60"], cwd=ROOT, stderr=subprocess.PIPE,
                              text=True)
               for h in WORKERS}
    bench = hosts.popen("srv", [PY, "runner.py", "bench", "--strategies", "asyncio",
                                "--connections", "40,80", "--repeats", "1", "--duration", "1",
                                "--warmup", "0", "--server-host", SERVER, "--workers", "0",
                                "--remote-workers", "2", "--master-bind", MASTER,
                                "--no-report", "--out", str(tmp_path)],
                        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, err = bench.communicate(timeout=120)
    assert bench.returncode == 0, err
    [path] = tmp_path.glob("*.json")
    run = json.loads(path.read_text())
    assert run["config"]["remote_workers"] == 2 and run["config"]["server_host"] == SERVER
    assert len(run["cases"]) == 2
    for case, n in zip(run["cases"], (40, 80), strict=True):
        assert case["status"] == "ok", case["status"]
        assert case["server_cmd"][case["server_cmd"].index("--host") + 1] == SERVER
        lg = case["loadgen"]
        assert lg["config"]["host"] == SERVER
        per_host = {w["host"]: (w["address"], w["pid"], w["connections"]) for w in lg["workers"]}
        assert per_host == {h: (WORKERS[h], workers[h].pid, n // 2) for h in WORKERS}
        assert lg["messages"] == sum(w["messages"] for w in lg["workers"]) > 0
    for w in workers.values():
        assert w.poll() is None  # waiting for a next case
        w.send_signal(signal.SIGTERM)
        assert w.wait(timeout=10) == 128 + signal.SIGTERM
        said = w.stderr.read()
        assert said.count("done; waiting for the next master") == 2, said


def test_a_worker_lost_mid_case_fails_it_promptly_and_keeps_the_survivors_figures(hosts,
                                                                                    tmp_path):
    import time

    workers = {h: hosts.popen(h, [PY, "-m", "loadgen", "worker", "--master", MASTER,
                                  "--join-timeout", "30"], cwd=ROOT, stderr=subprocess.DEVNULL)
               for h in WORKERS}
    bench = hosts.popen("srv", [PY, "runner.py", "bench", "--strategies", "asyncio",
                                "--connections", "40", "--repeats", "1", "--duration", "30",
                                "--warmup", "1", "--server-host", SERVER, "--workers", "0",
                                "--remote-workers", "2", "--master-bind", MASTER,
                                "--no-report", "--out", str(tmp_path)],
                        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        time.sleep(8)  # the runner, server and master start, 40 connections ramp, warm-up
        workers["w2"].kill()
        killed = time.monotonic()
        _, err = bench.communicate(timeout=60)
        assert time.monotonic() - killed < 15, err  # not the 30 s measure phase
    finally:
        for w in workers.values():
            if w.poll() is None:
                w.kill()
    [path] = tmp_path.glob("*.json")
    [case] = json.loads(path.read_text())["cases"]
    assert case["status"].startswith(
        f"failed: worker lost (w2 {WORKERS['w2']} pid {workers['w2'].pid}, at t="), case["status"]
    assert case["verdict"]["kind"] == "failed"
    lg = case["loadgen"]  # the survivor's figures, kept for inspection
    assert [w["host"] for w in lg["workers"]] == ["w1"] and lg["messages"] > 0
