"""runner.py bench / report end to end: real servers, the real loadgen, real run files.

Each bench subprocess carries a unique environment marker that every server and loadgen
process inherits, so "no process left" is checked exactly, even with other tests running.
"""

from __future__ import annotations

import json
import os
import shlex
import signal
import subprocess
import sys
import tempfile
import textwrap
import time
import uuid
from pathlib import Path

import psutil
import pytest

from bench import UsageError, cgroup, matrix
from results import store

ROOT = Path(__file__).resolve().parent.parent
_group, _ = cgroup.open_group("probe")
CPU_SOURCE = "cgroup" if _group is not None and _group.close() == [] else "proc"
SHORT = ["--connections", "50", "--duration", "2", "--warmup", "0.5", "--repeats", "1"]


def env_for(tmp_path: Path) -> tuple[dict, str]:
    mark = uuid.uuid4().hex
    env = dict(os.environ, C10K_RUNS_DIR=str(tmp_path / "runs"), C10K_TEST_MARK=mark,
               C10K_BASELINES_DIR=str(tmp_path / "baselines"))
    return env, mark


def marked(mark: str) -> list[psutil.Process]:
    """Live processes carrying ``mark`` in their environment."""
    found = []
    for p in psutil.process_iter():
        try:
            if p.pid != os.getpid() and p.environ().get("C10K_TEST_MARK") == mark:
                if p.status() != psutil.STATUS_ZOMBIE:
                    found.append(p)
        except psutil.Error:
            pass
    return found


def kill_marked(mark: str) -> None:
    for p in marked(mark):
        try:
            p.kill()
        except psutil.Error:
            pass


