"""bench.capacity: the knee search, step by step, on servers of known capacity."""

from __future__ import annotations

import pytest

from bench.capacity import Search, round_rate


def drive(search: Search, capacity: float, loadgen_max: float = float("inf")) -> list[float]:
    """Run ``search`` against a server that holds every rate up to ``capacity`` behind a
    loadgen that offers at most ``loadgen_max``; return the rates offered."""
    rates = []
    while (rate := search.next_rate()) is not None:
        rates.append(rate)
        if rate > loadgen_max:
            search.record(rate, "loadgen-bound", 1.0)
        else:
            search.record(rate, "held" if rate <= capacity else "server-bound",
                          1.0 if rate <= capacity else 50.0)
    return rates


def test_rates_rise_geometrically_then_bisect_to_the_knee():
    s = Search("thread", 1000, start=1000, tolerance=0.1, max_steps=20)
    rates = drive(s, capacity=5000)
    assert rates[:4] == [1000, 2000, 4000, 8000]
    r = s.result()
    assert r["bound"] == "server" and r["knee"] <= 5000
    assert s.hi / s.lo <= 1.1 and r["knee"] == s.lo
    assert r["knee"] >= 5000 / 1.1


def test_a_loadgen_bound_step_ends_the_search_with_a_lower_bound():
    s = Search("goroutine", 1000, start=1000)
    rates = drive(s, capacity=1e9, loadgen_max=5000)
    assert rates == [1000, 2000, 4000, 8000]
    r = s.result()
    assert (r["knee"], r["bound"]) == (4000, "loadgen")


def test_a_first_rate_not_held_goes_down_until_one_is():
    s = Search("iterative", 100, start=1000)
    rates = drive(s, capacity=150)
    assert rates[:4] == [1000, 500, 250, 125]
    assert s.result()["bound"] == "server" and 125 <= s.result()["knee"] <= 150


def test_the_step_budget_ends_the_search_with_what_was_held():
    s = Search("asyncio", 100, start=100, max_steps=3)
    assert drive(s, capacity=1e9) == [100, 200, 400]
    assert s.result() == {"strategy": "asyncio", "connections": 100, "knee": 400,
                          "bound": "none", "reason": "every rate tried was held",
                          "steps": s.steps}


def test_a_search_replayed_from_its_steps_asks_for_the_same_next_rate():
    s = Search("thread", 100, start=1000)
    drive(s, capacity=3000)
    replay = Search("thread", 100, start=1000)
    for step in s.steps[:4]:
        replay.record(step["rate"], step["verdict"], step["p99_ms"])
    assert replay.next_rate() == s.steps[4]["rate"]


@pytest.mark.parametrize("rate,rounded", [(1234.5, 1230.0), (3535.53, 3540.0), (99.94, 99.9),
                                          (5000, 5000.0)])
def test_rates_are_rounded_to_three_figures(rate, rounded):
    assert round_rate(rate) == rounded
