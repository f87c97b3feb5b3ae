"""results.store: run files are created, written atomically, found and validated."""

from __future__ import annotations

import json
import os

import pytest

from results import schema, store


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    d = tmp_path / "runs"
    d.mkdir()
    monkeypatch.setattr(store, "RUNS_DIR", d)
    monkeypatch.setattr(store, "BASELINES_DIR", tmp_path / "baselines")
    return d


def micro_case(name="ChanSync"):
    return {"name": name, "procs": 1, "unit": "us/op", "loops": 10, "values": [1.0, 2.0],
            "asyncio_values": None, "ratio_median": None}


def test_new_run_has_envelope_and_validates(runs_dir):
    run = store.new_run("micro", {"x": 1})
    assert run["schema"] == schema.VERSION and run["kind"] == "micro" and run["cases"] == []
    assert run["git"]["sha"] and run["machine"]["cores_logical"] >= 1
    assert run["machine"]["fd_limit"]["hard"] >= run["machine"]["fd_limit"]["soft"] > 0
    store.validate(run)


def test_new_run_never_reuses_an_existing_id(runs_dir):
    a = store.new_run("micro", {})
    store.save_run(a)
    b = store.new_run("micro", {})
    assert b["id"] != a["id"]


def test_save_then_load_round_trips_and_leaves_no_temp_file(runs_dir):
    run = store.new_run("micro", {"a": [1, 2]})
    run["cases"].append(micro_case())
    path = store.save_run(run)
    assert path == runs_dir / f"{run['id']}.json"
    assert [p.name for p in runs_dir.iterdir()] == [path.name]
    for ref in (run["id"], str(path), "latest", "latest:micro", run["id"][:15]):
        loaded, where = store.load_run(ref)
        assert loaded == run and where == path


def test_save_refuses_an_invalid_run_and_keeps_the_previous_file(runs_dir):
    run = store.new_run("micro", {})
    path = store.save_run(run)
    before = path.read_bytes()
    run["cases"].append({"name": "x"})
    with pytest.raises(store.RunFileError, match="missing field 'procs'"):
        store.save_run(run)
    assert path.read_bytes() == before
    assert len(list(runs_dir.iterdir())) == 1


def test_bench_case_ok_must_carry_its_measurements(runs_dir):
    run = store.new_run("bench", {})
    run["cases"].append({
        "key": {"strategy": "thread", "connections": 10, "rate": None, "size": 64,
                "mode": "closed", "conn_mode": "persistent", "repeat": 0},
        "status": "ok", "started": "x", "duration_s": 1.0, "server_cmd": ["x"], "pin": None,
        "loadgen": None, "loadgen_proc": None, "server": None, "cpu_s_per_1k_msgs": None,
        "mem_per_conn": {"metric": "rss", "bytes": None},
        "machine_mem": {"available_before": 1, "available_min": 1, "drop": 0},
        "netstat": {"ListenOverflows": 0, "ListenDrops": 0}, "defects": [], "notes": [],
        "verdict": {"kind": "held", "reason": "x"}, "window": None,
        "cpu": {"server": None, "loadgen": None, "series": {"server": [], "loadgen": []}},
        "measurement_defects": [],
    })
    with pytest.raises(store.RunFileError, match=r"cases\[0\]\.loadgen"):
        store.validate(run)
    run["cases"][0]["status"] = "failed: server exited (code 1)"
    store.validate(run)
    run["cases"][0]["status"] = "weird"
    with pytest.raises(store.RunFileError, match="status"):
        store.validate(run)


@pytest.mark.parametrize("content,msg", [
    ("{not json", "bad JSON at line 1"),
    ("[]", "expected a JSON object"),
    ('{"schema": 99}', "version 99, this code reads 1"),
])
def test_load_rejects_corrupt_files_with_one_line(runs_dir, content, msg):
    p = runs_dir / "20250101-000000-abc.json"
    p.write_text(content)
    with pytest.raises(store.RunFileError, match=msg) as e:
        store.load_run(str(p))
    assert "\n" not in str(e.value)


def test_latest_skips_invalid_files_and_filters_by_kind(runs_dir):
    with pytest.raises(store.RunFileError, match="no bench run"):
        store.load_run("latest:bench")
    m = store.new_run("micro", {})
    store.save_run(m)
    (runs_dir / "zzz.json").write_text("garbage")
    assert store.load_run("latest")[0]["id"] == m["id"]
    assert [r["id"] for r, _ in store.list_runs("micro")] == [m["id"]]
    assert store.list_runs("bench") == []