def runner(args: list[str], env: dict, timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "runner.py", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


def run_files(tmp_path: Path) -> list[Path]:
    return sorted((tmp_path / "runs").glob("*.json"))


@pytest.fixture(scope="module")
def short_run(tmp_path_factory):
    """One real bench: thread and asyncio, 50 connections, 2 s measure."""
    tmp = tmp_path_factory.mktemp("short")
    env, mark = env_for(tmp)
    try:
        out = runner(["bench", "--strategies", "thread,asyncio", *SHORT, "--no-report"], env)
        left = marked(mark)
    finally:
        kill_marked(mark)
    return tmp, env, out, left


def test_short_bench_writes_a_valid_run_with_every_field_filled(short_run):
    tmp, _, out, left = short_run
    assert out.returncode == 0, out.stderr
    assert left == []
    [path] = run_files(tmp)
    run, _ = store.load_run(str(path))  # validates against the schema
    assert run["kind"] == "bench" and run["finished"] and run["git"]["sha"] != "unknown"
    assert run["machine"]["cpu_model"] and run["machine"]["affinity"]
    assert run["config"]["connections"] == [50] and run["config"]["strategies"] == [
        "thread", "asyncio"]
    assert [c["key"]["strategy"] for c in run["cases"]] == ["thread", "asyncio"]
    for c in run["cases"]:
        assert c["status"] == "ok", c["status"]
        assert c["verdict"]["kind"] in ("held", "server-bound", "loadgen-bound"), c["verdict"]
        assert c["defects"] == [] and c["measurement_defects"] == []
        lg, srv = c["loadgen"], c["server"]
        assert lg["connections"]["connected"] == 50 and lg["messages"] > 0
        assert lg["rate"]["achieved"] > 0 and lg["latency_us"]["corrected"]["p99"] > 0
        assert srv["idle"]["pss"] > 0 and srv["load"]["rss"] >= srv["idle"]["rss"] > 0
        assert srv["peak"]["fds"] >= 50 and srv["samples"] == len(srv["series"]) > 3
        assert srv["exit"] == {"code": 0, "signal": None}
        w = c["window"]
        assert w["end"] - w["start"] == pytest.approx(2.0, abs=0.05)  # --duration 2
        cpu = c["cpu"]["server"]
        assert cpu["source"] == CPU_SOURCE and cpu["gap_s"] <= 0.2
        assert cpu["cpu_s"] == pytest.approx(cpu["cores"] * (w["end"] - w["start"]), abs=2e-4)
        assert c["cpu_s_per_1k_msgs"] == pytest.approx(cpu["cpu_s"] / lg["messages"] * 1000,
                                                       rel=0.01)
        assert 0 < cpu["cores"] <= cpu["limit_cores"] == len(c["pin"]["server"])
        inside = [r["rss"] for r in srv["series"] if w["start"] < r["t"] < w["end"]]
        assert min(inside) <= srv["load"]["rss"] <= max(inside)
        assert c["mem_per_conn"]["bytes"] == pytest.approx(
            (srv["load"]["rss"] - srv["idle"]["rss"]) / 50, abs=0.1)
        assert None not in c["netstat"].values()
        assert c["cpu"]["loadgen"]["cores"] > 0 and c["machine_mem"]["available_before"] > 0
    thread = run["cases"][0]["server"]
    assert thread["peak"]["threads"] >= 50  # one thread per connection, seen by the sampler


def test_report_on_a_stored_run_writes_tables_and_every_png(short_run):
    tmp, env, out, _ = short_run
    rep = runner(["report"], env)  # default: the latest bench run in C10K_RUNS_DIR
    assert rep.returncode == 0, rep.stderr
    assert "Throughput and latency" in rep.stdout and "Server cost" in rep.stdout
    assert any(line.startswith("thread ") for line in rep.stdout.splitlines())
    [path] = run_files(tmp)
    pngs = sorted(path.with_suffix("").glob("*.png"))
    assert {p.name for p in pngs} == {"throughput.png", "p99.png", "mem_per_conn.png",
                                      "rss_threads.png", "spectrum.png"}
    for p in pngs:
        data = p.read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 1000
    assert "![throughput](throughput.png)" in (path.with_suffix("") / "report.md").read_text()


def test_sigint_after_first_case_keeps_it_and_resume_completes(tmp_path):
    env, mark = env_for(tmp_path)
    argv = [sys.executable, "runner.py", "bench", "--strategies", "asyncio,thread", *SHORT,
            "--no-report"]
    proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True)
    try:
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            files = run_files(tmp_path)
            if files and len(json.loads(files[0].read_text())["cases"]) == 1:
                break
            assert proc.poll() is None, proc.stderr.read()
            time.sleep(0.1)
        time.sleep(1.0)  # the second case is under way: server and loadgen running
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
        assert proc.returncode == 130, err
        assert "--resume" in err
        time.sleep(0.5)
        assert marked(mark) == []
        [path] = run_files(tmp_path)
        run, _ = store.load_run(str(path))
        assert [c["key"]["strategy"] for c in run["cases"]] == ["asyncio"]
        assert run["finished"] is None
        out = runner(["bench", "--resume", run["id"], "--no-report"], env)
        assert out.returncode == 0, out.stderr
        run, _ = store.load_run(str(path))
        assert [c["key"]["strategy"] for c in run["cases"]] == ["asyncio", "thread"]
        assert all(c["status"] == "ok" for c in run["cases"]) and run["finished"]
        assert marked(mark) == []
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_marked(mark)


CRASHER = textwrap.dedent("""
    # An echo server obeying the listening-line contract that dies (exit 3) 2 s after
    # its first connection: a crash in the middle of a case.
    import json, os, socket, sys, threading
    ls = socket.socket(); ls.bind(("127.0.0.1", 0)); ls.listen(128)
    print(json.dumps({"event": "listening", "strategy": "crasher", "host": "127.0.0.1",
                      "port": ls.getsockname()[1], "pid": os.getpid()}), flush=True)
    def echo(c):
        while data := c.recv(65536):
            c.sendall(data)
    first = True
    while True:
        c, _ = ls.accept()
        if first:
            threading.Timer(2.0, os._exit, (3,)).start()
            first = False
        threading.Thread(target=echo, args=(c,), daemon=True).start()
""")


def test_a_server_crashing_mid_case_is_failed_and_the_run_goes_on(tmp_path):
    env, mark = env_for(tmp_path)
    script = tmp_path / "crasher.py"
    script.write_text(CRASHER)
    try:
        out = runner(["bench", "--strategies", "external,asyncio", "--server-cmd",
                      f"{sys.executable} {script}", *SHORT, "--no-report"], env)
        assert out.returncode == 0, out.stderr
        assert marked(mark) == []
    finally:
        kill_marked(mark)
    [path] = run_files(tmp_path)
    run, _ = store.load_run(str(path))
    crashed, after = run["cases"]
    assert crashed["key"]["strategy"] == "external"
    assert crashed["status"] == "failed: server exited (code 3)"
    assert crashed["verdict"] == {"kind": "failed", "reason": "server exited (code 3)"}
    assert crashed["server"]["exit"] == {"code": 3, "signal": None}
    assert after["key"]["strategy"] == "asyncio" and after["status"] == "ok"
    assert after["verdict"]["kind"] != "failed"


