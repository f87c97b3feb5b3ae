"""bench.echo_instructions' ping-pong count: the idle server it waits for, and counts that repeat.

The counts need valgrind and a C compiler for the callgrind marks; they skip without them.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from bench import echo_instructions, micro_count

pytestmark = pytest.mark.timeout(120)

ROOT = Path(__file__).resolve().parents[2]
SLEEPS_IN_EPOLL = "import select; select.epoll().poll(60)"
SLEEPS = "import time; time.sleep(60)"


def child(code: str) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "-c", code])


def wchan(pid: int) -> str:
    return Path(f"/proc/{pid}/task/{pid}/wchan").read_text()


def test_the_client_sees_when_the_server_sleeps_in_epoll_wait():
    sleeper, poller = child(SLEEPS), child(SLEEPS_IN_EPOLL)
    try:
        time.sleep(0.5)  # both asleep by now
        if wchan(sleeper.pid) == "0":
            pytest.skip("this kernel does not show where a thread sleeps (wchan)")
        assert echo_instructions._await_poll(poller.pid, 10.0)
        assert not echo_instructions._polling(sleeper.pid)
        assert not echo_instructions._await_poll(sleeper.pid, 0.2)
    finally:
        for p in (sleeper, poller):
            p.kill()
            p.wait()


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_pingpong_counts_of_the_same_code_at_other_paths_agree_within_a_tenth_of_the_gate(
        tmp_path):
    why, marks = micro_count.unavailable(tmp_path)
    if why:
        pytest.skip(why)
    # The tree's path is in every module's strings: each path is another heap layout.
    roots = [ROOT]
    for name in ("t", "tree-at-a-longer-path", "tree-at-a-path-longer-still-than-that-one"):
        for package in ("goruntime", "servers"):
            shutil.copytree(ROOT / package, tmp_path / name / package,
                            ignore=shutil.ignore_patterns("__pycache__"))
        roots.append(tmp_path / name)
    with ThreadPoolExecutor(2) as pool:  # side by side, as runner.py regress counts them
        counts = list(pool.map(
            lambda root: echo_instructions.pingpong_per_message(root, marks, tmp_path), roots))
    assert 20_000 < min(counts)  # a message's path, not nothing
    assert (max(counts) - min(counts)) / min(counts) < 0.001, counts  # the gate is 1%


@pytest.mark.skipif(shutil.which("valgrind") is None, reason="valgrind is not installed")
def test_paced_main_thread_counts_repeat_and_see_every_message(tmp_path):
    why, marks = micro_count.unavailable(tmp_path)
    if why:
        pytest.skip(why)
    counts = [echo_instructions.paced_main_thread_per_message(
        ROOT, marks, tmp_path, "goroutine", 50, 200.0, 0.5, 1.5) for _ in range(2)]
    assert 15_000 < min(counts) < 60_000  # a light-load message's path, not a window's
    # How messages batch depends on timing: 40 counts of identical code, 4 at a time on a
    # loaded machine, spread 3.3%.
    assert (max(counts) - min(counts)) / min(counts) < 0.05, counts