def _load_error(ref: str) -> str:
    """The message of the RunFileError that load_run(ref) raises, checked to be one line."""
    with pytest.raises(store.RunFileError) as e:
        store.load_run(ref)
    msg = str(e.value)
    assert msg.strip() and "\n" not in msg, f"{ref!r}: {msg!r}"
    return msg


def test_unknown_refs_are_one_line_errors(runs_dir):
    """Each way a ref can miss is one line naming what was asked for."""
    assert "no run in" in _load_error("latest")
    a = store.new_run("micro", {})
    store.save_run(a)
    b = store.new_run("micro", {})
    store.save_run(b)
    prefix = os.path.commonprefix([a["id"], b["id"]])[:8]  # the date: a prefix of both ids
    expect = {"nosuchrun": "nosuchrun", "baseline:nope": "nope",
              "/nonexistent/x.json": "/nonexistent/x.json", "latest:foo": "latest:foo",
              prefix: "matches 2 runs"}
    for ref, named in expect.items():
        assert named in _load_error(ref)


def test_baseline_ref_reads_from_baselines_dir(runs_dir, tmp_path):
    run = store.new_run("micro", {})
    store.save_run(run, tmp_path / "baselines")
    os.rename(tmp_path / "baselines" / f"{run['id']}.json", tmp_path / "baselines" / "micro.json")
    assert store.load_run("baseline:micro")[0]["id"] == run["id"]


def test_written_file_is_plain_json_without_nan(runs_dir):
    run = store.new_run("micro", {})
    run["cases"].append(micro_case())
    run["cases"][0]["values"] = [float("nan")]
    with pytest.raises(ValueError):
        store.save_run(run)
    run["cases"][0]["values"] = [1.5]
    assert json.loads(store.save_run(run).read_text())["cases"][0]["values"] == [1.5]


def _as_version_1(run: dict, cpu_percent: float, saturation_reason: str | None) -> dict:
    """A run as version 1 wrote it: no verdict, window, CPU block or measurement defects;
    CPU % in the server block; the loadgen's one ``saturated`` word."""
    run["schema"] = 1
    for c in run["cases"]:
        for k in ("verdict", "window", "cpu", "measurement_defects"):
            del c[k]
        c["server"].update(cpu_s=1.0, cpu_percent=cpu_percent)
        for row in c["server"]["series"]:
            row["cpu_s"] = 1.0
        c["loadgen_proc"]["cpu_s"] = 1.0
        lg = c["loadgen"]
        del lg["window"], lg["limit"]
        lg.update(saturated=saturation_reason is not None, saturation_reason=saturation_reason)
        c["pin"] = {"server": [0], "loadgen": [1], "sampler": [1]}
    return run


def test_version_1_files_load_with_verdicts_and_their_impossible_cpu_flagged(runs_dir):
    from tests.results.bench_cases import bench_run, case

    v1 = _as_version_1(bench_run([case("thread", 100, achieved=90.0)]), 161.8,
                       "worker 0 CPU 95% > 90%; achieved 90 msg/s < 95% of target 100 msg/s")
    path = runs_dir / f"{v1['id']}.json"
    path.write_text(json.dumps(v1))
    run, _ = store.load_run(str(path))
    assert run["schema"] == schema.VERSION and run["upgraded_from"] == 1
    [c] = run["cases"]
    assert c["verdict"] == {"kind": "loadgen-bound",
                            "reason": "worker 0 CPU 95% > 90%; 90 of 100 msg/s"}
    assert c["cpu"]["server"]["percent"] == 161.8 and c["cpu"]["server"]["limit_cores"] == 1
    assert c["measurement_defects"] == [
        "server CPU 162% > 100% it may use (version-1 sampling)"]
    assert "saturated" not in c["loadgen"] and "cpu_percent" not in c["server"]


def test_runs_started_in_the_same_second_get_their_own_files(runs_dir, monkeypatch, tmp_path):
    frozen = store._now()
    monkeypatch.setattr(store, "_now", lambda: frozen)
    out = tmp_path / "out"  # the directory written, not RUNS_DIR, is where the id is taken
    a, b = store.new_run("bench", {}), store.new_run("bench", {})
    assert a["id"] == b["id"]
    pa, pb = store.save_run(a, out, new=True), store.save_run(b, out, new=True)
    assert pa != pb and b["id"] == f"{a['id']}-2"
    assert {json.loads(p.read_text())["id"] for p in (pa, pb)} == {a["id"], b["id"]}