TOMLS = {
    "BADTOML": b"connections = [100,\n",
    "UNKNOWNKEY": b'colour = "red"\n',
    "NANTIMEOUT": b"timeout = nan\n",
    "SEEDTEXT": b'seed = "abc"\n',
    "SEEDFLOAT": b"seed = 1.9\n",
    "CMDNUMBER": b"server_cmd = 5\n",
    "CMDLIST": b'server_cmd = ["a", "b"]\n',
    "PINTEXT": b'pin = "false"\n',
    "QUICKTEXT": b'quick = "no"\n',
    "LATIN1": "# caf\xe9\nrepeats = 1\n".encode("latin-1"),
}


@pytest.mark.parametrize("args,msg", [
    (["bench", "--strategies", "nosuch"], "unknown strategy 'nosuch'"),
    (["bench", "--connections", "-5"], "--connections: '-5' must be >= 1"),
    (["bench", "--connections", "ten"], "--connections: 'ten' is not an integer"),
    (["bench", "--connections", "50000"], "--connections: '50000' must be <= "),
    (["bench", "--config", "/nonexistent/c10k.toml"], "cannot read"),
    (["bench", "--config", "BADTOML"], "not valid TOML"),
    (["bench", "--config", "UNKNOWNKEY"], "unknown setting 'colour'"),
    (["bench", "--config", "LATIN1"], "not valid TOML (not UTF-8 text)"),
    (["bench", "--config", "NANTIMEOUT"], "--timeout: nan is not a finite number"),
    (["bench", "--config", "SEEDTEXT"], "--seed: 'abc' is not an integer"),
    (["bench", "--config", "SEEDFLOAT"], "--seed: 1.9 is not an integer"),
    (["bench", "--config", "CMDNUMBER"], "--server-cmd: 5 is not a command line"),
    (["bench", "--config", "CMDLIST"], "--server-cmd: 'external' is given twice"),
    (["bench", "--config", "PINTEXT"], "--pin: 'false' is not true or false"),
    (["bench", "--config", "QUICKTEXT"], "--quick: 'no' is not true or false"),
    (["bench", "--rate", "nan"], "--rate: 'nan' is not a finite number"),
    (["bench", "--duration", "inf"], "--duration: inf is not a finite number"),
    (["bench", "--mem-floor", "nan"], "--mem-floor: nan is not a finite number"),
    (["bench", "--ramp-rate", "1e-300"], "--ramp-rate: 1e-300 must be >= 1"),
    (["bench", "--size", "2000000"], "--size: '2000000' must be <= 1048576"),
    (["bench", "--procs", "5000"], "--procs: 5000 must be <= 1024"),
    (["bench", "--backlog", "99999999999"], "--backlog: 99999999999 must be <= 65535"),
    (["bench", "--server-cmd", 'foo "bar'], "cannot be split (No closing quotation)"),
    (["bench", "--out", "/proc/x"], "--out /proc/x: cannot make the directory"),
    (["bench", "--strategies", "external"], "'external' needs --server-cmd"),
    (["bench", "--resume", "nosuchrun"], "no run 'nosuchrun'"),
    (["bench", "--resume", "NOKEYS"], "its config lacks 'strategies'"),
    (["report", "CORRUPT"], "not a run file (bad JSON"),
    (["report", "nosuchrun"], "no run 'nosuchrun'"),
    (["report", "NOKEYS", "--out", "/proc/x"], "--out /proc/x: cannot make the directory"),
])
def test_bad_input_is_one_line_and_exit_2(tmp_path, args, msg):
    env, _ = env_for(tmp_path)
    subst = {}
    for name, text in TOMLS.items():
        (tmp_path / f"{name}.toml").write_bytes(text)
        subst[name] = str(tmp_path / f"{name}.toml")
    runs = tmp_path / "runs"
    runs.mkdir()
    subst["CORRUPT"] = str(runs / "20260101-000000-abcdef0.json")
    Path(subst["CORRUPT"]).write_text('{"schema": 1, "kind": "bench", "cases": [')
    nokeys = store.new_run("bench", {"duration": 1.0})
    subst["NOKEYS"] = str(store.save_run(nokeys, runs))
    before = sorted(runs.iterdir())
    out = runner([subst.get(a, a) for a in args], env, timeout=60)
    assert out.returncode == 2
    lines = out.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and msg in lines[0], out.stderr
    assert "Traceback" not in out.stderr
    assert sorted(runs.iterdir()) == before  # no run file was started


