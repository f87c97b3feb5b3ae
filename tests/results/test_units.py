"""Units runs (results/units.py): validated both ways, found by id or as latest, the why table
beside the seeds' claims and the bench's memory per connection, and the plot."""

import pytest

from results import store
from results import units as report
from tests.results import bench_cases


def case(unit: str, strategy: str | None, memory: float, held: int = 1000,
         stop: str = "memory", metric: str = "rss") -> dict:
    return {
        "unit": unit, "label": f"{unit} label", "strategy": strategy,
        "create": {"n": 100, "values": [2.0, 1.0, 3.0], "cpu_values": [1.0, 1.0, 1.5]},
        "switch": {"n": 100, "values": [0.5, 0.7], "cpu_values": [0.4, 0.6],
                   "kernel_switches": [0.0, 0.0]},
        "memory": {"metric": metric, "n": 100, "values": [memory, memory * 1.1, memory * 0.9],
                   "kernel_values": [16384.0, 16384.0, 16384.0]},
        "hold": {"held": held, "stop": {"kind": stop, "detail": f"{stop} detail"},
                 "seconds": 1.0, "bytes": held * memory, "left": 0,
                 "budget": {"bytes": 1 << 31, "seconds": 60.0, "tasks": 10_000, "floor": 0}},
        "errors": [],
    }


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "RUNS_DIR", tmp_path)
    return tmp_path


def units_run(*cases: dict) -> dict:
    run = report.new_run({"units": [c["unit"] for c in cases]})
    run["cases"] = list(cases)
    return run


def test_a_units_run_saves_validates_and_loads_by_id_and_as_latest(runs_dir):
    run = units_run(case("goroutine", "goroutine", 800.0))
    path = report.save(run)
    assert run["kind"] == "units" and path == runs_dir / f"{run['id']}.json"
    assert report.load(run["id"]) == (run, path)
    assert report.load(str(path))[0] == run
    assert report.load("latest")[0] == run


def test_latest_skips_runs_of_other_kinds(runs_dir):
    units = units_run(case("thread", "thread", 16_000.0))
    report.save(units)
    bench = bench_cases.bench_run([bench_cases.case("thread", 100)])
    bench["id"] = "29991231-235959-zzzzzzz"  # newer than the units run
    store.save_run(bench)
    assert report.load("latest")[0]["id"] == units["id"]


@pytest.mark.parametrize("breakage,where", [
    (lambda c: c.pop("hold"), "missing field 'hold'"),
    (lambda c: c["memory"].update(metric="vms"), "$.cases[0].memory.metric"),
    (lambda c: c["hold"]["stop"].update(kind="bored"), "$.cases[0].hold.stop.kind"),
    (lambda c: c["switch"]["values"].append("fast"), "$.cases[0].switch.values[2]"),
])
def test_a_broken_case_is_refused_naming_the_field(runs_dir, breakage, where):
    run = units_run(case("goroutine", "goroutine", 800.0))
    breakage(run["cases"][0])
    with pytest.raises(store.RunFileError, match="not a valid units run") as e:
        report.save(run)
    assert where in str(e.value)
    assert list(runs_dir.iterdir()) == []


def test_a_file_that_is_not_a_units_run_is_refused_on_load(runs_dir):
    bench = bench_cases.bench_run([bench_cases.case("thread", 100)])
    path = store.save_run(bench)
    with pytest.raises(store.RunFileError, match="'bench' is not one of"):
        report.load(str(path))
    (runs_dir / "junk.json").write_text("{")
    with pytest.raises(store.RunFileError, match="not JSON"):
        report.load("junk")
    with pytest.raises(store.RunFileError, match="no units run"):
        report.load("latest")


def test_bench_memory_is_the_median_of_ok_cases_at_the_largest_count():
    bench = bench_cases.bench_run([
        bench_cases.case("thread", 100, rss_load=(10 << 20) + 100 * 50_000),
        *[bench_cases.case("thread", 1000, repeat=r, rss_load=(10 << 20) + 1000 * b)
          for r, b in enumerate([30_000, 33_000, 90_000])],
        bench_cases.case("thread", 10_000, status="failed: server exited with code 1"),
        bench_cases.case("fork", 1000, rss_load=(10 << 20) + 1000 * 2 * 900_000),
    ], ["thread", "fork"])
    mem = report.bench_memory(bench)
    assert mem["thread"] == {"bytes": 33_000, "connections": 1000, "metric": "rss"}
    assert mem["fork"]["metric"] == "pss" and mem["fork"]["bytes"] == pytest.approx(900_000)
    assert set(mem) == {"thread", "fork"}


def test_the_why_table_has_medians_claims_and_the_bench_beside_each_unit():
    run = units_run(case("goroutine", "goroutine", 800.0, held=2_600_000),
                    case("thread", "thread", 16_000.0, held=10_000, stop="tasks"),
                    case("process", "fork", 1_100_000.0, held=412, stop="limit",
                         metric="pss"),
                    case("gevent", None, 9000.0))
    rows = report.why_rows(run, {"thread": {"bytes": 33 * 1024, "connections": 10_000,
                                            "metric": "rss"}})
    g, t, p, gv = rows
    assert g[:3] == ["goroutine label", "2 (CPU 1)", "0.6 (CPU 0.5)"]  # medians
    assert g[3] == "0.00" and g[4] == "800 B rss + 16 KiB kernel"
    assert g[6] == "≥ 2,600,000 (memory budget)"  # a budget stopped it: at least that many
    assert "2 KB stack" in g[7] and "tens of ns" in g[7]
    assert t[5] == "33 KiB rss (thread @ 10,000)" and g[5] == "—"
    assert t[6] == "≥ 10,000 (tasks budget)" and "~1 MB stack" in t[7]
    assert p[4].startswith("1.05 MiB pss") and p[6] == "412 (limit detail)"  # the OS's limit
    assert gv[7] == "—"
    text = report.why_table(run)
    assert text.splitlines()[0].split()[:3] == ["unit", "create", "µs"]
    assert "| unit" in report.why_table(run, fmt="github")


def test_a_figure_not_measured_shows_a_dash():
    c = case("asyncio", "asyncio", 1200.0)
    c["switch"] = {"n": None, "values": [], "kernel_switches": []}  # a run without CPU
    c["create"].pop("cpu_values")
    c["hold"] = None
    [row] = report.why_rows(units_run(c))
    assert row[2] == row[3] == row[6] == "—" and row[1] == "2"


def test_the_plot_is_written_with_bench_markers(tmp_path):
    run = units_run(case("goroutine", "goroutine", 800.0),
                    case("process", "fork", 1_100_000.0, metric="pss"))
    run["cases"][1]["hold"] = None
    path = report.plot(run, tmp_path / "sub" / "units.png",
                       {"fork": {"bytes": 900_000.0, "connections": 10_000, "metric": "pss"}})
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and path.stat().st_size > 20_000

