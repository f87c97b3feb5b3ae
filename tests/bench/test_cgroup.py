"""bench.cgroup: exact tree CPU, a quota that caps it, and nothing left behind.

Real cgroups: skipped, with the reason, where this machine lets none be made.
"""

from __future__ import annotations

import subprocess
import sys
import time

import psutil
import pytest

from bench import cgroup

_probe, WHY = cgroup.open_group("probe")
if _probe is not None:
    _probe.close()
pytestmark = pytest.mark.skipif(_probe is None, reason=f"no cgroup here: {WHY}")

BURN_CHILDREN = """
import os, time
def burn(s):
    t = time.process_time()
    while time.process_time() - t < s:
        pass
pids = [os.fork() for _ in range(2)]
if 0 in pids:
    burn(0.2)
    os._exit(0)
for p in pids:
    os.waitpid(p, 0)
"""


def _start_in(group: cgroup.Group, code: str) -> subprocess.Popen:
    p = subprocess.Popen([sys.executable, "-c", "import sys; sys.stdin.read(1)\n" + code],
                         stdin=subprocess.PIPE)
    group.add(p.pid)  # before it runs the code: its children are born inside
    p.stdin.write(b"x")
    p.stdin.close()
    return p


def test_a_groups_cpu_counts_children_that_already_exited():
    g = cgroup.Group("test-tree")
    try:
        before = g.cpu_s()
        _start_in(g, BURN_CHILDREN).wait(30)
        assert g.cpu_s() - before >= 0.4  # two children x 0.2 s, both gone now
        deadline = time.monotonic() + 5  # the kernel drops a reaped task from the group soon
        while g.pids() and time.monotonic() < deadline:
            time.sleep(0.02)
        assert g.pids() == []
    finally:
        g.close()


def test_a_quota_caps_the_tree_cpu():
    why = cgroup.check_quota()
    if why:
        pytest.skip(why)
    g = cgroup.Group("test-quota", cpu_quota=0.25)
    try:
        p = _start_in(g, "import time\nt = time.time()\nwhile time.time() - t < 1.5: pass")
        time.sleep(0.3)
        t0, c0 = time.monotonic(), g.cpu_s()
        time.sleep(1.0)
        cores = (g.cpu_s() - c0) / (time.monotonic() - t0)
        p.wait(30)
        assert 0.15 <= cores <= 0.27, cores  # never above the quota; near it unless starved
    finally:
        g.close()


def test_close_kills_what_is_left_and_sweep_removes_a_dead_runners_groups():
    g = cgroup.Group("test-left")
    p = _start_in(g, "import time; time.sleep(60)")
    assert g.pids() == [p.pid]
    assert g.close() == [p.pid]
    assert p.wait(5) == -9
    stale = [path.parent / "999999999-1-test-stale" for path in g_paths()]
    for d in stale:
        d.mkdir()
    q = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        (stale[0] / "cgroup.procs").write_text(str(q.pid))
        removed = cgroup.sweep()
        assert str(stale[0]) + " (1 process(es) killed)" in removed
        assert q.wait(5) == -9 and not any(d.exists() for d in stale)
    finally:
        if q.poll() is None:
            q.kill()


def g_paths():
    g = cgroup.Group("test-paths")
    paths = list(g.paths)
    g.close()
    return paths


def test_sweep_leaves_the_groups_of_a_live_runner_alone():
    g = cgroup.Group("test-live")
    try:
        cgroup.sweep()
        assert all(p.is_dir() for p in g.paths)
        assert psutil.pid_exists(int(g.paths[0].name.split("-")[0]))
    finally:
        g.close()