def test_default_matrix_is_every_strategy_at_three_counts_plus_closed_loop():
    cfg = matrix.build_config({})
    keys = matrix.case_keys(cfg)
    assert len(keys) == 5 * 4 * 3
    first_pass = [k for k in keys if k.repeat == 0]
    cap = matrix.auto_rate_cap(len(matrix.cpu_plan(True)["loadgen"]))  # per loadgen CPU
    assert cfg["rate_cap"] == cap and cfg["procs"] == 1
    assert {(k.connections, k.mode, k.rate) for k in first_pass} == {
        (100, "open", 100.0), (1000, "open", 1000.0), (10000, "open", min(10000.0, cap)),
        (100, "closed", None)}
    assert [k.repeat for k in keys[:20]] == [0] * 20  # repeats are the outer loop


def test_quick_toml_and_command_line_layer_in_that_order(tmp_path):
    quick = matrix.build_config({"quick": True})
    assert quick["connections"] == [100, 1000] and quick["repeats"] == 1
    assert len(matrix.case_keys(quick)) == 5 * 3
    toml = tmp_path / "c.toml"
    toml.write_text('connections = [10, 20]\nrepeats = 2\nconn-mode = "per-message"\n')
    cfg = matrix.build_config({"repeats": 4}, str(toml))
    assert cfg["connections"] == [10, 20] and cfg["repeats"] == 4
    assert cfg["conn_mode"] == ["per-message"] and cfg["closed_connections"] == []
    ext = matrix.build_config({"server_cmd": "./srv"})
    assert ext["strategies"] == ["external"]
    with pytest.raises(UsageError, match="--mode: 'half' is not one of"):
        matrix.build_config({"mode": "half"})


@pytest.mark.parametrize("how,status", [
    (["--mem-floor", "1e15"], "aborted: memory guard (available memory"),
    (["--config", "TOML"], "aborted: time limit (1 s)"),
])
def test_guard_and_time_limit_abort_the_case_and_leave_nothing(tmp_path, how, status):
    env, mark = env_for(tmp_path)
    toml = tmp_path / "limit.toml"
    toml.write_text("case_time_limit = 1\n")
    how = [str(toml) if a == "TOML" else a for a in how]
    try:
        out = runner(["bench", "--strategies", "asyncio", *SHORT, "--no-report", *how], env)
        assert out.returncode == 1, out.stderr  # every case failed
        assert marked(mark) == []
    finally:
        kill_marked(mark)
    [path] = run_files(tmp_path)
    [c] = store.load_run(str(path))[0]["cases"]
    assert c["status"].startswith(status), c["status"]
    assert c["loadgen"] is None and c["server"]["exit"] == {"code": 0, "signal": None}


TREE = textwrap.dedent("""
    # 50 single-threaded children, each burning 4 ms of CPU (less than one 10 ms clock
    # tick) and then sleeping; "ready" once all of them have burnt it.
    import os, sys, time
    r, w = os.pipe()
    for _ in range(50):
        if os.fork() == 0:
            t = time.process_time()
            while time.process_time() - t < 0.004:
                pass
            os.write(w, b"x")
            time.sleep(60)
            os._exit(0)
    got = 0
    while got < 50:
        got += len(os.read(r, 50))
    print("ready", flush=True)
    time.sleep(60)
""")


def test_sampler_sums_the_tree_and_counts_sub_tick_cpu_of_many_children():
    from bench.guard import MemoryGuard
    from bench.sampler import Sampler, footprint

    proc = subprocess.Popen([sys.executable, "-c", TREE], stdout=subprocess.PIPE, text=True,
                            start_new_session=True)
    try:
        assert proc.stdout.readline().strip() == "ready"
        fp = footprint(proc.pid)
        assert fp["procs"] == 51 and fp["threads"] == 51 and fp["fds"] >= 51 * 3
        assert fp["pss"] < fp["rss"]  # forked children share pages: PSS splits them
        # 50 x 4 ms = 0.2 s; per-process clock ticks would report ~0 for each child.
        assert fp["cpu_s"] >= 0.15
        sampler = Sampler(proc.pid, MemoryGuard(floor=0), time.monotonic(), interval=0.05)
        sampler.start()
        time.sleep(0.5)
        sampler.stop()
        assert len(sampler.series) >= 2 and sampler.peak["procs"] == 51
        assert not sampler.tripped.is_set()
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()


