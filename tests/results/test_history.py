"""`runner.py history` and `runner.py baseline`: metric across commits; named baselines."""

import json

import pytest

from results import history, store
from tests.results import synthetic_runs
from tests.results.synthetic_runs import bench_run, cli, micro_run, save

store_dirs = synthetic_runs.store_dirs
pytestmark = pytest.mark.usefixtures("store_dirs")

# Created in this order, but committed in the order B, C, A.
RUNS = [
    ("20260103-000000-aaaaaaa", "a" * 40, "2026-01-03T10:00:00+00:00", 3.0),
    ("20260101-000000-bbbbbbb", "b" * 40, "2026-01-01T10:00:00+00:00", 1.0),
    ("20260102-000000-ccccccc", "c" * 40, "2026-01-02T10:00:00+01:00", 2.0),
]


def _save_three():
    for run_id, sha, when, center in RUNS:
        save(micro_run(run_id, {"ChanSync": center, "Gosched": 10 * center}, commit_time=when,
                       sha=sha))


def test_history_over_three_runs_is_a_table_in_commit_order_and_a_png(capsys, tmp_path):
    _save_three()
    png = tmp_path / "h.png"
    code, out, err = cli(capsys, "history", "--metric", "time/op", "--out", str(png))
    assert code == 0, err
    lines = [ln for ln in out.splitlines() if ln[:4] == "2026"]
    assert [ln.split()[2] for ln in lines] == ["bbbbbbbbbb", "cccccccccc", "aaaaaaaaaa"]
    header = next(ln for ln in out.splitlines() if ln.startswith("commit date"))
    assert "ChanSync-1" in header and "Gosched-1" in header
    chan = [float(ln.split()[4]) for ln in lines]  # ChanSync-1 medians, commit order
    assert chan == pytest.approx([1.0, 2.0, 3.0], rel=0.05)
    assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    import matplotlib.image

    img = matplotlib.image.imread(png)
    assert img.shape[0] > 200 and img.shape[1] > 300
    assert img[..., :3].std() > 0.05  # lines and text, not a blank canvas
    assert f"plot: {png}" in out


def test_history_of_bench_runs_filters_by_strategy(capsys, tmp_path):
    for i, (run_id, sha, when, _) in enumerate(RUNS):
        save(bench_run(run_id, repeats=1, p99=1000.0 * (i + 1), commit_time=when, sha=sha))
    code, out, err = cli(capsys, "history", "--metric", "p99", "--strategy", "goroutine",
                         "--out", str(tmp_path / "b.png"))
    assert code == 0, err
    assert "goroutine/c=100" in out and "thread/" not in out
    rows = [ln.split() for ln in out.splitlines() if ln[:4] == "2026"]
    assert [r[2][0] for r in rows] == ["b", "c", "a"]
    assert [float(r[4].replace(",", "")) for r in rows] == pytest.approx([2000, 3000, 1000],
                                                                          rel=0.05)


def test_history_marks_runs_taken_on_a_dirty_tree(capsys, tmp_path):
    _save_three()
    run = micro_run("20260104-000000-ddddddd", {"ChanSync": 1.0}, sha="d" * 40,
                    commit_time="2026-01-04T00:00:00+00:00")
    run["git"]["dirty"] = True
    save(run)
    code, out, _ = cli(capsys, "history", "--out", str(tmp_path / "d.png"))
    assert code == 0
    shas = [ln.split()[2] for ln in out.splitlines() if ln[:4] == "2026"]
    assert shas == ["bbbbbbbbbb", "cccccccccc", "aaaaaaaaaa", "dddddddddd-dirty"]


def test_history_default_png_lands_next_to_the_runs(capsys):
    _save_three()
    code, out, _ = cli(capsys, "history")
    assert code == 0
    png = store.RUNS_DIR / "history-micro-time-op.png"
    assert png.stat().st_size > 1000


