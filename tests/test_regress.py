"""`runner.py regress`: a git ref checked out beside the tree, both sides counted and judged.

The tests work on a copy of this project in a temporary git repository with three commits:
one without the micro-benchmarks, the project as it is, and the project with a slowdown
planted in the channel send path (a slowdown in the connection read path is planted as
an uncommitted change where a test needs it). The end-to-end tests need valgrind and skip
without it.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import psutil
import pytest

from bench import UsageError
from bench import worktree as wt
from results import store

ROOT = Path(__file__).resolve().parent.parent
RUNNER = ("import runner, sys; runner.COMMANDS = ('regress',); "
          "sys.exit(runner.main(sys.argv[1:]))")
GIT_ID = {"GIT_AUTHOR_NAME": "t", "GIT_AUTHOR_EMAIL": "t@t", "GIT_COMMITTER_NAME": "t",
          "GIT_COMMITTER_EMAIL": "t@t"}
# Every Chan.send does ~2k more instructions: ChanSync (2 sends per op) grows by ~20%.
PLANTED = '''

_planted_send = Chan.send


def _send_with_planted_work(self, *args, **kwargs):
    sum(range(64))
    return _planted_send(self, *args, **kwargs)


Chan.send = _send_with_planted_work
'''
# Every Conn.read does ~2k more instructions: the echo server's message (~42k) by ~5%.
PLANTED_READ = '''

_planted_read = Conn.read


def _read_with_planted_work(self, n):
    sum(range(64))
    return _planted_read(self, n)


Conn.read = _read_with_planted_work
'''
TINY = ["--filter", "^ChanSync$", "--procs", "1", "--no-echo"]
needs_valgrind = pytest.mark.skipif(
    shutil.which("valgrind") is None,
    reason="valgrind is not installed (apt-get install valgrind): no instruction counts")


def git(repo: Path, *args: str) -> str:
    r = subprocess.run(["git", "-C", str(repo), *args], capture_output=True, text=True,
                       env=dict(os.environ, **GIT_ID), check=True)
    return r.stdout.strip()


@pytest.fixture(scope="module")
def repo(tmp_path_factory) -> Path:
    """A copy of the project (no tests) with commits: no micro.py; as is; send planted."""
    repo = tmp_path_factory.mktemp("regress") / "project"
    files = subprocess.run(["git", "-C", str(ROOT), "ls-files", "--cached", "--others",
                            "--exclude-standard"], capture_output=True, text=True,
                           check=True).stdout.split()
    for f in files:
        if f.startswith("tests/") or not (ROOT / f).is_file():
            continue
        (repo / f).parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(ROOT / f, repo / f)
    git(repo, "init", "-q", "-b", "main")
    micro = (repo / "goruntime" / "micro.py").read_bytes()
    (repo / "goruntime" / "micro.py").unlink()
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "no micro-benchmarks")
    git(repo, "tag", "no-micro")
    (repo / "goruntime" / "micro.py").write_bytes(micro)
    git(repo, "add", "-A")
    git(repo, "commit", "-q", "-m", "as is")
    with (repo / "goruntime" / "chan.py").open("a") as f:
        f.write(PLANTED)
    git(repo, "commit", "-q", "-am", "planted: a slower channel send")
    return repo


def regress(repo: Path, *argv: str, env: dict | None = None, timeout: float = 240):
    e = dict(os.environ, C10K_RUNS_DIR=str(repo.parent / "runs"), **(env or {}))
    return subprocess.run([sys.executable, "-c", RUNNER, "regress", *argv], cwd=repo, env=e,
                          capture_output=True, text=True, timeout=timeout)


def worktrees(repo: Path) -> list[str]:
    out = git(repo, "worktree", "list", "--porcelain")
    return [ln.split(" ", 1)[1] for ln in out.splitlines() if ln.startswith("worktree ")]


# ---- the base side ----------------------------------------------------------------------


def test_the_default_base_is_head_on_a_dirty_tree_and_its_parent_on_a_clean_one(repo):
    assert wt.default_base(repo) == "HEAD~1"
    (repo / "scratch.txt").write_text("x")
    try:
        assert wt.default_base(repo) == "HEAD"
    finally:
        (repo / "scratch.txt").unlink()


def test_a_worktree_is_removed_when_its_block_fails(repo):
    sha = wt.resolve(repo, "HEAD~1")
    with pytest.raises(ValueError, match="boom"), wt.checkout(repo, sha) as path:
        assert (path / "goruntime" / "micro.py").is_file()
        assert git(path, "rev-parse", "HEAD") == sha
        assert str(path) in worktrees(repo)
        raise ValueError("boom")
    assert not path.exists() and not path.parent.exists()
    assert worktrees(repo) == [str(repo)]


def test_an_unknown_ref_is_a_usage_error_naming_it(repo):
    with pytest.raises(UsageError, match="'nosuchref' is not a commit"):
        wt.resolve(repo, "nosuchref")
    r = regress(repo, "--base", "nosuchref", *TINY)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "--base 'nosuchref' is not a commit" in r.stderr


def test_a_base_without_the_micro_benchmarks_is_exit_2_and_its_worktree_is_removed(repo):
    r = regress(repo, "--base", "no-micro", *TINY, "--rounds", "1")
    assert r.returncode == 2, r.stderr
    assert "error: base no-micro has no goruntime/micro.py: nothing to compare" in r.stderr
    assert worktrees(repo) == [str(repo)]


def test_a_baseline_from_a_dirty_tree_is_exit_2(repo, tmp_path):
    run = store.new_run("micro", {})
    run["git"]["dirty"] = True
    (tmp_path / "dirty.json").write_text(json.dumps(run))
    r = regress(repo, "--base", "baseline:dirty", *TINY,
                env={"C10K_BASELINES_DIR": str(tmp_path)})
    assert r.returncode == 2 and r.stderr.count("\n") == 1
    assert "baseline 'dirty' was measured on a dirty tree" in r.stderr


def test_side_refuses_a_root_without_the_runtime(tmp_path):
    r = subprocess.run([sys.executable, "-m", "bench.side", str(tmp_path), "goruntime.micro"],
                       cwd=ROOT, capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and f"{tmp_path} has no goruntime package" in r.stderr


# ---- end to end -------------------------------------------------------------------------


def test_without_valgrind_it_says_how_to_install_it_and_gates_on_the_asyncio_ratio(repo, tmp_path):
    bin_dir = tmp_path / "bin"  # a PATH with git and nothing else
    bin_dir.mkdir()
    (bin_dir / "git").symlink_to(shutil.which("git"))
    r = regress(repo, "--base", "HEAD", *TINY, "--rounds", "2", "--values", "2",
                "--min-time", "0.01", env={"PATH": str(bin_dir)})
    assert r.returncode in (0, 1), r.stderr  # the ratio's verdict on a busy machine varies
    assert ("valgrind not found: install it with `apt-get install valgrind`; gating on the "
            "time ratios (goruntime/asyncio) alone") in r.stderr
    assert "gate: vs asyncio" in r.stdout
    assert "vs asyncio (× asyncio, lower is better)  <- GATE" in r.stdout
    assert "instructions (" not in r.stdout
    assert worktrees(repo) == [str(repo)]



@needs_valgrind
def test_regress_reports_the_planted_send_slowdown_and_exits_1(repo):
    t0 = time.monotonic()
    r = regress(repo, "--filter", "^ChanSync$", "--procs", "1,2", "--no-echo", "--rounds", "0")
    assert r.returncode == 1, r.stdout + r.stderr
    rows = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines()
            if ln.startswith("ChanSync-")}
    assert rows["ChanSync-1"][-1] == rows["ChanSync-2"][-1] == "regressed"
    assert rows["ChanSync-2"][-2] == "4+4"  # procs 2: counted 4 times per side at once
    assert "REGRESSED on the gate (instructions): ChanSync-1 +" in r.stdout
    assert "counting 1 changed case(s) again to confirm" in r.stderr
    assert worktrees(repo) == [str(repo)]
    saved = r.stderr.rstrip().splitlines()[-1]
    assert saved.startswith(f"saved {repo.parent / 'runs'}/")
    doc = json.loads(Path(saved.split()[1]).read_text())
    assert doc["kind"] == "regress"
    assert doc["summary"]["regressed"] == ["ChanSync-1", "ChanSync-2"]
    assert doc["config"]["base"]["sha"] == git(repo, "rev-parse", "HEAD~1")
    assert [len(doc["cases"][0][s]["instructions"]) for s in ("base", "head")] == [2, 2]
    assert time.monotonic() - t0 < 120


@needs_valgrind
def test_regress_reports_a_slower_echo_server_read_and_exits_1(repo):
    net = repo / "goruntime" / "net.py"
    text = net.read_text()
    net.write_text(text + PLANTED_READ)  # a dirty tree: the base is HEAD
    try:
        r = regress(repo, "--filter", "^ChanSync$", "--procs", "1", "--rounds", "0",
                    "--echo-rounds", "0")
    finally:
        net.write_text(text)
    assert r.returncode == 1, r.stdout + r.stderr
    rows = {ln.split()[0]: ln.split() for ln in r.stdout.splitlines()
            if ln.startswith(("ChanSync-1", "EchoServer-1"))}
    assert rows["ChanSync-1"][-1] == "~" and rows["EchoServer-1"][-1] == "regressed"
    assert "REGRESSED on the gate (instructions): EchoServer-1 +" in r.stdout
    assert worktrees(repo) == [str(repo)]


@needs_valgrind
def test_ctrl_c_removes_the_worktree_and_leaves_no_process(repo):
    e = dict(os.environ, C10K_RUNS_DIR=str(repo.parent / "runs-int"))
    p = subprocess.Popen([sys.executable, "-c", RUNNER, "regress", *TINY, "--rounds", "9"],
                         cwd=repo, env=e, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                         text=True)
    try:
        deadline = time.monotonic() + 60
        children: list[psutil.Process] = []
        while time.monotonic() < deadline and not children:
            time.sleep(0.2)
            if len(worktrees(repo)) == 2:
                children = [c for c in psutil.Process(p.pid).children(recursive=True)
                            if "valgrind" in " ".join(c.cmdline())]
        assert children, "no valgrind count started within 60 s"
        base = worktrees(repo)[1]
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.communicate()
    assert p.returncode == 130, err
    assert "interrupted: nothing saved; the base worktree is removed" in err
    assert worktrees(repo) == [str(repo)] and not Path(base).exists()
    assert not [c for c in children if c.is_running() and c.status() != psutil.STATUS_ZOMBIE]
    assert not (repo.parent / "runs-int").exists()


def test_the_default_phases_run_end_to_end_on_a_tiny_scale_and_save_a_complete_run(repo):
    # What `make regress` runs (no phase left out), only shorter: a time round, an echo CPU
    # round per side and, with valgrind, the instruction counts of both cases.
    r = regress(repo, "--base", "HEAD~1", "--filter", "^ChanSync$", "--procs", "1",
                "--rounds", "1", "--values", "1", "--warmups", "0", "--min-time", "0.01",
                "--echo-rounds", "1", "--echo-seconds", "0.5")
    assert r.returncode in (0, 1), r.stderr  # 1: the planted send is a finding
    assert "Traceback" not in r.stderr
    doc = json.loads(Path(r.stderr.rstrip().splitlines()[-1].split()[1]).read_text())
    cases = {c["name"]: c for c in doc["cases"]}
    assert set(cases) == {"ChanSync", "EchoServer"}
    for s in ("base", "head"):
        assert cases["ChanSync"][s]["errors"] == [] and len(cases["ChanSync"][s]["values"]) == 1
        assert cases["EchoServer"][s]["errors"] == []
        assert len(cases["EchoServer"][s]["values"]) == 1  # server µs per message
        if shutil.which("valgrind"):
            assert cases["ChanSync"][s]["instructions"] and cases["EchoServer"][s]["instructions"]
    assert worktrees(repo) == [str(repo)]