def test_memory_under_load_is_the_median_of_samples_strictly_inside_the_window():
    from bench.case import load_footprint

    series = [{"t": t, "rss": r, "pss": p, "uss": None, "threads": 1, "procs": 1, "fds": None}
              for t, r, p in [(0.5, 10, 5), (2.0, 100, None), (3.0, 300, None),
                              (5.0, 200, 50), (8.0, 999, 99)]]
    load = load_footprint(series, 2.0, 8.0)  # the samples at 3.0 and 5.0 only
    assert load["rss"] == 250 and load["pss"] == 50 and load["fds"] is None


def test_cpu_between_two_instants_interpolates_the_readings_around_each():
    from bench.cpumeter import Counter

    c = Counter(lambda: None, "cgroup")
    for t, v in [(0.0, 0.0), (0.1, 0.05), (0.2, 0.10), (1.2, 0.60), (1.25, 0.62)]:
        c.record(t, v)
    iv = c.between(0.05, 1.225)  # 0.025 and 0.61, each between readings <= 0.1 s apart
    assert iv.cpu_s == pytest.approx(0.585) and iv.gap_s == pytest.approx(0.1)
    assert iv.cores == pytest.approx(0.585 / 1.175)
    wide = c.between(0.05, 0.7)  # the end falls in a 1 s gap between readings: it says so
    assert wide.cpu_s == pytest.approx(0.35 - 0.025) and wide.gap_s == pytest.approx(1.0)
    assert c.between(-1.0, 0.5) is None and c.between(0.5, 2.0) is None
    c.record(1.3, 0.5)  # a counter never goes back: a lower reading is dropped
    assert c.values[-1] == 0.62


BURN_S = 0.001  # CPU seconds the burn server spends per echo


def _bench(tmp_path: Path, args: list[str], timeout: float = 120) -> dict:
    """Run ``runner.py bench ARGS`` and return its run (exit code 0 or 1 and nothing left)."""
    env, mark = env_for(tmp_path)
    try:
        out = runner(["bench", *args, "--no-report"], env, timeout=timeout)
        assert out.returncode in (0, 1), out.stderr
        assert marked(mark) == []
    finally:
        kill_marked(mark)
    [path] = run_files(tmp_path)
    run, _ = store.load_run(str(path))
    return run


def _server(name: str, *args: str) -> str:
    return shlex.join([sys.executable, str(ROOT / "tests" / "runner_servers" / name), *args])


def test_cpu_per_message_of_a_server_of_known_cost_is_measured_and_its_pin_honoured(tmp_path):
    affinity = tmp_path / "affinity.json"
    run = _bench(tmp_path, ["--server-cmd", _server("burn.py", str(BURN_S), str(affinity)),
                            "--connections", "20", "--rate", "200", "--duration", "3",
                            "--warmup", "1", "--repeats", "1"])
    [c] = run["cases"]
    assert c["verdict"]["kind"] != "failed", c["verdict"]
    assert json.loads(affinity.read_text()) == c["pin"]["server"] == \
        matrix.cpu_plan(True)["server"]
    per_msg = c["cpu_s_per_1k_msgs"] / 1000
    # The burn plus the server's own cost of a message that wakes it from idle (select,
    # recv, send and the kernel's side of them): 50-110 µs here.
    assert BURN_S <= per_msg <= 1.2 * BURN_S
    cpu = c["cpu"]["server"]
    expected = BURN_S * c["loadgen"]["rate"]["achieved"]
    assert cpu["cores"] == pytest.approx(expected, rel=0.2)
    assert cpu["percent"] <= 100 * cpu["limit_cores"]


