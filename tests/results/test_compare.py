"""`runner.py compare`: per-metric verdicts for micro and bench runs, exit status, bad input."""

import re

import pytest

from results import compare, stats, store
from tests.results import synthetic_runs
from tests.results.synthetic_runs import bench_run, cli, micro_run, save

store_dirs = synthetic_runs.store_dirs
pytestmark = pytest.mark.usefixtures("store_dirs")

NAMES = {"ChanSync": 2.0, "Gosched": 1.0, "MutexContended": 5.0}


def rows_of(text: str, title: str) -> dict[str, str]:
    """case -> its table line, from the table whose title starts with ``title``."""
    block = text.split("\n" + title, 1)[1].split("\n\n", 1)[0]
    out = {}
    for line in block.splitlines()[3:]:
        out[line.split()[0]] = line
    return out


def test_a_20_percent_slowdown_is_regressed_with_p_below_005_and_exit_1(capsys):
    save(micro_run("20260101-000000-aaaaaaa", NAMES, seed=1))
    slower = dict(NAMES, ChanSync=2.4)
    save(micro_run("20260101-000100-bbbbbbb", slower, seed=2))
    code, out, err = cli(capsys, "compare", "20260101-000000-aaaaaaa", "latest:micro")
    assert code == 1, out + err
    rows = rows_of(out, "time/op")
    assert "regressed" in rows["ChanSync-1"]
    p = float(rows["ChanSync-1"].split()[-3])
    assert p < 0.05
    assert "+20." in rows["ChanSync-1"] or "+19." in rows["ChanSync-1"]
    assert rows["Gosched-1"].rstrip().endswith("~")
    assert rows["MutexContended-1"].rstrip().endswith("~")
    assert "geomean" in out
    assert "REGRESSED" in out and "ChanSync-1 time/op" in out


def test_the_same_distribution_twice_is_all_unchanged_and_exit_0(capsys):
    a = save(micro_run("20260101-000000-aaaaaaa", NAMES, rel_noise=0.03, seed=3))
    b = save(micro_run("20260101-000100-aaaaaaa", NAMES, rel_noise=0.03, seed=4))
    code, out, _ = cli(capsys, "compare", str(a), str(b))
    assert code == 0
    for title in ("time/op", "vs asyncio"):
        rows = rows_of(out, title)
        assert set(rows) == {"ChanSync-1", "Gosched-1", "MutexContended-1", "geomean"}
        for case, line in rows.items():
            if case != "geomean":
                assert line.rstrip().endswith("~"), line
    assert out.rstrip().endswith("no regression")


def test_too_few_samples_says_so_instead_of_a_verdict(capsys):
    save(micro_run("20260101-000000-aaaaaaa", NAMES, n=3, seed=1))
    save(micro_run("20260101-000100-aaaaaaa", dict(NAMES, ChanSync=4.0), n=3, seed=2))
    code, out, _ = cli(capsys, "compare", "20260101-000000", "20260101-000100")
    assert code == 0
    line = rows_of(out, "time/op")["ChanSync-1"]
    assert "too few samples (need >= 4 per side)" in line
    assert "regressed" not in line and "± ∞" in line


def test_bench_run_against_itself_is_all_unchanged(capsys):
    path = save(bench_run("20260101-000000-aaaaaaa", repeats=4, seed=1))
    code, out, _ = cli(capsys, "compare", str(path), str(path))
    assert code == 0
    verdicts = [ln for ln in out.splitlines() if ln.startswith(("thread/", "goroutine/"))]
    assert len(verdicts) == 2 * len(compare.BENCH_METRICS)
    assert all(ln.rstrip().endswith("~") for ln in verdicts), out


def test_bench_run_with_a_worse_p99_is_regressed_exit_1(capsys):
    save(bench_run("20260101-000000-aaaaaaa", p99=2000.0, seed=1))
    save(bench_run("20260101-000100-aaaaaaa", p99=3000.0, seed=2))
    code, out, _ = cli(capsys, "compare", "20260101-000000-aaaaaaa", "latest")
    assert code == 1
    p99 = rows_of(out, "p99 ")
    assert all("regressed" in p99[c] for c in p99 if c != "geomean")
    assert "[intervals]" in p99["goroutine/c=100/rate=max/size=64/closed/persistent"]
    for line in rows_of(out, "rate ").values():  # only p99 moved
        assert "regressed" not in line


