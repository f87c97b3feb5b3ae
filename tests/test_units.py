"""What one unit costs (bench/units.py, `runner.py units`): every unit measured for real at a
tiny n; figures ordered where the physics leaves no doubt; the hold search stops at its
budget and leaves no thread or process behind."""

import json
import os
import subprocess
import sys
import threading
from pathlib import Path

import psutil
import pytest

from bench import units
from bench.units import UNITS, Budget, next_step
from results import store
from results import units as report
from tests.results import bench_cases

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ("import runner, sys; runner.COMMANDS = ('units',); "
          "sys.exit(runner.main(sys.argv[1:]))")
# Parked units per memory figure: enough that each unit's growth stands clear of the
# allocator's granularity (a goroutine is under 1 KiB), few enough for a second.
MEMORY_N = {"goroutine": 5000, "asyncio": 5000, "gevent": 1000, "thread": 200,
            "thread-256k": 200, "process": 20}
TINY_BUDGET = Budget(bytes=256 << 20, seconds=10.0, tasks=40, floor=0)


def worker(*argv: str, preexec: str = "") -> dict:
    """``python -m bench.units ARGV`` in a fresh process (after ``preexec``): its JSON line."""
    code = f"{preexec}\nimport sys\nfrom bench.units import main\nsys.exit(main(sys.argv[1:]))"
    r = subprocess.run([sys.executable, "-c", code, *argv], cwd=ROOT, capture_output=True,
                       text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    return json.loads(r.stdout)


def own_children() -> list[psutil.Process]:
    return psutil.Process().children(recursive=True)


@pytest.fixture(scope="module")
def memory_per_unit() -> dict[str, dict]:
    return {name: worker(name, "memory", "--n", str(n)) for name, n in MEMORY_N.items()}


# ---------------------------------------------------------------- every unit, tiny n


@pytest.mark.parametrize("name", list(UNITS))
def test_create_and_switch_give_positive_times_for_a_tiny_n(name):
    for figure, n in (("create", 50), ("switch", 200)):
        res = units.measure(name, figure, n=n, values=2, warmups=0)
        assert res["n"] == n and len(res["values"]) == len(res["cpu_values"]) == 2
        assert all(v > 0 for v in res["values"] + res["cpu_values"]), res
    assert len(res["kernel_switches"]) == 2
    assert own_children() == []


@pytest.mark.parametrize("name", list(UNITS))
def test_memory_per_parked_unit_is_positive_and_nothing_is_left(name, memory_per_unit):
    res = memory_per_unit[name]
    assert res["n"] == MEMORY_N[name] and res["metric"] == UNITS[name].metric
    assert res["bytes"] > 0 and res["left"] == 0


def test_a_process_costs_more_memory_than_a_thread_and_a_thread_more_than_a_goroutine(
        memory_per_unit):
    m = {name: r["bytes"] for name, r in memory_per_unit.items()}
    assert m["process"] > m["thread"] > m["goroutine"]
    assert m["process"] > m["thread-256k"] > m["asyncio"]


def test_a_thread_and_a_process_take_kernel_memory_that_no_rss_shows(memory_per_unit):
    # Every thread has a kernel stack (16 KiB on x86-64); other machine activity adds noise.
    for name in ("thread", "thread-256k", "process"):
        assert memory_per_unit[name]["kernel_bytes"] > 4096, memory_per_unit[name]


def test_a_process_switch_makes_kernel_switches_and_a_goroutine_switch_on_one_p_none():
    def per_switch(name):
        return max(units.measure(name, "switch", n=2000, values=3, warmups=0)
                   ["kernel_switches"])

    assert per_switch("goroutine") < 0.05
    assert per_switch("asyncio") < 0.05
    assert per_switch("gevent") < 0.05
    assert per_switch("thread") > 0.5
    assert per_switch("process") > 0.5


def test_a_process_costs_more_cpu_to_create_than_a_thread_and_a_thread_than_a_goroutine():
    def cpu_us(name, n):
        return min(units.measure(name, "create", n=n, values=3, warmups=0)["cpu_values"])

    assert cpu_us("process", 20) > cpu_us("thread", 200) > cpu_us("goroutine", 2000)


def test_memory_parks_no_more_threads_than_the_task_budget_unless_told():
    res = units.measure("thread", "memory", budget=Budget(tasks=50))
    assert res["n"] == 50 and res["left"] == 0
    with pytest.raises(ValueError, match="task budget is 50"):
        units.measure("process", "memory", n=51, budget=Budget(tasks=50))


def test_calibration_grows_n_until_a_value_takes_min_time():
    res = units.measure("goroutine", "create", values=1, warmups=0, min_time=0.02)
    assert res["n"] > 100  # one goroutine takes well under 0.2 ms
    assert res["n"] * res["values"][0] * 1e-6 > 0.01


# ---------------------------------------------------------------- the hold search


def test_next_step_doubles_then_stops_at_the_budget_that_binds():
    b = Budget(bytes=1000, seconds=10.0, tasks=100, floor=0)
    assert next_step(0, 0, 0.0, b, kernel_task=True) == (1, None)
    assert next_step(8, 80, 0.1, b, kernel_task=True) == (8, None)
    assert next_step(90, 100, 0.1, b, kernel_task=True) == (10, None)  # tasks cut it
    assert next_step(100, 100, 0.1, b, kernel_task=True) == (0, "tasks")
    assert next_step(100, 100, 0.1, b, kernel_task=False) == (100, None)
    assert next_step(100, 950, 0.1, b, kernel_task=False) == (4, None)  # 0.9 × 50 B / 9.5 B
    assert next_step(100, 1000, 0.1, b, kernel_task=False) == (0, "memory")
    assert next_step(100, 10, 9.99, b, kernel_task=False) == (0, "time")


@pytest.mark.parametrize("name", ["thread", "process"])
def test_hold_stops_at_the_task_budget_and_leaves_no_thread_or_process(name):
    threads = threading.active_count()
    res = units.UNITS[name].run(units.hold(UNITS[name], TINY_BUDGET))
    assert res["held"] == 40 and res["stop"]["kind"] == "tasks"
    assert res["left"] == 0
    assert threading.active_count() == threads
    assert own_children() == []


@pytest.mark.parametrize("name", ["goroutine", "asyncio", "gevent"])
def test_hold_stops_at_the_memory_budget(name):
    budget = Budget(bytes=4 << 20, seconds=10.0, tasks=40, floor=0)
    res = worker(name, "hold", "--budget-bytes", str(budget.bytes), "--budget-s", "10",
                 "--budget-tasks", "40", "--floor-bytes", "0")
    assert res["stop"]["kind"] == "memory" and "memory budget 4 MiB" in res["stop"]["detail"]
    assert res["held"] > 40  # user-space units are not kernel tasks
    assert 0.8 * budget.bytes < res["bytes"] < 1.1 * budget.bytes
    assert res["left"] == 0


def test_hold_stops_at_the_time_budget():
    res = units.UNITS["goroutine"].run(
        units.hold(UNITS["goroutine"], Budget(bytes=1 << 40, seconds=0.3, tasks=1, floor=0)))
    assert res["stop"]["kind"] == "time"
    assert 0.1 < res["seconds"] < 2.0


def test_hold_stops_where_the_os_refuses_a_thread_and_says_why():
    # A real refusal: with the address space capped, an 8 MiB thread stack cannot be mapped.
    cap = ("import resource, psutil\n"
           "vm = psutil.Process().memory_info().vms\n"
           "resource.setrlimit(resource.RLIMIT_AS, (vm + (64 << 20), resource.RLIM_INFINITY))")
    res = worker("thread", "hold", "--budget-tasks", "1000", "--floor-bytes", "0",
                 preexec=cap)
    assert res["stop"]["kind"] == "limit"
    assert "thread" in res["stop"]["detail"]  # RuntimeError: can't start new thread
    assert 0 < res["held"] < 1000 and res["left"] == 0


def test_hold_stops_when_the_machine_runs_under_the_floor():
    res = units.UNITS["asyncio"].run(
        units.hold(UNITS["asyncio"], Budget(floor=1 << 60)))
    assert res["held"] == 0 and res["stop"]["kind"] == "machine"


def test_the_default_task_budget_leaves_the_kernel_half_its_free_tasks():
    limit, in_use = units.task_limit()
    assert limit > in_use > 0
    assert units.default_tasks() == min(10_000, (limit - in_use) // 2)


def test_a_forked_child_dies_with_its_parent():
    code = ("import os, sys, time\nfrom bench.units import fork_child\n"
            "pid = fork_child(lambda: time.sleep(60))\nprint(pid, flush=True)\n"
            "os.kill(os.getpid(), 9)")
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True,
                       text=True, timeout=30)
    child = int(r.stdout)
    try:
        psutil.Process(child).wait(timeout=5)
    except psutil.NoSuchProcess:
        pass
    assert not psutil.pid_exists(child) or psutil.Process(child).status() == "zombie"


# ---------------------------------------------------------------- runner.py units


def runner_cmd(*argv: str, runs: Path) -> subprocess.CompletedProcess:
    env = dict(os.environ, C10K_RUNS_DIR=str(runs))
    return subprocess.run([sys.executable, "-c", RUNNER, *argv], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=300)


def test_runner_units_writes_a_valid_run_the_why_table_and_the_plot(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "RUNS_DIR", tmp_path)
    bench = bench_cases.bench_run([
        bench_cases.case("thread", 100, rss_load=(10 << 20) + 100 * 40_000),
        bench_cases.case("thread", 1000, rss_load=(10 << 20) + 1000 * 33 * 1024),
        bench_cases.case("goroutine", 1000, rss_load=(10 << 20) + 1000 * 1200),
    ], ["thread", "goroutine"])
    bench_path = store.save_run(bench, tmp_path)
    r = runner_cmd("units", "--units", "goroutine,thread", "--processes", "2", "--values",
                   "1", "--warmups", "0", "--n", "300", "--budget-gib", "0.008",
                   "--budget-s", "5", "--budget-tasks", "300", "--floor-gib", "0",
                   "--bench", str(bench_path), "--out", str(tmp_path), runs=tmp_path)
    assert r.returncode == 0, r.stderr
    run, path = report.load("latest")
    assert run["kind"] == "units" and run["finished"] and run["summary"]["missing"] == []
    assert run["config"]["go"].startswith("skipped: ")
    assert [c["unit"] for c in run["cases"]] == ["goroutine", "thread"]
    g, t = run["cases"]
    for c in run["cases"]:
        assert len(c["create"]["values"]) == 2 and len(c["switch"]["values"]) == 2
        assert len(c["memory"]["values"]) == 2 and c["errors"] == []
    assert g["hold"]["stop"]["kind"] == "memory" and t["hold"]["stop"]["kind"] == "tasks"
    assert t["hold"]["held"] == 300
    assert "[1/14] goroutine create process 1/2" in r.stderr
    assert "≥ 300 (tasks budget)" in r.stdout
    assert "33 KiB rss (thread @ 1,000)" in r.stdout  # the bench's figure beside the unit's
    assert "1.17 KiB rss (goroutine @ 1,000)" in r.stdout
    assert (tmp_path / run["id"] / "units.png").stat().st_size > 10_000
    assert f"saved {path}" in r.stdout
    again = runner_cmd("units", "--show", run["id"], "--markdown", runs=tmp_path)
    assert again.returncode == 0 and "| ≥ 300 (tasks budget)" in again.stdout


@pytest.mark.parametrize("argv,msg", [
    (["--units", "fibre"], "--units wants a list of goroutine"),
    (["--figures", "speed"], "--figures wants a list of create"),
    (["--budget-gib", "0"], "expected a number > 0"),
    (["--show", "no-such-run"], "no units run 'no-such-run'"),
    (["--units", "process", "--n", "5000", "--budget-tasks", "100"],
     "process create with n=5,000 would hold 5,000 threads or processes at once"),
    (["--units", "thread", "--figures", "memory", "--n", "101", "--budget-tasks", "100"],
     "thread memory with n=101 would hold 101"),
    (["--bench", "no-such-run"], "--bench: no run 'no-such-run'"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, argv, msg):
    r = runner_cmd("units", *argv, "--out", str(tmp_path), runs=tmp_path)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and msg in r.stderr, r.stderr
    assert not list(tmp_path.iterdir())

