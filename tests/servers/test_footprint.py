"""``python -m tools.footprint``: the memory and shutdown figures of one strategy."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest

from tests.servers.support import ROOT


def _footprint(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "tools.footprint", *argv], cwd=ROOT, capture_output=True,
        text=True, timeout=120,
    )


@pytest.mark.timeout(150)
def test_thread_figures_count_connections_threads_and_a_clean_exit():
    done = _footprint("thread", "--connections", "30", "--term-connections", "10", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert (out["served"], out["term_served"]) == (30, 10)
    assert out["conn_threads"] == 31  # main thread + one per connection
    assert out["conn_processes"] == 1
    assert out["conn_rss_mib"] > out["idle_rss_mib"] > 5
    assert out["term_exit_code"] == 0
    assert out["left_after_exit"] == 0
    assert 0 < out["term_exit_s"] < 5


@pytest.mark.timeout(150)
def test_fork_figures_are_for_the_whole_tree():
    done = _footprint("fork", "--connections", "20", "--term-connections", "5", "--json")
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert out["conn_processes"] == 21
    assert out["conn_rss_mib"] > 10 * out["idle_rss_mib"]  # 20 children's RSS, summed
    assert out["idle_pss_mib"] < out["conn_pss_mib"] < out["conn_rss_mib"]
    assert (out["term_processes"], out["left_after_exit"]) == (6, 0)


def test_prints_one_line_per_figure_without_json():
    done = _footprint("iterative", "--connections", "3", "--term-connections", "2")
    assert done.returncode == 0, done.stderr
    lines = dict(line.split(": ", 1) for line in done.stdout.splitlines())
    assert lines["strategy"] == "iterative"
    assert lines["served"] == "1"  # the others wait in the listen queue
    assert lines["left_after_exit"] == "0"


@pytest.mark.parametrize(
    "argv", [["no-such"], ["thread", "--connections", "-1"], ["thread", "--connections", "x"]]
)
def test_bad_arguments_give_one_line_and_exit_2(argv):
    done = _footprint(*argv)
    assert done.returncode == 2
    assert len(done.stderr.splitlines()) == 1
    assert "Traceback" not in done.stderr
