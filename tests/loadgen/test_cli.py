"""The command line: bad input fails fast in one line; signals stop every process."""

from __future__ import annotations

import json
import resource
import signal
import socket
import subprocess
import time

import psutil
import pytest

from tests.loadgen.conftest import ROOT, loadgen_cmd

PROGRESS_KEYS = {"event", "phase", "elapsed", "connected", "messages", "rate", "errors"}

BAD = [
    (["--connections", "10"], "--port"),
    (["--port", "1", "--connections", "0"], "--connections"),
    (["--port", "1", "--connections", "2", "--size", "0"], "--size"),
    (["--port", "1", "--connections", "2", "--size", str((1 << 20) + 1)], "--size"),
    (["--port", "1", "--connections", "2", "--mode", "open"], "--rate"),
    (["--port", "1", "--connections", "2", "--rate", "10"], "--rate"),
    (["--port", "1", "--connections", "2", "--mode", "sideways"], "--mode"),
    (["--port", "1", "--connections", "2", "--remote-workers", "3"], "--remote-workers"),
    (["--port", "1", "--connections", "2", "--workers", "0"], "--workers 0"),
    (["--port", "1", "--connections", "2", "--ramp-rate", "1e-300"], "--ramp-rate"),
    (["--port", "1", "--connections", "2", "--ramp-timeout", "1e300"], "--ramp-timeout"),
    (["--port", "1", "--connections", "2", "--join-timeout", "nan"], "--join-timeout"),
    (["--port", "1", "--connections", "2", "--duration", "-1"], "--duration"),
    (["--port", "1", "--connections", "30000", "--workers", "1"], "fd"),
    (["--port", "1", "--connections", "2", "--json-out", "/nonexistent/dir/r.json"], "json-out"),
    (["--port", "1", "--connections", "2", "--json-out", "/proc/r.json"], "cannot write"),
    (["--port", "1", "--connections", "2", "--json-out", "/tmp"], "is a directory"),
    (["--port", "1", "--connections", "2", "--host", "no.such.host.invalid"], "--host"),
    (["worker", "--master", "nocolon"], "--master"),
    (["worker", "--master", "127.0.0.1:0"], "--master"),
    (["worker", "--master", "127.0.0.1:1", "--join-timeout", "0"], "--join-timeout"),
]


@pytest.mark.parametrize("args,word", BAD)
def test_bad_arguments_exit_2_with_one_line(args, word):
    p = subprocess.run([*loadgen_cmd(0)[:3], *args], cwd=ROOT, capture_output=True,
                       text=True, timeout=30)
    assert p.returncode == 2
    assert p.stdout == ""
    lines = p.stderr.strip().splitlines()
    assert len(lines) == 1, p.stderr
    assert lines[0].startswith("loadgen: error:") and word in lines[0]


