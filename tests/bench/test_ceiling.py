"""`runner.py ceiling`: one loadgen core's reach here, saved for the machine, read by bench."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

from bench import matrix
from results import ceiling

ROOT = Path(__file__).resolve().parents[2]


def test_a_ceiling_is_read_back_only_on_the_machine_that_measured_it(tmp_path):
    c = ceiling.new("2026-12-08T00:00:00+00:00", "asyncio")
    c.closed_per_cpu_s = 100_000
    c.open_rate = {1000: 50_000.0, 10000: 40_000.0}
    path = ceiling.save(c, tmp_path / "ceiling.json")
    back = ceiling.load(path)
    assert back is not None and back.open_rate == c.open_rate
    assert back.per_core_rate() == 40_000.0  # at the most connections measured
    d = json.loads(path.read_text())
    d["cpu_model"] = "another machine's CPU"
    path.write_text(json.dumps(d))
    assert ceiling.load(path) is None
    path.write_text("{half a file")
    assert ceiling.load(path) is None
    assert ceiling.load(tmp_path / "none.json") is None


def test_the_auto_rate_cap_is_the_measured_per_core_rate_times_the_loadgen_cpus(tmp_path,
                                                                                 monkeypatch):
    c = ceiling.new("2026-12-08T00:00:00+00:00", "asyncio")
    c.open_rate = {10000: 30_000.0}
    monkeypatch.setattr(ceiling, "CEILING_FILE", ceiling.save(c, tmp_path / "c.json"))
    assert matrix.auto_rate_cap(2) == 60_000.0
    monkeypatch.setattr(ceiling, "CEILING_FILE", tmp_path / "none.json")
    assert matrix.auto_rate_cap(1) == matrix.RATE_PER_LOADGEN_CPU


def test_the_command_measures_closed_and_open_loop_and_saves_the_ceiling(tmp_path):
    out = tmp_path / "ceiling.json"
    r = subprocess.run([sys.executable, "runner.py", "ceiling", "--connections", "50",
                        "--rates", "500,1000", "--closed-connections", "10", "--repeat", "1",
                        "--duration", "1", "--server", "asyncio", "--out", str(out)],
                       cwd=ROOT, capture_output=True, text=True, timeout=300,
                       env=dict(os.environ, C10K_CEILING_FILE=str(out)))
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()
    assert lines[0].startswith("ceiling: server asyncio on CPU")
    assert any(ln.startswith("[closed 1/1] 10 connections: ") for ln in lines)
    saved = ceiling.load(out)
    assert saved is not None and saved.closed_per_cpu_s > 0
    assert saved.open_rate == {50: 1000.0}  # 50 connections hold 1,000 msg/s on time
    assert "open loop, 50 connections: 1,000 msg/s on time (the highest tried)" in r.stdout


def test_bad_input_is_one_line_and_exit_2(tmp_path):
    r = subprocess.run([sys.executable, "runner.py", "ceiling", "--rates", "10,x"], cwd=ROOT,
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--rates" in r.stderr