def test_a_server_that_never_echoes_is_server_bound_and_a_closed_port_fails(tmp_path):
    silent = _bench(tmp_path / "a", ["--server-cmd", _server("silent.py"), "--connections",
                                     "20", "--rate", "40", *SHORT[2:], "--ramp-timeout", "2"])
    [c] = silent["cases"]
    assert c["verdict"]["kind"] == "server-bound", c["verdict"]
    assert "0 of 40 msg/s" in c["verdict"]["reason"]
    assert "20 of 20 connections starved" in c["verdict"]["reason"]
    closed = _bench(tmp_path / "b", ["--server-cmd", _server("closed_port.py"),
                                     "--connections", "20", *SHORT[2:], "--ramp-timeout", "2"])
    [c] = closed["cases"]
    assert c["verdict"] == {"kind": "failed", "reason": "connections: 0 of 20 established"}


def test_a_loadgen_sharing_its_cpu_with_a_hog_is_loadgen_bound(tmp_path):
    loadgen_cpu = matrix.cpu_plan(True)["loadgen"][0]
    # Three busy processes, each in a session (and so a scheduler autogroup) of its own, as
    # the loadgen's master and worker are: the worker gets a sixth of its CPU or so.
    hogs = [subprocess.Popen([sys.executable, "-c", "import time\nt = time.time()\n"
                              "while time.time() - t < 60: pass"], start_new_session=True)
            for _ in range(3)]
    try:
        for hog in hogs:
            os.sched_setaffinity(hog.pid, [loadgen_cpu])
        run = _bench(tmp_path, ["--strategies", "asyncio", "--connections", "200",
                                "--rate", "4000", *SHORT[2:]])
    finally:
        for hog in hogs:
            hog.kill()
            hog.wait()
    [c] = run["cases"]
    assert c["verdict"]["kind"] == "loadgen-bound", c["verdict"]
    assert "sent late" in c["verdict"]["reason"] or "CPU" in c["verdict"]["reason"]
    from results.report import tables

    [row] = [ln for ln in "\n".join(tables(run).values()).splitlines()
             if ln.startswith("asyncio") and "≥ " in ln]
    assert f"≥ {c['loadgen']['rate']['achieved']:,.0f}" in row


def test_capacity_search_finds_the_knee_of_a_server_of_known_cost(tmp_path):
    # 2 ms of CPU per echo on one core: nothing above 500 msg/s can be held. The SLO's p99
    # is wide so that a busy machine's scheduling delays do not decide the test.
    run = _bench(tmp_path, ["--mode", "capacity", "--server-cmd", _server("burn.py", "0.002"),
                            "--connections", "20", "--capacity-start", "100",
                            "--slo-p99-ms", "100", "--duration", "2", "--warmup", "0.5"],
                 timeout=300)
    [k] = run["capacity"]
    assert k["bound"] == "server", k
    assert 100 <= k["knee"] < 500
    rates = [s["rate"] for s in k["steps"]]
    assert rates[:3] == [100.0, 200.0, 400.0] or rates[:2] == [100.0, 200.0]
    assert [c["key"]["rate"] for c in run["cases"]] == rates
    held = [s["rate"] for s in k["steps"] if s["verdict"] == "held"]
    assert k["knee"] == max(held)
    above = [s for s in k["steps"] if s["rate"] > k["knee"]]
    assert above and all(s["verdict"] == "server-bound" for s in above)
    assert min(s["rate"] for s in above) / k["knee"] <= 1 + run["config"]["capacity_tolerance"]


def _wait(cond, timeout: float, step: float = 0.05) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if cond():
            return True
        time.sleep(step)
    return cond()


def _loadgen_running(mark: str) -> bool:
    return any("loadgen" in " ".join(p.cmdline()) for p in marked(mark))