def test_json_out_is_written_and_human_summary_printed(asyncio_server, tmp_path):
    out = tmp_path / "r.json"
    p = subprocess.run(
        loadgen_cmd(asyncio_server.port, "--connections", "4", "--duration", "1",
                    "--warmup", "0", "--workers", "1", "--json-out", str(out)),
        cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert p.returncode == 0, p.stderr
    r = json.loads(out.read_text())
    assert r["messages"] > 0
    assert "verified echoes" in p.stdout
    assert [f.name for f in tmp_path.iterdir()] == ["r.json"]


@pytest.mark.parametrize("sig,code", [(signal.SIGTERM, 143), (signal.SIGINT, 130)])
def test_signal_stops_master_and_workers(asyncio_server, kill_on_exit, tmp_path, sig, code):
    out = tmp_path / "r.json"
    p = subprocess.Popen(
        loadgen_cmd(asyncio_server.port, "--connections", "20", "--duration", "60",
                    "--warmup", "0", "--workers", "2", "--progress", "json",
                    "--json-out", str(out)),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    kill_on_exit(p)
    for line in p.stderr:
        event = json.loads(line)
        assert set(event) == PROGRESS_KEYS and event["event"] == "progress"
        assert event["phase"] in ("join", "ramp", "warmup", "measure", "drain")
        if event["phase"] == "measure":
            break
    children = psutil.Process(p.pid).children(recursive=True)
    assert len(children) == 2
    p.send_signal(sig)
    assert p.wait(timeout=15) == code
    rest = p.stderr.read()
    assert "Traceback" not in rest
    time.sleep(0.2)
    assert not [c.pid for c in children if c.is_running() and c.status() != "zombie"]
    assert not out.exists()


def test_worker_started_by_hand_joins_the_master(asyncio_server, kill_on_exit):
    """`python -m loadgen worker --master HOST:PORT` is how workers on other machines join."""
    p = subprocess.Popen(
        loadgen_cmd(asyncio_server.port, "--connections", "6", "--duration", "1",
                    "--warmup", "0", "--workers", "1", "--remote-workers", "1",
                    "--progress", "json", "--json"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    kill_on_exit(p)
    line = json.loads(p.stderr.readline())
    assert line["event"] == "waiting_for_workers"
    w = subprocess.Popen([*loadgen_cmd(0)[:3], "worker", "--master",
                          f"{line['host']}:{line['port']}", "--join-timeout", "1"],
                         cwd=ROOT, stderr=subprocess.PIPE, text=True, start_new_session=True)
    kill_on_exit(w)
    out, err = p.communicate(timeout=150)
    assert p.returncode == 0, err
    r = json.loads(out)
    assert [x["connections"] for x in r["workers"]] == [3, 3]
    assert r["connections"]["served"] == 6 and r["messages"] > 0
    # After the case it waits for the next master, and exits 0 when none comes.
    assert w.wait(timeout=15) == 0
    said = [ln.split(": ", 1)[1] for ln in w.stderr.read().splitlines()]
    where = f"{line['host']}:{line['port']}"
    assert said == [f"waiting for the master at {where} (up to 1 s)",
                    f"case 1 done; waiting for the next master at {where} (up to 1 s)",
                    f"no master at {where} for 1 s after 1 case(s): exiting"]


def test_worker_with_no_master_says_it_waits_and_gives_up():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))  # a port nobody listens on
        port = s.getsockname()[1]
        t0 = time.monotonic()
        p = subprocess.run([*loadgen_cmd(0)[:3], "worker", "--master", f"127.0.0.1:{port}",
                            "--join-timeout", "1.5"], cwd=ROOT, capture_output=True,
                           text=True, timeout=60)
    assert p.returncode == 1
    assert p.stderr.splitlines() == [
        f"loadgen worker: waiting for the master at 127.0.0.1:{port} (up to 1.5 s)",
        f"loadgen worker: no master at 127.0.0.1:{port} within 1.5 s: giving up"]
    assert time.monotonic() - t0 < 1.5 + 15  # the wait, plus the interpreter's start


def test_workers_die_with_a_killed_master(asyncio_server, kill_on_exit):
    p = subprocess.Popen(
        loadgen_cmd(asyncio_server.port, "--connections", "4", "--duration", "60",
                    "--warmup", "0", "--workers", "2", "--progress", "json", "--json"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    kill_on_exit(p)
    for line in p.stderr:
        if json.loads(line).get("phase") == "measure":
            break
    children = psutil.Process(p.pid).children(recursive=True)
    assert len(children) == 2
    p.kill()  # SIGKILL: the master cleans up nothing
    p.wait(timeout=10)
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


@pytest.mark.parametrize("delay", [0.05, 0.3])
def test_workers_die_with_a_master_killed_right_after_spawning_them(asyncio_server,
                                                                   kill_on_exit, delay):
    """The parent-death signal is set before the worker's imports: a master killed while
    its workers still import leaves none behind."""
    p = subprocess.Popen(
        loadgen_cmd(asyncio_server.port, "--connections", "4", "--duration", "60",
                    "--workers", "2"),
        cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
        start_new_session=True)
    kill_on_exit(p)
    master = psutil.Process(p.pid)
    deadline = time.monotonic() + 60
    while len(children := master.children(recursive=True)) < 2:
        assert time.monotonic() < deadline, "the master started no workers"
        time.sleep(0.01)
    time.sleep(delay)
    p.kill()
    p.wait(timeout=10)
    gone, alive = psutil.wait_procs(children, timeout=5)
    assert not alive


def test_a_remote_worker_checks_its_own_share_against_its_own_fd_limit(asyncio_server,
                                                                       kill_on_exit):
    """The master's fd limit says nothing of another host's: each worker checks its share."""
    p = subprocess.Popen(
        loadgen_cmd(asyncio_server.port, "--connections", "200", "--workers", "0",
                    "--remote-workers", "1", "--progress", "json", "--json"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    kill_on_exit(p)
    line = json.loads(p.stderr.readline())

    def low_fd_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (150, 150))

    w = subprocess.Popen([*loadgen_cmd(0)[:3], "worker", "--master",
                          f"{line['host']}:{line['port']}", "--join-timeout", "1"],
                         cwd=ROOT, stderr=subprocess.DEVNULL, preexec_fn=low_fd_limit,
                         start_new_session=True)
    kill_on_exit(w)
    out, err = p.communicate(timeout=120)
    assert p.returncode == 1 and out == ""
    assert err.strip().splitlines()[-1] == (
        f"loadgen: error: worker 0 on {socket.gethostname()}: 200 connections per worker "
        f"need 264 fds but the fd hard limit on {socket.gethostname()} is 150: use more "
        "workers or raise 'ulimit -Hn'")
    assert w.wait(timeout=15) == 0