@pytest.mark.parametrize("argv,msg", [
    (["--metric", "bogus"], "no micro metric 'bogus'"),
    (["--kind", "micro", "--strategy", "thread"], "--strategy applies to bench runs only"),
    (["--kind", "bench"], "no bench run in"),
    (["--case", "("], "not a valid regular expression"),
])
def test_history_bad_input_is_one_line_exit_2(capsys, argv, msg):
    _save_three()
    code, out, err = cli(capsys, "history", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and msg in err


def test_order_runs_falls_back_to_creation_time_without_a_commit_time():
    a = micro_run("20260101-000000-aaaaaaa", {"X": 1.0})
    b = micro_run("20260101-000000-bbbbbbb", {"X": 1.0})
    a["git"]["commit_time"] = b["git"]["commit_time"] = None
    a["created"], b["created"] = "2026-01-02T00:00:00+00:00", "2026-01-01T00:00:00+00:00"
    assert [r["id"] for r in history.order_runs([a, b])] == [b["id"], a["id"]]


def test_baseline_save_copies_the_run_and_compare_reads_it(capsys):
    path = save(micro_run("20260101-000000-aaaaaaa", {"ChanSync": 2.0}, seed=1))
    code, out, err = cli(capsys, "baseline", "save", "micro", "latest:micro")
    assert code == 0, err
    target = store.BASELINES_DIR / "micro.json"
    assert target.read_bytes() == path.read_bytes()
    assert "saved baseline 'micro': micro run 20260101-000000-aaaaaaa" in out
    assert not list(store.BASELINES_DIR.glob(".*"))  # no temp file left behind
    save(micro_run("20260101-000100-aaaaaaa", {"ChanSync": 2.0}, seed=2))
    code, out, _ = cli(capsys, "compare", "baseline:micro", "latest")
    assert code == 0 and "old: 20260101-000000-aaaaaaa" in out
    code, out, _ = cli(capsys, "baseline", "list")
    assert code == 0
    row = next(ln for ln in out.splitlines() if ln.startswith("micro "))
    assert "20260101-000000-aaaaaaa" in row and row.split()[1] == "micro"


def test_baseline_save_replaces_an_older_baseline(capsys):
    save(micro_run("20260101-000000-aaaaaaa", {"ChanSync": 2.0}))
    cli(capsys, "baseline", "save", "micro", "20260101-000000-aaaaaaa")
    save(micro_run("20260101-000100-aaaaaaa", {"ChanSync": 2.0}))
    code, out, _ = cli(capsys, "baseline", "save", "micro")
    assert code == 0 and out.startswith("replaced baseline 'micro'")
    saved = json.loads((store.BASELINES_DIR / "micro.json").read_text())
    assert saved["id"] == "20260101-000100-aaaaaaa"


@pytest.mark.parametrize("argv,msg", [
    (["save", "../evil"], "baseline name '../evil'"),
    (["save", "ok", "20990101-nope"], "no run '20990101-nope'"),
    (["frobnicate"], "invalid choice"),
])
def test_baseline_bad_input_is_one_line_exit_2(capsys, argv, msg):
    save(micro_run("20260101-000000-aaaaaaa", {"ChanSync": 2.0}))
    code, out, err = cli(capsys, "baseline", *argv)
    assert code == 2 and out == "" and err.count("\n") == 1 and msg in err
    assert not list(store.BASELINES_DIR.iterdir())


def test_baseline_list_when_there_is_none(capsys):
    code, out, _ = cli(capsys, "baseline", "list")
    assert code == 0 and "no baselines" in out and "baseline save" in out


def test_baseline_show_describes_it_or_says_how_to_save_one(capsys):
    code, out, err = cli(capsys, "baseline", "show", "micro")
    assert code == 2 and out == "" and err.count("\n") == 1
    assert "runner.py baseline save micro" in err
    save(micro_run("20260101-000000-aaaaaaa", {"ChanSync": 2.0}))
    cli(capsys, "baseline", "save", "micro")
    code, out, _ = cli(capsys, "baseline", "show", "micro")
    assert code == 0 and out.startswith("baseline 'micro': micro run 20260101-000000-aaaaaaa")


def test_history_out_under_a_file_is_one_line_exit_2(capsys, tmp_path):
    _save_three()
    blocker = tmp_path / "file"
    blocker.write_text("not a directory")
    code, out, err = cli(capsys, "history", "--metric", "time/op", "--out",
                         str(blocker / "y.png"))
    assert code == 2
    [line] = err.strip().splitlines()
    assert line.startswith(f"error: --out {blocker}/y.png: {blocker}: cannot make the directory")


def test_a_run_file_that_is_not_utf8_is_skipped_with_a_warning(capsys, store_dirs):
    _save_three()
    bad = store_dirs[0] / "20260105-000000-eeeeeee.json"
    bad.write_bytes(b'{"caf\xe9": 1}')
    code, out, err = cli(capsys, "history", "--metric", "time/op")
    assert code == 0
    assert err.strip().splitlines() == [f"warning: skipping {bad}: not a run file (not UTF-8 "
                                        "text)"]