@pytest.mark.parametrize("signals", [
    [signal.SIGINT, signal.SIGINT],  # the second lands in the first one's cleanup
    [signal.SIGHUP],
    [signal.SIGKILL],
])
def test_the_runner_however_stopped_leaves_no_process_behind(tmp_path, signals):
    from bench import cgroup
    from bench.case import TMP_PREFIX, sweep_workdirs

    env, mark = env_for(tmp_path)
    proc = subprocess.Popen([sys.executable, "runner.py", "bench", "--strategies",
                             "goroutine,thread", "--connections", "200", "--duration", "4",
                             "--repeats", "2", "--no-report"], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    try:
        assert _wait(lambda: _loadgen_running(mark), 60), proc.stderr.read()
        time.sleep(0.5)
        for sig in signals:
            proc.send_signal(sig)
            time.sleep(0.3)
        proc.wait(30)
        assert proc.returncode == (-9 if signals == [signal.SIGKILL] else 130)
        assert _wait(lambda: marked(mark) == [], 5.0), [p.cmdline() for p in marked(mark)]
        left = list(Path(tempfile.gettempdir()).glob(f"{TMP_PREFIX}{proc.pid}-*"))
        if signals == [signal.SIGKILL]:  # what it could not remove, the next run does
            assert len(left) == 1
            assert str(left[0]) in sweep_workdirs()
            cgroup.sweep()
        assert not left[0].exists() if left else True
        [path] = run_files(tmp_path)
        store.load_run(str(path))  # still a valid run file
    finally:
        if proc.poll() is None:
            proc.kill()
        kill_marked(mark)


def test_a_full_disk_mid_run_is_one_line_exit_1_and_the_file_stays_valid(tmp_path):
    if os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    disk = tmp_path / "disk"
    disk.mkdir()
    subprocess.run(["mount", "-t", "tmpfs", "-o", "size=16k", "tmpfs", str(disk)], check=True)
    try:
        env, mark = env_for(tmp_path)
        try:
            out = runner(["bench", "--strategies", "asyncio", *SHORT, "--no-report",
                          "--out", str(disk)], env)
            assert marked(mark) == []
        finally:
            kill_marked(mark)
        assert out.returncode == 1, out.stderr
        [line] = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
        [path] = disk.glob("*.json")
        assert line.startswith(f"error: cannot write {path} (No space left on device): it "
                               "holds the 0 case(s) saved before")
        assert "Traceback" not in out.stderr
        run, _ = store.load_run(str(path))
        assert run["cases"] == [] and run["finished"] is None
    finally:
        subprocess.run(["umount", "-l", str(disk)], check=False)


def test_external_servers_run_by_name_beside_a_builtin_one(tmp_path):
    touched = tmp_path / "touched"
    run = _bench(tmp_path, ["--strategies", "asyncio",
                            "--server-cmd", "quiet=" + _server("quiet.py", "{port}"),
                            "--server-cmd", f"never={_server('closed_port.py')} ; touch {touched}",
                            "--ready-timeout", "3", "--connections", "20", *SHORT[2:]])
    by = {c["key"]["strategy"]: c for c in run["cases"]}
    assert list(by) == ["asyncio", "quiet", "never"]
    assert by["quiet"]["verdict"]["kind"] != "failed", by["quiet"]["verdict"]
    assert by["quiet"]["loadgen"]["messages"] > 0
    port = int(by["quiet"]["server_cmd"][-1])
    assert by["quiet"]["server_cmd"][-2:] == [str(ROOT / "tests/runner_servers/quiet.py"),
                                              str(port)]
    # closed_port.py prints a listening line for a port nothing listens on, and shlex hands
    # "; touch FILE" to it as arguments: no shell ever runs them.
    assert by["never"]["verdict"] == {"kind": "failed",
                                      "reason": "connections: 0 of 20 established"}
    assert ";" in by["never"]["server_cmd"] and not touched.exists()
    assert run["strategy_kinds"] == {"asyncio": "reference", "quiet": "external",
                                     "never": "external"}


def test_an_external_server_that_never_listens_fails_within_its_ready_timeout(tmp_path):
    t0 = time.monotonic()
    run = _bench(tmp_path, ["--server-cmd", "mute=sleep 60 {port}",  # silent, never listens
                            "--ready-timeout", "2", "--connections", "5", *SHORT[2:]])
    [c] = run["cases"]
    assert c["verdict"]["kind"] == "failed"
    assert "nor accepted a connection on port" in c["verdict"]["reason"]
    assert time.monotonic() - t0 < 30


@pytest.mark.parametrize("args,msg", [
    (["--server-cmd", "a=./x", "--server-cmd", "a=./y"], "--server-cmd: 'a' is given twice"),
    (["--server-cmd", "=./x"], "--server-cmd: '=./x' needs a NAME before '='"),
    (["--server-cmd", "thread=./x"], "'thread' is a built-in strategy's name"),
])
def test_bad_server_cmd_names_are_one_line_exit_2(tmp_path, args, msg):
    env, _ = env_for(tmp_path)
    out = runner(["bench", *args], env, timeout=60)
    assert out.returncode == 2 and out.stderr.strip().splitlines() == [f"error: {msg}"] or \
        msg in out.stderr, out.stderr
