"""GODEBUG=schedtrace/scheddetail output in Go's format; stats()."""

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import goruntime as rt
from goruntime import trace

pytestmark = pytest.mark.timeout(60)

ROOT = Path(__file__).resolve().parents[2]
PROG = """
import time, goruntime as rt
async def main():
    c = rt.Chan()
    async def w():
        await c.recv()
    for _ in range(3):
        rt.go(w)
    end = time.monotonic() + 0.35
    while time.monotonic() < end:
        await rt.sleep(0.01)
rt.run(main(), procs=2)
"""
SCHED = re.compile(
    r"^SCHED \d+ms: gomaxprocs=2 idleprocs=\d+ threads=\d+ spinningthreads=\d+ "
    r"needspinning=\d+ idlethreads=\d+ runqueue=\d+ \[\d+ \d+\]$"
)


def run_prog(godebug: str) -> list[str]:
    env = dict(os.environ, GODEBUG=godebug, PYTHONPATH=str(ROOT))
    p = subprocess.run(
        [sys.executable, "-c", PROG], env=env, capture_output=True, text=True, timeout=30,
        cwd=ROOT,
    )
    assert p.returncode == 0, p.stderr
    return p.stderr.splitlines()


def test_schedtrace_prints_gos_line_every_period():
    lines = run_prog("schedtrace=100")
    assert len(lines) >= 3
    for line in lines:
        assert SCHED.match(line), line
    ms = [int(re.match(r"SCHED (\d+)ms", x).group(1)) for x in lines]
    assert ms[0] < 100  # once at start, as Go's "SCHED 0ms", then every 100 ms
    assert ms == sorted(ms)


def test_scheddetail_adds_p_m_g_lines():
    lines = run_prog("schedtrace=100,scheddetail=1")
    head = [x for x in lines if x.startswith("SCHED")]
    assert head and all(
        re.match(r"^SCHED \d+ms: gomaxprocs=2 .* runqueue=\d+ gcwaiting=0 nmidlelocked=0 "
                 r"stopwait=0 sysmonwait=0$", x) for x in head
    )
    ps = [x for x in lines if x.startswith("  P")]
    ms = [x for x in lines if x.startswith("  M")]
    gs = [x for x in lines if x.startswith("  G")]
    assert ps and ms and gs
    for x in ps:
        assert re.match(r"^  P[01]: status=[012] schedtick=\d+ syscalltick=\d+ m=(\d+|nil) "
                        r"runqsize=\d+ gfreecnt=0 timerslen=\d+$", x), x
    for x in ms:
        assert re.match(r"^  M\d+: p=(\d+|nil) curg=(\d+|nil) mallocing=0 throwing=0 "
                        r"preemptoff= locks=0 dying=0 spinning=(true|false) "
                        r"blocked=(true|false) lockedg=nil$", x), x
    for x in gs:
        assert re.match(r"^  G\d+: status=[1-4]\([^)]*\) m=(\d+|nil) lockedm=nil$", x), x
    assert any("status=4(chan receive)" in x for x in gs)


def test_parse_godebug():
    assert trace.parse_godebug("schedtrace=1000,scheddetail=1,gctrace=1") == {
        "schedtrace": 1000, "scheddetail": 1}
    assert trace.parse_godebug("schedtrace=x") == {}
    assert trace.parse_godebug(None) == {}


def test_stats_has_the_counters_benchmarks_record(procs):
    async def main():
        c = rt.Chan()

        async def w():
            await c.send(1)

        for _ in range(10):
            rt.go(w)
        for _ in range(10):
            await c.recv()
        return rt.stats()

    st = rt.run(main(), procs=procs)
    for k in ("schedticks", "steals", "parks", "spawns", "handoffs", "preemptions",
              "long_runs", "netpolls", "goroutines", "gomaxprocs", "threads"):
        assert isinstance(st[k], int), k
    assert st["spawns"] == 10 and st["gomaxprocs"] == procs
    after = rt.stats()  # the last run's figures stay readable
    # each of the 10 handoffs on an unbuffered channel found the other side parked
    assert after["spawns"] == 10 and after["parks"] >= 10
