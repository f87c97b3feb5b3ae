"""results.report / plots / report_md: medians over repeats, slopes, tables, PNGs."""

from __future__ import annotations

import re

import pytest

from results import report, store
from results.plots import PLOTS, write_plots
from results.report_md import write_report_md
from tests.results.bench_cases import bench_run, case

MiB = 1 << 20


@pytest.fixture
def runs_dir(tmp_path, monkeypatch):
    monkeypatch.setattr(store, "RUNS_DIR", tmp_path)
    return tmp_path


def test_repeats_reduce_to_the_median_of_ok_cases_only(runs_dir):
    cases = [case("thread", 100, repeat=i, achieved=a, p50_us=p)
             for i, (a, p) in enumerate([(90, 1000), (100, 3000), (300, 2000)])]
    cases.append(case("thread", 100, repeat=3, status="failed: server exited (code 1)"))
    run = bench_run(cases)
    store.validate(run)
    [(gk, group)] = report.groups(run)
    a = report.aggregate(group)
    assert (a["ok"], a["n"]) == (3, 4)
    assert a["rate"] == 100 and a["p50_corrected"] == 2.0 and a["p50_uncorrected"] == 1.0
    assert a["failure"] == "server exited (code 1)"
    # 90 of 100 msg/s; p99 12 ms > 10 ms; 300 msg/s at p99 8 ms; the failure
    assert a["verdict"] == "server-bound 2/4, held 1/4, failed 1/4"


def test_a_group_without_ok_case_shows_dashes_and_its_failure(runs_dir):
    run = bench_run([case("thread", 100), case("asyncio", 100, status="aborted: memory guard (x)")])
    t = report.tables(run)
    row = _row(t, "errors", "asyncio")
    assert row["verdict"] == "failed" and row["msg/s"] == row["p99"] == "-"
    assert "failed: memory guard (x)" in t["Failed, aborted and defective cases"]


def test_memory_slope_is_the_fitted_bytes_per_connection(runs_dir):
    # RSS = 10 MiB + 64 KiB * n exactly: the fitted slope must be 64 KiB.
    cases = [case("thread", n, rss_load=(10 * MiB) + 65536 * n) for n in (100, 1000, 10000)]
    cases += [case("fork", n, rss_load=(10 * MiB) + 2 * 4096 * n) for n in (100, 1000)]
    cases.append(case("asyncio", 100))  # one connection count only: no slope
    slopes = report.mem_slopes(bench_run(cases))
    assert slopes["thread"]["bytes_per_conn"] == pytest.approx(65536, rel=1e-6)
    assert slopes["thread"]["metric"] == "rss" and slopes["thread"]["points"] == 3
    assert slopes["fork"]["bytes_per_conn"] == pytest.approx(4096, rel=1e-6)  # PSS = RSS/2
    assert slopes["fork"]["metric"] == "pss"
    assert "asyncio" not in slopes


def test_run_summary_counts_verdicts(runs_dir):
    run = bench_run([case("thread", 10), case("thread", 10, repeat=1, status="failed: x"),
                     case("thread", 10, repeat=2, status="aborted: time limit (5 s)"),
                     case("thread", 10, repeat=3, achieved=5.0)])
    assert report.run_summary(run, {"goroutine": "not yet"})["counts"] == {
        "held": 1, "server-bound": 1, "loadgen-bound": 0, "failed": 2}


def _rows(table: str) -> list[dict[str, str]]:
    """A tabulate "simple" table as one dict per row, keyed by header: each column spans
    its run of dashes in the rule under the header (as wide as its widest cell)."""
    header, rule, *body = table.splitlines()
    spans = [m.span() for m in re.finditer(r"-+", rule)]
    names = [header[a:b].strip() for a, b in spans]
    return [{n: line[a:b].strip() for n, (a, b) in zip(names, spans, strict=True)}
            for line in body]


def _row(tables: dict[str, str], column: str, strategy: str) -> dict[str, str]:
    """The row of ``strategy`` in the one table that has ``column``."""
    [table] = [t for t in tables.values() if column in _rows(t)[0]]
    [row] = [r for r in _rows(table) if r["strategy"] == strategy]
    return row


def test_tables_show_every_column_the_issue_asks_for(runs_dir):
    thread = case("thread", 100, starved=3, errors=7)
    thread["netstat"]["ListenOverflows"] = 5
    tables = report.tables(bench_run([thread, case("asyncio", 100)]))
    text = "\n".join(tables.values())
    for col in ("msg/s", "p50", "p99", "p99.9", "errors", "starved", "cpu s/1k msg", "RSS MiB",
                "mem/conn KiB", "threads", "procs", "listen overflows", "verdict"):
        assert col in text
    perf = _row(tables, "errors", "thread")
    assert perf["verdict"] == "server-bound"  # 3 of 100 connections starved
    assert (perf["errors"], perf["starved"]) == ("7", "3")
    assert (perf["msg/s"], perf["p99"]) == ("100", "4.00 / 2.00")
    cost = _row(tables, "threads", "thread")
    assert (cost["threads"], cost["procs"], cost["fds"]) == ("101", "1", "105")
    assert (cost["listen overflows"], cost["cpu s/1k msg"]) == ("5", "0.100")
    assert cost["cpu"] == "10% of 1"
    other = _row(tables, "errors", "asyncio")
    assert (other["errors"], other["starved"]) == ("0", "0")


def test_plots_and_report_md_are_written_and_are_pngs(runs_dir, tmp_path):
    cases = [case(s, n, p50_us=100 * n ** 0.5) for s in ("thread", "fork", "asyncio")
             for n in (100, 1000)]
    run = bench_run(cases, ["thread", "fork", "asyncio"])
    path = store.save_run(run)
    out = tmp_path / "rep"
    pngs = write_plots(run, out)
    assert [p.name for p in pngs] == list(PLOTS)
    for p in pngs:
        data = p.read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000
    md = write_report_md(run, path, out, pngs).read_text()
    for p in pngs:
        assert f"]({p.name})" in md
    assert "| thread" in md and "Server cost" in md


def test_plots_of_a_run_with_no_ok_case_still_exist(runs_dir, tmp_path):
    run = bench_run([case("thread", 100, status="failed: server exited (signal SIGKILL)")])
    for p in write_plots(run, tmp_path / "rep"):
        assert p.read_bytes()[:4] == b"\x89PNG"


def test_slope_counts_the_connections_the_server_held_not_the_target(runs_dir):
    # A fork server that held only 1,000 of 10,000 connections (the rest waited in the
    # accept queue) still costs 4 KiB PSS per held connection.
    cases = [case("fork", n, rss_load=(10 * MiB) + 8192 * n) for n in (100, 1000)]
    big = case("fork", 10000, rss_load=(10 * MiB) + 8192 * 1000)
    big["mem_per_conn"]["connections"] = 1000
    slopes = report.mem_slopes(bench_run([*cases, big]))
    assert slopes["fork"]["bytes_per_conn"] == pytest.approx(4096, rel=1e-6)


def test_a_run_whose_config_strategies_is_not_a_list_still_reports(runs_dir):
    run = bench_run([case("thread", 100), case("asyncio", 100)])
    run["config"]["strategies"] = 5
    tables = report.tables(run)
    assert _row(tables, "errors", "thread")["msg/s"] == "100"
    assert report.header(run)[0].startswith("run ")