def test_single_repeat_cpu_and_memory_have_too_few_samples_latency_uses_intervals():
    old, new = bench_run("20260101-000000-aaaaaaa"), bench_run("20260101-000100-aaaaaaa")
    report = compare.compare_runs(old, new)
    by_metric = {t.spec.name: t for t in report.tables}
    for metric in ("cpu/1k msgs", "mem/conn"):  # once per repeat: 1 vs 1
        assert all(r.comparison.verdict == stats.TOO_FEW for r in by_metric[metric].rows)
    assert all(r.note == "intervals" for r in by_metric["p99"].rows)


def test_with_four_repeats_bench_metrics_use_the_repeats():
    old = bench_run("20260101-000000-aaaaaaa", repeats=4, seed=1)
    new = bench_run("20260101-000100-aaaaaaa", repeats=4, seed=2, p99=2600.0)
    report = compare.compare_runs(old, new)
    p99 = next(t for t in report.tables if t.spec.name == "p99")
    assert all(r.note == "repeats" and r.comparison.old.n == 4 for r in p99.rows)
    assert all(r.comparison.verdict == stats.REGRESSED for r in p99.rows)
    assert report.regressions == [("p99", r.case) for r in p99.rows]


def test_a_case_that_fails_only_in_new_is_a_regression(capsys):
    save(bench_run("20260101-000000-aaaaaaa", seed=1))
    save(bench_run("20260101-000100-aaaaaaa", seed=1, failed=("goroutine",)))
    code, out, _ = cli(capsys, "compare", "20260101-000000-aaaaaaa", "20260101-000100-aaaaaaa")
    assert code == 1
    assert "failed in new" in rows_of(out, "rate ")[
        "goroutine/c=100/rate=max/size=64/closed/persistent"]


def test_warns_when_machines_or_configs_differ(capsys):
    old = micro_run("20260101-000000-aaaaaaa", NAMES, seed=1)
    new = micro_run("20260101-000100-aaaaaaa", NAMES, seed=2)
    new["machine"]["cpu_model"] = "Some Other CPU"
    new["config"]["values"] = 7
    save(old)
    save(new)
    code, out, _ = cli(capsys, "compare", old["id"], new["id"])
    assert code == 0
    assert re.search(r"warning: runs come from different machines \(cpu_model: .* vs "
                     r"'Some Other CPU'\)", out)
    assert "warning: runs have different configs (values: 3 vs 7)" in out


def test_gobench_format_is_go_benchmark_lines_with_unit_metadata(capsys):
    save(micro_run("20260101-000000-aaaaaaa", {"ChanSync": 2.0}, seed=1))
    save(micro_run("20260101-000100-aaaaaaa", {"ChanSync": 2.0}, seed=2))
    code, out, _ = cli(capsys, "compare", "20260101-000000", "latest", "--format", "gobench")
    assert code == 0
    lines = out.splitlines()
    assert "Unit ns/op better=lower" in lines and "Unit x-asyncio better=lower" in lines
    assert "run: old-20260101-000000-aaaaaaa" in lines
    assert "run: new-20260101-000100-aaaaaaa" in lines
    bench = [ln.split() for ln in lines if ln.startswith("Benchmark")]
    assert len(bench) == 2 * 2 * 9  # 2 runs × 2 units × 9 values
    for name, iters, value, unit in bench:
        assert name == "BenchmarkChanSync-1" and iters == "1000"
        assert unit in ("ns/op", "x-asyncio")
        v = float(value)
        assert (1500 < v < 2500) if unit == "ns/op" else (1.5 < v < 2.5)


def test_unknown_run_is_one_line_exit_2(capsys):
    save(micro_run("20260101-000000-aaaaaaa", NAMES))
    code, out, err = cli(capsys, "compare", "20260101-000000-aaaaaaa", "19990101-nope")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("error: no run '19990101-nope'")


def test_mismatched_kinds_is_one_line_exit_2(capsys):
    save(micro_run("20260101-000000-aaaaaaa", NAMES))
    save(bench_run("20260101-000100-aaaaaaa"))
    code, out, err = cli(capsys, "compare", "latest:micro", "latest:bench")
    assert code == 2 and out == ""
    assert err.count("\n") == 1
    assert "cannot compare a micro run (20260101-000000-aaaaaaa) with a bench run" in err


def test_missing_baseline_tells_how_to_save_one(capsys):
    save(micro_run("20260101-000000-aaaaaaa", NAMES))
    code, _, err = cli(capsys, "compare", "baseline:micro", "latest")
    assert code == 2 and err.count("\n") == 1
    assert "runner.py baseline save micro" in err


