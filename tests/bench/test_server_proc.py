"""bench.server_proc.Child.stop: a clean exit has no defect; a server that ignores SIGTERM,
or leaves a process behind, is killed and named in the defects."""

from __future__ import annotations

import os
import signal
import sys
import textwrap

import psutil
import pytest

from bench.server_proc import Child, wait_listening

pytestmark = pytest.mark.timeout(60)

# Each fake server prints the listening line once its signal handling and children are in
# place, so the test's SIGTERM cannot arrive before them.
LISTENING = 'print(\'{"event": "listening", "port": 0}\', flush=True)'
CLEAN = f"import time\n{LISTENING}\ntime.sleep(60)\n"
DEAF = f"""
import signal, time
signal.signal(signal.SIGTERM, signal.SIG_IGN)
{LISTENING}
time.sleep(60)
"""
# A child of its own that outlives it (no SIGTERM reaches it: it is not the group leader).
LEAVES_CHILD = f"""
import subprocess, time
subprocess.Popen(["sleep", "60"])
{LISTENING}
time.sleep(60)
"""
# A daemon: forked twice, so it is no longer a descendant, only a member of the group.
LEAVES_DAEMON = f"""
import os, time
r, w = os.pipe()
if os.fork() == 0:
    if os.fork() == 0:
        os.write(w, b"x")
        time.sleep(60)
    os._exit(0)
os.read(r, 1)
os.wait()
{LISTENING}
time.sleep(60)
"""


@pytest.fixture
def start(tmp_path):
    """start(source) runs ``python -c source`` as a Child, in a process group of its own
    that is killed whole at teardown."""
    children: list[Child] = []

    def run(source: str) -> Child:
        c = Child([sys.executable, "-c", textwrap.dedent(source)], tmp_path, "server")
        children.append(c)
        wait_listening(c, timeout=30)
        return c

    yield run
    for c in children:  # the whole group, even if stop() missed a member
        try:
            os.killpg(c.pid, signal.SIGKILL)
        except ProcessLookupError:
            pass
        c.proc.wait()


def _gone(pid: int) -> bool:
    try:
        return psutil.Process(pid).status() == psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return True


def test_a_server_that_exits_on_sigterm_has_no_defect(start):
    c = start(CLEAN)
    assert c.stop(grace=5) == []
    assert c.exit_info() == {"code": None, "signal": 15}


def test_a_server_ignoring_sigterm_is_killed_and_named(start):
    c = start(DEAF)
    defects = c.stop(grace=0.5)
    assert defects == ["server still running 0.5 s after SIGTERM: killed"]
    assert c.exit_info() == {"code": None, "signal": 9}


def _group(pgid: int) -> list[int]:
    """Pids of the live processes in process group ``pgid``, its leader excluded."""
    pids = []
    for p in psutil.process_iter():
        try:
            if p.pid != pgid and os.getpgid(p.pid) == pgid:
                pids.append(p.pid)
        except (OSError, psutil.Error):
            pass
    return pids


@pytest.mark.parametrize("source", [LEAVES_CHILD, LEAVES_DAEMON], ids=["child", "daemon"])
def test_a_process_left_behind_is_killed_and_named(start, source):
    c = start(source)
    [left] = _group(c.pid)
    defects = c.stop(grace=5)
    assert defects == [f"1 process(es) of the server left after it exited: {left}: killed"]
    assert _gone(left)
