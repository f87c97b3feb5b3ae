"""Fixtures: echo servers and the loadgen CLI, each in its own process.

Locust and gevent never enter the pytest process: every run is `python -m loadgen` in a
subprocess, and every process started here is killed in the fixture's finalizer.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
from pathlib import Path

import pytest

HERE = Path(__file__).parent
ROOT = HERE.parent.parent
PY = sys.executable


def _raise_nofile() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def _has_asyncio_strategy() -> bool:
    probe = "import servers, sys; sys.exit(0 if 'asyncio' in servers.STRATEGIES else 1)"
    try:
        return subprocess.run([PY, "-c", probe], cwd=ROOT, capture_output=True,
                              timeout=30).returncode == 0
    except (subprocess.TimeoutExpired, OSError):
        return False


class Server:
    def __init__(self, proc: subprocess.Popen, port: int) -> None:
        self.proc = proc
        self.port = port

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)


def _start(cmd: list[str]) -> Server:
    proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            preexec_fn=_raise_nofile)
    line = proc.stdout.readline()
    if not line:
        proc.kill()
        proc.wait()
        raise RuntimeError(f"server {cmd} did not start")
    return Server(proc, json.loads(line)["port"])


def _stop(s: Server) -> None:
    if s.proc.poll() is None:
        s.proc.terminate()
        try:
            s.proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            s.proc.kill()
            s.proc.wait()
    s.proc.stdout.close()


@pytest.fixture(scope="session")
def asyncio_cmd() -> list[str]:
    """The reference asyncio server (the servers package's, else the test one)."""
    if _has_asyncio_strategy():
        return [PY, "-m", "servers", "asyncio", "--port", "0"]
    return [PY, str(HERE / "echo_server.py"), "echo"]


@pytest.fixture
def asyncio_server(asyncio_cmd):
    s = _start(asyncio_cmd)
    yield s
    _stop(s)


@pytest.fixture
def fault_server():
    """Factory: fault_server("corrupt", every=10) starts a test server of that mode
    (``size``, ``clean``, ``mss``: its --size, --clean and --mss, see echo_server.py)."""
    started = []

    def start(mode: str, every: int = 10, size: int = 64, clean: int = 0,
              mss: int = 0) -> Server:
        s = _start([PY, str(HERE / "echo_server.py"), mode, "--every", str(every),
                    "--size", str(size), "--clean", str(clean), "--mss", str(mss)])
        started.append(s)
        return s

    yield start
    for s in started:
        _stop(s)


def loadgen_cmd(port: int, *args: str) -> list[str]:
    return [PY, "-m", "loadgen", "--port", str(port), *args]


def run_loadgen(port: int, *args: str, timeout: float = 150) -> dict:
    """Run the CLI with --json; return the result dict (asserting exit 0)."""
    p = subprocess.run(loadgen_cmd(port, *args, "--json"), cwd=ROOT, capture_output=True,
                       text=True, timeout=timeout)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    return json.loads(p.stdout)


@pytest.fixture
def kill_on_exit():
    """Processes registered here are SIGKILLed (with their children) at teardown."""
    procs: list[subprocess.Popen] = []
    yield procs.append
    for p in procs:
        if p.poll() is None:
            try:
                os.killpg(p.pid, signal.SIGKILL)
            except OSError:
                p.kill()
            p.wait()
