"""C10K: the goroutine server holds 10,000 concurrent connections and echoes on every one.

The client (tenk_client.py) runs in its own process with its own fd limit, on one epoll
thread. It keeps every connection open until every echo has been checked byte for byte,
then holds them while we look at the server (10,000 sockets open in it at once), then
closes them. The server must then still answer and exit 0 on SIGTERM.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers.support import ServerProcess, read_line, start_server, wait_closed

N = 10_000
CLIENT = Path(__file__).with_name("tenk_client.py")

pytestmark = pytest.mark.timeout(90)


def _need_fds() -> None:
    _, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard != resource.RLIM_INFINITY and hard < N + 100:
        pytest.skip(f"fd hard limit {hard} < {N + 100}: cannot hold {N} connections")


@pytest.mark.parametrize("procs", ["1", "2"])
def test_goroutine_server_echoes_on_10000_concurrent_connections(procs, tmp_path):
    _need_fds()
    t0 = time.monotonic()
    server: ServerProcess = start_server(
        ["goroutine", "--procs", procs, "--port", "0"], tmp_path / "server.err"
    )
    client = None
    try:
        client = subprocess.Popen(
            [sys.executable, str(CLIENT), "--port", str(server.port), "--connections", str(N),
             "--hold", "--timeout", "70"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        events = []
        while True:
            line = read_line(client, 75)
            assert line, f"client ended early; events {events}; stderr {client.stderr.read()!r}"
            ev = json.loads(line)
            events.append(ev)
            assert ev["event"] != "error", f"client error: {ev}; server: {server.stderr()}"
            if ev["event"] == "verified":
                break
        assert events[0] == {"event": "connected", "connections": N,
                             "seconds": events[0]["seconds"]}
        assert events[-1]["connections"] == N
        # Every connection is open in the server right now (plus listener, epoll, ...).
        assert server.ps.num_fds() >= N
        threads = server.ps.num_threads()
        assert threads < 20, f"{threads} threads: not one per connection"
        client.stdin.write(b"\n")
        client.stdin.flush()
        assert json.loads(read_line(client, 30))["event"] == "done"
        assert client.wait(30) == 0
        # Still serving after 10k closes.
        with server.connect() as s:
            s.sendall(b"still here")
            assert s.recv(100) == b"still here"
        server.proc.send_signal(signal.SIGTERM)
        assert server.proc.wait(10) == 0
        with pytest.raises(OSError):
            server.connect(timeout=1).close()
    finally:
        if client is not None and client.poll() is None:
            client.kill()
            client.wait()
        server.kill()
    assert time.monotonic() - t0 < 90


def test_shutdown_closes_every_open_connection(tmp_path):
    server = start_server(["goroutine", "--procs", "2", "--port", "0"], tmp_path / "server.err")
    try:
        socks = [server.connect() for _ in range(200)]
        for s in socks:
            s.sendall(b"x")
            assert s.recv(1) == b"x"
        server.proc.send_signal(signal.SIGINT)
        assert server.proc.wait(10) == 0
        assert {wait_closed(s, 5) for s in socks} <= {"eof", "reset"}
        for s in socks:
            s.close()
    finally:
        server.kill()


def _sched_lines(tmp_path, *args: str, env: dict | None = None, want: int = 1) -> list[str]:
    """Run the server with ``args`` and GODEBUG=schedtrace=200 until it has printed ``want``
    SCHED lines (at most 10 s: a machine busy with the previous test may stall it) and at
    least 1 s; its SCHED lines."""
    err = tmp_path / "stderr.txt"
    with open(err, "wb") as f:
        proc = subprocess.Popen(
            [sys.executable, "-m", "servers", "goroutine", *args, "--port", "0"],
            cwd=Path(__file__).resolve().parents[2], stdout=subprocess.PIPE, stderr=f,
            stdin=subprocess.DEVNULL,
            env={**os.environ, "GODEBUG": "schedtrace=200", **(env or {})},
        )
    try:
        assert json.loads(read_line(proc, 15))["strategy"] == "goroutine"
        t0 = time.monotonic()
        while time.monotonic() - t0 < 10 and (
                time.monotonic() - t0 < 1 or err.read_text().count("SCHED ") < want):
            time.sleep(0.05)
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(10) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
        proc.stdout.close()
    return [ln for ln in err.read_text().splitlines() if ln.startswith("SCHED ")]


def test_godebug_schedtrace_prints_sched_lines(tmp_path):
    lines = _sched_lines(tmp_path, "--procs", "2", want=3)
    assert len(lines) >= 3 and "gomaxprocs=2" in lines[0]
    ms = [int(ln.split()[1].removesuffix("ms:")) for ln in lines]
    assert ms == sorted(ms) and ms[-1] >= 400  # one line per period, not a burst


@pytest.mark.parametrize("gomaxprocs, want", [(None, 1), ("3", 3), ("x", 1)])
def test_default_procs_is_gomaxprocs_else_one_not_the_cpus(tmp_path, gomaxprocs, want):
    """Not Go's CPU count: one P unless $GOMAXPROCS says otherwise (servers/goroutine.py)."""
    lines = _sched_lines(tmp_path, env={"GOMAXPROCS": gomaxprocs or ""})
    assert lines and f"gomaxprocs={want} " in lines[0]
