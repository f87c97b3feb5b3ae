"""A worker whose driver has all the CPU it can use still serves Locust: its reports,
beats and the master's messages go on between the driver's turns."""

from __future__ import annotations

import json
import subprocess
from itertools import pairwise

from tests.loadgen.conftest import ROOT, loadgen_cmd

LINE_GAP_S = 2.5  # the master prints progress every second
# The worker reports every second: a progress line may come just before a report (its
# count unchanged), never two in a row unless the worker was held up for a second.
REPORT_GAP_S = 1.5
# With 4,000 connections the driver's polls find sockets ready for seconds on end, so it
# never waits, and only its yields between busy turns let Locust's greenlets run (at 200
# its polls still come back empty hundreds of times a second, and it waits through the
# hub then). Pauses of the server still leave it idle now and then.
CONNECTIONS = "4000"


def test_saturated_worker_keeps_reporting_and_stays_in_the_crew(asyncio_server):
    """Closed loop, 4,000 connections on one worker: the driver is busy. The run
    ends normally with no worker lost, the worker really was saturated, and during the
    measure phase the master printed progress about every second with message counts
    that the worker's reports kept moving."""
    p = subprocess.run(
        loadgen_cmd(asyncio_server.port, "--connections", CONNECTIONS, "--ramp-rate", "5000",
                    "--duration", "6", "--warmup", "0", "--workers", "1",
                    "--progress", "json", "--json"),
        cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert p.returncode == 0, p.stderr[-2000:]
    assert "Traceback" not in p.stderr, p.stderr[-2000:]
    r = json.loads(p.stdout)
    assert r["lost_workers"] == []
    assert sum(r["errors"].values()) == 0
    [w] = r["workers"]
    assert w["cpu_percent"] >= 80, f"the worker was not saturated: {w}"

    lines = [json.loads(line) for line in p.stderr.splitlines() if line.startswith("{")]
    measure = [(x["elapsed"], x["messages"]) for x in lines
               if x.get("event") == "progress" and x["phase"] == "measure"]
    assert len(measure) >= 3, lines
    times = [t for t, _ in measure]
    assert max(b - a for a, b in pairwise(times)) <= LINE_GAP_S, measure
    # the counts come from the worker's reports: they must move, and not in long jumps
    last_change, last_count = measure[0]
    for t, count in measure[1:]:
        if count != last_count:
            last_change, last_count = t, count
        assert t - last_change <= REPORT_GAP_S, measure
    assert measure[-1][1] > measure[0][1], measure
