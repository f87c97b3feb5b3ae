"""bench.echobench: the compiled echo client's open loop, and CPU over its measure window."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from bench import echobench

pytestmark = [
    pytest.mark.timeout(120),
    pytest.mark.skipif(shutil.which("cc") is None, reason="needs a C compiler"),
]


@pytest.fixture(scope="module")
def client(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return echobench.compile_client(tmp_path_factory.mktemp("echoclient"))


def echo_server() -> tuple[socket.socket, threading.Thread]:
    """A thread per connection echoing until EOF; each accepted connection counted."""
    ln = socket.create_server(("127.0.0.1", 0), backlog=128)

    def conn(c: socket.socket) -> None:
        with c:
            try:
                while data := c.recv(65536):
                    c.sendall(data)
            except OSError:  # reset: the client leaves with echoes in flight
                pass

    def accept() -> None:
        while True:
            try:
                c, _ = ln.accept()
            except OSError:
                return
            threading.Thread(target=conn, args=(c,), daemon=True).start()

    t = threading.Thread(target=accept, daemon=True)
    t.start()
    return ln, t


def test_open_loop_sends_at_the_rate_whatever_the_echoes(client):
    ln, _ = echo_server()
    try:
        port = ln.getsockname()[1]
        r = subprocess.run([str(client), "127.0.0.1", str(port), "20", "64", "0.5", "2", "500"],
                           capture_output=True, text=True, timeout=30)
    finally:
        ln.close()
    assert r.returncode == 0, r.stderr
    marker, result = r.stdout.splitlines()
    assert marker == "measure"
    res = json.loads(result)
    assert 900 <= res["messages"] <= 1100  # 500 msg/s for 2 s
    assert res["outstanding"] <= 20 and res["errors"] == 0


def test_closed_loop_keeps_one_message_in_flight_per_connection(client):
    ln, _ = echo_server()
    try:
        port = ln.getsockname()[1]
        r = subprocess.run([str(client), "127.0.0.1", str(port), "4", "64", "0.2", "1"],
                           capture_output=True, text=True, timeout=30)
    finally:
        ln.close()
    assert r.returncode == 0, r.stderr
    res = json.loads(r.stdout.splitlines()[1])
    assert res["messages"] > 1000 and res["outstanding"] == 4


def test_server_cpu_is_taken_over_the_measure_window_only(client):
    # asyncio spends its start-up and 200 connections' accepts before the window; an
    # idle-rate window then costs a few ms of CPU, far below the accept phase's.
    load = echobench.EchoLoad(connections=200, size=64, warmup=0.5, duration=1.0, rate=50.0)
    res = echobench.throughput("asyncio", load, echobench.Pinning(0, 1), client)
    assert 40 <= res["messages"] <= 60
    assert res["server_cpu_s"] < 0.05
    assert res["cpu_us_per_msg"] == pytest.approx(res["server_cpu_s"] / res["messages"] * 1e6,
                                                  rel=0.05)


def test_cpu_ns_counts_every_thread_of_a_process():
    spun, done = threading.Event(), threading.Event()

    def spin(until: float) -> None:
        while time.monotonic() < until:
            pass
        spun.set()
        done.wait(10)  # alive when counted: an exited thread takes its time along

    c0 = echobench.cpu_ns(os.getpid())
    t = threading.Thread(target=spin, args=(time.monotonic() + 0.2,))
    t.start()
    spun.wait(10)
    try:
        assert echobench.cpu_ns(os.getpid()) - c0 >= 0.15e9
    finally:
        done.set()
        t.join()


def test_the_command_measures_throughput_and_memory_and_prints_its_table():
    # `python -m bench.echobench` as README names it, at a tiny scale: one repeat, and the
    # memory step with 100 connections.
    r = subprocess.run([sys.executable, "-m", "bench.echobench", "--servers", "asyncio",
                        "--connections", "10", "--duration", "0.5", "--warmup", "0.2",
                        "--repeat", "1", "--idle-conns", "100"],
                       cwd=Path(echobench.__file__).resolve().parents[1], capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    header, _, _, row = r.stdout.splitlines()[:4]
    assert header.startswith("client=bench/echoclient.c connections=10 size=64 closed loop")
    cells = row.split()
    assert cells[0] == "asyncio" and int(cells[1]) > 0 and float(cells[-1]) > 0  # KiB/conn
