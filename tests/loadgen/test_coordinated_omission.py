"""A 1 s server stall in an open-loop run shows in corrected latency, not uncorrected."""

from __future__ import annotations

import json
import signal
import subprocess
import time

from tests.loadgen.conftest import ROOT, loadgen_cmd


def test_stall_reflected_in_corrected_p99_only(fault_server, kill_on_exit):
    s = fault_server("stall")
    # 2 connections x 50 msg/s: the stall delays ~100 intended sends (1/6 of the run)
    # but only the 2 messages in flight when it began wait long from their actual send.
    p = subprocess.Popen(
        loadgen_cmd(s.port, "--connections", "2", "--mode", "open", "--rate", "100",
                    "--duration", "6", "--warmup", "0", "--workers", "1",
                    "--progress", "json", "--json"),
        cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        start_new_session=True)
    kill_on_exit(p)
    for line in p.stderr:
        if json.loads(line).get("phase") == "measure":
            break
    time.sleep(1.5)
    s.signal(signal.SIGUSR1)
    out, err = p.communicate(timeout=150)
    assert p.returncode == 0, err
    r = json.loads(out)
    corr, unc = r["latency_us"]["corrected"], r["latency_us"]["uncorrected"]
    assert r["messages"] >= 570
    assert sum(r["errors"].values()) == 0
    assert corr["p99"] >= 500_000  # intended sends spread over the whole second
    assert corr["max"] >= 900_000
    assert unc["p99"] < 100_000  # 2 of ~600 samples waited; p99 does not see them
    assert unc["max"] >= 500_000  # ...but they are there
