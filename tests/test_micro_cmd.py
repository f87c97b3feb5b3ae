"""`runner.py micro`: real micro-benchmarks in fresh worker processes, saved as a valid run."""

import json
import os
import signal
import statistics
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import micro_worker
from results import store

ROOT = Path(__file__).resolve().parent.parent
# runner.py with only the micro command registered, so this test needs nothing else.
RUNNER = ("import runner, sys; runner.COMMANDS = ('micro', 'compare'); "
          "sys.exit(runner.main(sys.argv[1:]))")
TINY = ["--filter", "^Gosched$", "--procs", "1", "--processes", "2", "--values", "2",
        "--warmups", "0", "--min-time", "0.01"]


def runner_cmd(*argv: str, env: dict | None = None, timeout: float = 120):
    e = dict(os.environ, **(env or {}))
    return subprocess.run([sys.executable, "-c", RUNNER, *argv], cwd=ROOT, env=e,
                          capture_output=True, text=True, timeout=timeout)


def test_micro_with_a_tiny_filter_writes_a_valid_run(tmp_path):
    out = tmp_path / "runs"
    r = runner_cmd("micro", *TINY, "--out", str(out), env={"C10K_RUNS_DIR": str(tmp_path)})
    assert r.returncode == 0, r.stderr
    files = list(out.glob("*.json"))
    assert len(files) == 1
    run = store.read_run_file(files[0])  # validates against the schema
    assert run["kind"] == "micro" and run["finished"] and run["git"]["sha"]
    assert run["machine"]["cores_logical"] >= 1
    assert run["config"]["benchmarks"] == ["Gosched"] and run["config"]["procs"] == [1]
    [case] = run["cases"]
    assert (case["name"], case["procs"], case["unit"]) == ("Gosched", 1, "us/op")
    assert case["loops"] >= 1 and case["errors"] == []
    assert len(case["values"]) == 4 and all(v > 0 for v in case["values"])
    # Gosched has an asyncio twin (sleep(0)): paired, one asyncio value per goruntime value.
    av = case["asyncio_values"]
    assert av is not None and len(av) == 4 and all(v > 0 for v in av)
    ratios = [g / a for g, a in zip(case["values"], av, strict=True)]
    assert case["ratio_median"] == pytest.approx(statistics.median(ratios))
    assert "Gosched" in r.stdout and f"saved {files[0]}" in r.stdout
    assert "[1/2] Gosched procs=1 process 1/2" in r.stderr  # progress while it runs
    # The run compares with itself: identical samples, every metric "~", exit 0.
    c = runner_cmd("compare", str(files[0]), str(files[0]))
    assert c.returncode == 0, c.stdout + c.stderr
    assert "Gosched-1" in c.stdout and "no regression" in c.stdout


@pytest.mark.parametrize("argv,msg", [
    (["--filter", "^NoSuchBenchmark$"], "matches no benchmark"),
    (["--filter", "("], "not a valid regular expression"),
    (["--procs", "0"], "--procs wants positive integers"),
    (["--values", "x"], "expected a positive integer"),
])
def test_micro_bad_input_is_one_line_exit_2(tmp_path, argv, msg):
    r = runner_cmd("micro", *argv, "--out", str(tmp_path))
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and msg in r.stderr
    assert not list(tmp_path.iterdir())


def test_ctrl_c_keeps_finished_values_and_leaves_no_worker(tmp_path):
    argv = ["micro", "--filter", "^Gosched$", "--procs", "1", "--processes", "50",
            "--values", "1", "--warmups", "0", "--min-time", "0.05", "--out", str(tmp_path)]
    p = subprocess.Popen([sys.executable, "-c", RUNNER, *argv], cwd=ROOT, text=True,
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + 60
        workers = []
        while time.monotonic() < deadline:  # a value saved, and the next worker running
            workers = psutil.Process(p.pid).children(recursive=True)
            if workers and list(tmp_path.glob("*.json")):
                break
            time.sleep(0.02)
        assert workers and list(tmp_path.glob("*.json")), "no worker finished within 60 s"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=30)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait()
    assert p.returncode == 130, err
    assert "interrupted" in err
    gone, alive = psutil.wait_procs(workers, timeout=5)
    assert not alive
    [path] = tmp_path.glob("*.json")
    run = json.loads(path.read_text())
    store.validate(run)
    assert len(run["cases"][0]["values"]) >= 1
    assert not list(tmp_path.glob(".*"))  # no half-written temp file


def test_calibration_reaches_the_minimum_time_without_overshooting():
    calls = []

    def fake(loops: int) -> float:  # a benchmark whose op takes exactly 3 µs
        calls.append(loops)
        return loops * 3e-6

    loops = micro_worker.calibrate(fake, 0.1)
    assert loops * 3e-6 >= 0.1
    assert calls[-2] * 3e-6 < 0.1  # the previous try was too short
    assert loops * 3e-6 < 0.1 * 10  # at most one ×10 step past the target
    assert all(b / a <= 10 for a, b in zip(calls, calls[1:], strict=False))


def test_a_failing_worker_is_reported_in_one_line():
    from bench import cmd_micro

    sampling = cmd_micro.Sampling(values=1, warmups=0, min_time=0.01)
    with pytest.raises(RuntimeError, match=r"^micro_worker: no benchmark named 'NoSuch'$"):
        cmd_micro.run_worker("NoSuch", 1, sampling, None, None)
