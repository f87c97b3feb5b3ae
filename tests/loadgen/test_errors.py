"""Faulty servers: each fault is counted under its own kind."""

from __future__ import annotations

import json
import subprocess

from tests.loadgen.conftest import ROOT, loadgen_cmd, run_loadgen

SHORT = ("--duration", "2", "--warmup", "0", "--workers", "1")


def test_corrupted_byte_counted_as_corrupt(fault_server):
    s = fault_server("corrupt", every=20)
    r = run_loadgen(s.port, "--connections", "4", *SHORT)
    assert r["errors"]["corrupt"] > 0
    assert r["messages"] > 0
    assert r["errors"]["corrupt"] + r["messages"] >= 20


def test_refused_connections_counted_and_ramp_times_out(fault_server):
    """Nothing connected: the result is kept for inspection, the exit code says failure."""
    s = fault_server("refuse")
    p = subprocess.run(loadgen_cmd(s.port, "--connections", "3", "--ramp-timeout", "1.5",
                                   *SHORT, "--json"),
                       cwd=ROOT, capture_output=True, text=True, timeout=150)
    assert p.returncode == 1
    assert p.stderr.strip().splitlines()[-1].startswith(
        "loadgen: error: 0 of 3 connections established to 127.0.0.1:")
    r = json.loads(p.stdout)
    assert r["connect_errors"]["refused"] >= 3
    assert r["connections"]["ramp_timed_out"]
    assert r["connections"]["connected"] == 0
    assert r["messages"] == 0
    assert r["fairness"]["starved"] == 3


def test_reset_mid_stream_counted_as_reset(fault_server):
    s = fault_server("reset", every=5)
    r = run_loadgen(s.port, "--connections", "2", *SHORT)
    assert r["errors"]["reset"] > 0
    assert r["errors"]["corrupt"] == 0
    assert r["messages"] > 0


def test_silent_server_times_out_after_the_message_timeout(fault_server):
    s = fault_server("silent")
    r = run_loadgen(s.port, "--connections", "2", "--timeout", "0.4",
                    "--ramp-timeout", "1", *SHORT)
    assert r["connections"]["connected"] == 2
    assert r["connections"]["served"] == 0
    assert r["errors"]["timeout"] >= 2
    assert r["messages"] == 0
