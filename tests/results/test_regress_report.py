"""Regress results (results/regress.py) and their verdicts (results/regress_report.py).

The documents are synthetic: real envelopes from ``store.new_run``, counts and times
chosen by each test.
"""

import json
import random

import pytest

from results import regress, regress_report, store
from results.stats import IMPROVED, REGRESSED, SAME
from tests.results import synthetic_runs
from tests.results.synthetic_runs import cli

store_dirs = synthetic_runs.store_dirs
pytestmark = pytest.mark.usefixtures("store_dirs")

BASE_SHA = "b" * 40


def make_doc(cases: dict, gate: str = "instructions", threshold: float = 1.0,
             base_time: str = "2026-01-01T10:00:00+00:00") -> dict:
    """``cases``: label -> {side: (instructions, time values, asyncio values)}."""
    doc = regress.new_doc({
        "base": {"ref": "HEAD~1", "sha": BASE_SHA, "commit_time": base_time,
                 "baseline": None},
        "gate": gate, "threshold": threshold,
        "time_threshold": 5.0, "alpha": 0.05,
    })
    for lb, sides in cases.items():
        name, _, procs = lb.rpartition("-")
        unit = "us/msg" if name == regress.ECHO_CASE else "us/op"
        case = regress.new_case(name, int(procs), unit)
        case["loops"] = 1000
        for s, (instr, values, aio) in sides.items():
            case[s].update(instructions=instr, values=values, asyncio_values=aio)
        doc["cases"].append(case)
    return doc


def times(center: float, n: int = 6, seed: int = 0) -> list[float]:
    rng = random.Random(seed)
    return [center * (1 + rng.gauss(0, 0.01)) for _ in range(n)]


def same_time(center: float = 10.0) -> dict:
    return {"base": times(center, seed=1), "head": times(center, seed=2)}


def case(old_instr, new_instr, old_t=None, new_t=None):
    t = same_time()
    return {"base": (old_instr, old_t or t["base"], None),
            "head": (new_instr, new_t or t["head"], None)}


def table(report, metric):
    return next(t for t in report.tables if t.spec.name == metric)


def test_an_instruction_regression_gates_and_is_named_in_the_closing_line():
    doc = make_doc({"ChanSync-1": case([18_000.0, 18_000.0], [18_600.0, 18_600.0]),
                    "Gosched-1": case([9_000.0], [9_001.0])})
    report = regress_report.judge(doc)
    rows = {r.case: r for r in table(report, "instructions").rows}
    assert rows["ChanSync-1"].verdict == REGRESSED
    assert rows["ChanSync-1"].delta_pct == pytest.approx(3.333, abs=0.001)
    assert rows["Gosched-1"].verdict == SAME
    assert [r.case for r in report.regressions] == ["ChanSync-1"]
    text = regress_report.render_text(report)
    assert "instructions (instructions/op, lower is better)  <- GATE" in text
    assert "REGRESSED on the gate (instructions): ChanSync-1 +3.33%" in text
    assert text.index("<- GATE") < text.index("time/op (")  # the gate comes first


def test_an_improvement_or_a_secondary_time_regression_does_not_gate():
    doc = make_doc({"ChanSync-1": case([18_000.0], [17_000.0], times(10.0), times(13.0))})
    report = regress_report.judge(doc)
    assert table(report, "instructions").rows[0].verdict == IMPROVED
    assert table(report, "time/op").rows[0].verdict == REGRESSED
    assert report.regressions == []
    assert [(m, r.case) for m, r in report.secondary_regressions] == [("time/op", "ChanSync-1")]
    text = regress_report.render_text(report)
    assert "no regression on the gate (instructions)" in text
    assert "secondary (not gating): ChanSync-1 time/op +30" in text


def test_a_case_that_failed_on_head_only_gates():
    doc = make_doc({"ChanSync-1": case([18_000.0], [])})
    doc["cases"][0]["head"]["errors"] = ["instructions: micro_count: ChanSync: Deadlock: x"]
    report = regress_report.judge(doc)
    [row] = report.regressions
    assert (row.case, row.verdict) == ("ChanSync-1", regress_report.FAILED_IN_HEAD)
    text = regress_report.render_text(report)
    assert "ChanSync-1 (failed in head)" in text
    assert "warning: head ChanSync-1: instructions: micro_count: ChanSync: Deadlock" in text


def test_a_case_new_on_head_is_listed_not_gated():
    doc = make_doc({"NewBench-1": case([], [5_000.0])})
    report = regress_report.judge(doc)
    assert table(report, "instructions").rows[0].verdict == "only in head"
    assert report.regressions == []


def test_netpoll_round_trip_counts_are_judged_at_the_io_threshold():
    doc = make_doc({"NetpollRoundTrip-1": case([57_000.0, 57_650.0], [57_950.0, 58_470.0])})
    assert regress_report.judge(doc).regressions == []  # +1.55%: identical code has done it
    doc = make_doc({"NetpollRoundTrip-1": case([57_000.0, 57_650.0], [59_500.0, 59_800.0])})
    assert [r.case for r in regress_report.judge(doc).regressions] == ["NetpollRoundTrip-1"]
    assert [r.case for r in regress_report.judge(doc, threshold=5.0).regressions] == []