@pytest.mark.parametrize("opt", [["--alpha", "1.5"], ["--threshold", "-1"], ["--format", "csv"]])
def test_bad_options_are_one_line_exit_2(capsys, opt):
    save(micro_run("20260101-000000-aaaaaaa", NAMES))
    code, _, err = cli(capsys, "compare", "latest", "latest", *opt)
    assert code == 2 and err.count("\n") == 1 and err.startswith("error: ")


def test_a_corrupt_run_file_is_one_line_exit_2(capsys, tmp_path):
    bad = tmp_path / "bad.json"
    bad.write_text('{"schema": 1, "kind": "micro"')
    save(micro_run("20260101-000000-aaaaaaa", NAMES))
    code, _, err = cli(capsys, "compare", str(bad), "latest")
    assert code == 2 and err.count("\n") == 1 and "bad.json" in err


def test_runs_load_through_the_store_validator():
    run = micro_run("20260101-000000-aaaaaaa", NAMES)
    del run["cases"][0]["values"]
    with pytest.raises(store.RunFileError):
        save(run)


def test_an_interval_without_echoes_counts_as_rate_zero_but_gives_no_latency():
    run = bench_run("20260101-000000-aaaaaaa", strategies=("thread",))
    ivs = run["cases"][0]["loadgen"]["intervals"]
    ivs[3].update(messages=0, rate=0.0, p50_us=0, p99_us=0)
    cases = run["cases"]
    rate, _, src = compare.bench_pair_samples(cases, cases, "rate")
    p99, _, _ = compare.bench_pair_samples(cases, cases, "p99")
    assert src == "intervals" and len(rate) == 10 and 0.0 in rate
    assert len(p99) == 9 and min(p99) > 1000


def test_a_micro_benchmark_that_fails_only_in_new_is_a_regression(capsys):
    old = micro_run("20260101-000000-aaaaaaa", NAMES, seed=1)
    new = micro_run("20260101-000100-aaaaaaa", NAMES, seed=2)
    new["cases"][0].update(values=[], asyncio_values=None, ratio_median=None,
                           errors=["micro_worker: ChanSync: RuntimeError: boom"])
    save(old)
    save(new)
    code, out, _ = cli(capsys, "compare", old["id"], new["id"])
    assert code == 1
    assert "failed in new" in rows_of(out, "time/op")["ChanSync-1"]
    code, out, _ = cli(capsys, "compare", new["id"], old["id"])  # fixed since: not a regression
    assert code == 0
    assert "failed in old" in rows_of(out, "time/op")["ChanSync-1"]


def test_a_bare_latest_means_the_latest_run_of_the_other_sides_kind(capsys):
    save(micro_run("20260101-000000-aaaaaaa", NAMES, seed=1))
    save(micro_run("20260101-000100-aaaaaaa", NAMES, seed=2))
    save(bench_run("20260101-000200-aaaaaaa"))  # the latest run overall is a bench run
    code, out, err = cli(capsys, "compare", "20260101-000000-aaaaaaa", "latest")
    assert code == 0, err
    assert "new: 20260101-000100-aaaaaaa" in out


def test_warns_when_some_worker_processes_of_a_case_failed(capsys):
    old = micro_run("20260101-000000-aaaaaaa", NAMES, seed=1)
    new = micro_run("20260101-000100-aaaaaaa", NAMES, seed=2)
    new["cases"][1]["errors"] = ["micro_worker: Gosched: RuntimeError: boom"]
    save(old)
    save(new)
    code, out, _ = cli(capsys, "compare", old["id"], new["id"])
    assert code == 0
    assert ("warning: new run 20260101-000100-aaaaaaa: some worker processes failed in "
            "Gosched-1 (fewer values)") in out


def test_metric_option_restricts_the_tables_and_the_verdicts(capsys):
    old = micro_run("20260101-000000-aaaaaaa", NAMES, seed=1)
    new = micro_run("20260101-000100-aaaaaaa", NAMES, seed=2)
    for case in new["cases"]:  # the machine got 30% slower: goruntime and asyncio alike
        case["values"] = [v * 1.3 for v in case["values"]]
        case["asyncio_values"] = [v * 1.3 for v in case["asyncio_values"]]
    save(old)
    save(new)
    code, out, _ = cli(capsys, "compare", old["id"], new["id"])
    assert code == 1 and "regressed" in rows_of(out, "time/op")["ChanSync-1"]
    code, out, _ = cli(capsys, "compare", old["id"], new["id"], "--metric", "ratio")
    assert code == 0 and "time/op" not in out and "vs asyncio" in out
    code, _, err = cli(capsys, "compare", old["id"], new["id"], "--metric", "p99")
    assert code == 2 and "no micro metric 'p99'" in err and err.count("\n") == 1
