"""loadgen.result: merging the workers' final reports, the window and the loadgen's limit."""

from loadgen import histogram
from loadgen.recorder import CONNECT_KINDS, ERROR_KINDS, Recorder
from loadgen.result import assemble


def _final(index: int, counts: list[int], cpu: float = 20.0, late_us: int = 0) -> dict:
    rec = Recorder(timeout=1.0)
    rec.open_window(0.0, 2.0)
    for _ in counts:
        rec.new_user()
    for uid, n in enumerate(counts):
        for k in range(n):
            t = k * 2.0 / max(n, 1)
            rec.sample(uid, t, t, t + 0.001 * (uid + 1), 64)
    return {"index": index, "pid": 100 + index, "connections": len(counts), "cpu_percent": cpu,
            "measure_s": 2.0, "messages": rec.messages, "bytes": rec.bytes,
            "errors": dict.fromkeys(ERROR_KINDS, 0),
            "connect_errors": dict.fromkeys(CONNECT_KINDS, 0),
            "corrected": histogram.encode(rec.corrected),
            "uncorrected": histogram.encode(rec.uncorrected), "per_user": rec.per_user,
            "buckets": rec.take_buckets(10.0, final=True), "late_p50_us": late_us}


CFG = {"connections": 4, "mode": "open", "rate": 10.0, "duration": 2.0}
RAMP = {"connected": 4, "served": 4, "ramp_timed_out": False, "ramp_s": 0.5}


def _assemble(finals, cfg=CFG):
    buckets: dict[int, list[str]] = {}
    for f in finals:
        for i, enc in f["buckets"].items():
            buckets.setdefault(int(i), []).append(enc)
    return assemble(cfg, RAMP, finals, buckets)


def test_workers_are_merged_and_fairness_spans_all_connections():
    r = _assemble([_final(1, [10, 10]), _final(0, [10, 0])])
    assert r["messages"] == 30 and r["bytes"] == 30 * 64
    assert [w["index"] for w in r["workers"]] == [0, 1]
    assert r["fairness"]["starved"] == 1 and r["fairness"]["max"] == 10
    assert r["latency_us"]["corrected"]["count"] == 30
    assert [i["messages"] for i in r["intervals"]] == [15, 15]
    assert r["rate"] == {"target": 10.0, "achieved": 15.0}
    assert r["limit"] == {"bound": False, "reasons": []}


def test_connections_never_spawned_count_as_starved():
    r = _assemble([_final(0, [5, 5])], cfg={**CFG, "connections": 5})
    assert r["fairness"]["starved"] == 3


def test_loadgen_limit_reasons_name_the_worker_and_leave_the_rate_to_the_runner():
    r = _assemble([_final(0, [10, 10], cpu=95.0), _final(1, [10, 10], late_us=5000)],
                  cfg={**CFG, "rate": 100.0})
    assert r["limit"]["bound"]
    [cpu, late] = r["limit"]["reasons"]
    assert cpu == "worker 0 CPU 95% > 90%"
    assert late.startswith("worker 1 sent late: median 5.0 ms")
    tail = _assemble([{**_final(0, [10, 10], late_us=100), "late_p99_us": 8000}])
    assert tail["limit"]["reasons"] == ["worker 0 sent late: p99 8.0 ms after the intended "
                                        "time (its CPU is busy or shared)"]
    under_target = _assemble([_final(0, [10, 10])], cfg={**CFG, "rate": 100.0})
    assert under_target["limit"]["bound"] is False  # 20 msg/s of 100 is not the loadgen's fault


def test_window_comes_from_workers_sharing_the_masters_clock():
    local = {**_final(0, [1]), "boot_id": "b1", "window": [10.0, 12.0]}
    late = {**_final(1, [1]), "boot_id": "b1", "window": [10.2, 12.2]}
    remote = {**_final(2, [1]), "boot_id": "other", "window": [0.0, 99.0]}
    master = {"boot_id": "b1", "start": 9.9, "end": 12.1}
    r = assemble(CFG, RAMP, [local, late, remote], {}, master)
    assert r["window"] == {"start": 10.0, "end": 12.2, "boot_id": "b1", "source": "workers"}
    only_remote = assemble(CFG, RAMP, [remote], {}, master)
    assert only_remote["window"] == {"start": 9.9, "end": 12.1, "boot_id": "b1",
                                     "source": "master"}


def test_closed_loop_has_no_target_and_no_rate_verdict():
    r = _assemble([_final(0, [3, 3])], cfg={**CFG, "mode": "closed", "rate": None})
    assert r["rate"]["target"] is None and not r["limit"]["bound"]


def test_each_worker_says_where_its_load_came_from_and_what_it_counted():
    errors = {**dict.fromkeys(ERROR_KINDS, 0), "timeout": 2, "reset": 1}
    connect = {**dict.fromkeys(CONNECT_KINDS, 0), "refused": 4}
    f = {**_final(0, [3, 4]), "host": "w1", "address": "198.18.0.11", "errors": errors,
         "connect_errors": connect}
    [w] = _assemble([f])["workers"]
    assert w["host"] == "w1" and w["address"] == "198.18.0.11"
    assert w["errors"] == 7
    assert w["errors_by_kind"] == errors and w["connect_errors"] == connect
    assert w["messages"] == w["histogram_count"] == 7


def test_a_window_cut_short_by_a_lost_worker_rates_over_what_was_measured():
    """The survivors closed their windows at 0.75 s of a 2 s phase: the rate and the
    intervals cover 0.75 s, the loss is carried, the late worker too."""
    f = {**_final(0, [6]), "measure_s": 0.75}
    lost = [{"index": 1, "host": "w2", "address": "198.18.0.12", "pid": 7, "phase": "measure",
             "at": 11.5, "why": "silent for 1.6 s"}]
    late = [{"host": "w3", "phase": "measure", "at": 10.5}]
    r = assemble(CFG, RAMP, [f], {}, lost=lost, late=late)
    assert r["measure_s"] == 0.75 and r["rate"]["achieved"] == 8.0
    assert [i["t"] for i in r["intervals"]] == [0.0]
    assert r["lost_workers"] == lost and r["late_workers"] == late
    never_measured = assemble(CFG, RAMP, [{**_final(0, [0]), "measure_s": 0.0,
                                           "cpu_percent": None}], {}, lost=lost)
    assert never_measured["rate"]["achieved"] == 0.0
    assert never_measured["limit"]["bound"] is False