def test_procs_2_counts_gate_at_the_parallel_threshold_and_beyond_twice_their_spread():
    up_1_5 = case([10_000.0, 10_001.0, 10_002.0, 10_001.0],
                  [10_150.0, 10_151.0, 10_152.0, 10_150.0])
    doc = make_doc({"ChanSync-1": up_1_5, "ChanSync-2": up_1_5})
    report = regress_report.judge(doc)
    assert [r.case for r in report.regressions] == ["ChanSync-1"]  # procs 2: below 2%
    assert "(procs ≥ 2: 2%; NetpollRoundTrip: 3%) and beyond 2× the spread" in \
        regress_report.render_text(report)
    # +3% on Gosched-2-like counts that spread by 2% within each side: noisy, not gating.
    noisy = case([10_000.0, 9_900.0, 10_100.0, 10_050.0],
                 [10_400.0, 10_300.0, 10_350.0, 10_250.0])
    tight = case([10_000.0, 10_010.0, 10_005.0, 10_000.0],
                 [10_300.0, 10_310.0, 10_305.0, 10_300.0])
    report = regress_report.judge(make_doc({"Gosched-2": noisy, "ChanSync-2": tight}))
    rows = {r.case: r for r in table(report, "instructions").rows}
    assert rows["Gosched-2"].verdict == "noisy"
    assert [r.case for r in report.regressions] == ["ChanSync-2"]
    cfg = {"parallel_threshold": 5.0}
    assert regress_report.count_threshold("ChanSync-2", cfg, 1.0) == 5.0
    assert regress_report.count_threshold("ChanSync-1", cfg, 1.0) == 1.0
    assert regress_report.count_threshold("NetpollRoundTrip-2", {}, 1.0) == 3.0


def test_the_echo_path_count_gates_at_the_threshold():
    doc = make_doc({"EchoServer-1": case([42_200.0, 42_205.0], [43_440.0, 43_450.0]),
                    "ChanSync-1": case([18_000.0, 18_001.0], [18_001.0, 18_002.0])})
    report = regress_report.judge(doc)
    rows = {r.case: r for r in table(report, "instructions").rows}
    assert rows["EchoServer-1"].verdict == REGRESSED
    assert [r.case for r in report.regressions] == ["EchoServer-1"]
    assert "REGRESSED on the gate (instructions): EchoServer-1 +2.94%" in \
        regress_report.render_text(report)
    doc = make_doc({"EchoServer-1": case([42_200.0], [42_500.0])})  # +0.71%
    assert regress_report.judge(doc).regressions == []


def test_the_echo_case_values_are_server_cpu_per_message():
    doc = make_doc({"EchoServer-1": case([17_500.0], [17_600.0])})
    # Its values are server CPU per message: their own metric, not time/op.
    report = regress_report.judge(doc)
    assert [t.spec.name for t in report.tables] == ["instructions", "cpu/msg"]


def test_without_instruction_counts_the_asyncio_ratio_gates():
    ratio_up = {"base": ([], times(10.0), times(20.0, seed=3)),
                "head": ([], times(13.0), times(20.0, seed=4))}
    report = regress_report.judge(make_doc({"ChanSync-1": ratio_up}, gate="vs asyncio"))
    assert [t.spec.name for t in report.tables] == ["time/op", "vs asyncio"]
    assert table(report, "vs asyncio").gating
    assert [r.case for r in report.regressions] == ["ChanSync-1"]
    assert "REGRESSED on the gate (vs asyncio)" in regress_report.render_text(report)


def test_a_threshold_given_to_judge_overrides_the_measured_one():
    doc = make_doc({"ChanSync-1": case([18_000.0, 18_000.0], [18_600.0, 18_600.0])})
    assert regress_report.judge(doc, threshold=5.0).regressions == []


def test_gobench_has_one_block_per_side_with_instruction_lines():
    doc = make_doc({"ChanSync-1": case([18_000.0], [18_100.0])})
    out = regress_report.render_gobench(regress_report.judge(doc))
    lines = out.splitlines()
    assert "Unit instructions/op better=lower" in lines
    base_at, head_at = lines.index(f"run: base-{BASE_SHA[:10]}"), \
        lines.index(f"run: head-{doc['git']['sha'][:10]}")
    assert base_at < head_at
    assert "BenchmarkChanSync-1\t1000\t18000 instructions/op" in lines[base_at:head_at]
    assert "BenchmarkChanSync-1\t1000\t18100 instructions/op" in lines[head_at:]
    assert sum(ln.endswith(" ns/op") for ln in lines[head_at:]) == 6


def test_a_saved_result_validates_and_loads_and_runs_are_not_taken_for_one(store_dirs):
    doc = make_doc({"ChanSync-1": case([18_000.0], [18_100.0])})
    path = regress.save(doc)
    assert path.parent == store.RUNS_DIR
    store.save_run(store.new_run("micro", {}))
    assert [d["id"] for d in regress.load_all()] == [doc["id"]]
    bad = json.loads(path.read_text())
    del bad["cases"][0]["head"]["instructions"]
    with pytest.raises(store.RunFileError, match=r"cases\[0\]\.head: missing field"):
        regress.validate(bad)


def test_history_of_regress_results_puts_base_and_head_at_their_commits(capsys, tmp_path):
    first = make_doc({"ChanSync-1": case([18_000.0], [18_500.0])},
                     base_time="2026-01-01T10:00:00+00:00")
    first["git"].update(sha="c" * 40, dirty=False, commit_time="2026-01-02T10:00:00+00:00")
    regress.save(first)
    code, out, err = cli(capsys, "history", "--metric", "instructions",
                         "--out", str(tmp_path / "h.png"))
    assert code == 0, err
    rows = [ln.split() for ln in out.splitlines() if ln[:4] == "2026"]
    assert [(r[2], r[3].rpartition(":")[2], r[4]) for r in rows] == [
        ("bbbbbbbbbb", "base", "18,000"), ("cccccccccc", "head", "18,500")]
