"""The driver measures its own lag, and a tail that is its own is never blamed on the server.

A worker whose process is made to stall (a greenlet hogging the CPU for 20 ms every 60 ms,
beside the driver) against a fast server: the latency misses the SLO, the worker reports
the lag, and the verdict is ``loadgen-bound``. The same worker without the hog reports a
lag far below the SLO.
"""

from __future__ import annotations

import json
import subprocess

from results.verdict import SLO, judge
from tests.loadgen.conftest import PY, ROOT, loadgen_cmd

HOGGED_WORKER = """
import sys, time, gevent
from gevent import monkey
monkey.patch_all()

def hog():
    while True:
        gevent.sleep(0.04)
        t = time.perf_counter()
        while time.perf_counter() - t < 0.02:
            pass

if sys.argv[1] == "hog":
    gevent.spawn(hog)
from loadgen.__main__ import main
sys.exit(main(["worker", "--master", sys.argv[2], "--join-timeout", "5"]))
"""


def _run(asyncio_server, kill_on_exit, hog: bool) -> dict:
    p = subprocess.Popen(
        loadgen_cmd(asyncio_server.port, "--connections", "50", "--mode", "open",
                    "--rate", "1000", "--duration", "3", "--warmup", "0.5", "--workers", "0",
                    "--remote-workers", "1", "--progress", "json", "--json"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    kill_on_exit(p)
    line = json.loads(p.stderr.readline())
    assert line["event"] == "waiting_for_workers"
    w = subprocess.Popen([PY, "-c", HOGGED_WORKER, "hog" if hog else "plain",
                          f"{line['host']}:{line['port']}"], cwd=ROOT,
                         stderr=subprocess.DEVNULL, start_new_session=True)
    kill_on_exit(w)
    out, err = p.communicate(timeout=150)
    assert p.returncode == 0, err[-2000:]
    return json.loads(out)


def _case(result: dict) -> dict:
    return {"status": "ok", "loadgen": result, "cpu": {}}


def test_a_stalled_worker_reports_its_lag_and_is_never_server_bound(asyncio_server,
                                                                    kill_on_exit):
    r = _run(asyncio_server, kill_on_exit, hog=True)
    w = r["workers"][0]
    assert w["lag_p99_us"] >= 10_000, w  # the hog's 20 ms, seen from the driver
    assert r["latency_us"]["corrected"]["p99"] > SLO().p99_ms * 1000
    verdict = judge(_case(r), SLO())
    assert verdict["kind"] == "loadgen-bound", verdict


def test_an_unhindered_worker_reports_a_lag_well_inside_the_slo(asyncio_server, kill_on_exit):
    r = _run(asyncio_server, kill_on_exit, hog=False)
    assert r["messages"] > 0
    assert r["workers"][0]["lag_p99_us"] < SLO().p99_ms * 1000 / 4, r["workers"][0]
