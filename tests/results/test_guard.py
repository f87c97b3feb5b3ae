"""bench.guard.MemoryGuard: trips below the floor or over the budget, and stays tripped."""

from bench.guard import GiB, MemoryGuard


def test_floor_trips_and_the_reason_sticks():
    g = MemoryGuard(floor=2 * GiB, budget=100 * GiB)
    g.available_before = g.available_min = 10 * GiB
    assert g.check(5 * GiB) is None
    reason = g.check(1 * GiB)
    assert reason and "below the floor 2.00 GiB" in reason
    assert g.check(9 * GiB) == reason
    assert g.summary() == {"available_before": 10 * GiB, "available_min": 1 * GiB,
                           "drop": 9 * GiB}


def test_budget_counts_the_drop_since_the_case_began():
    g = MemoryGuard(floor=0, budget=3 * GiB)
    g.available_before = g.available_min = 20 * GiB
    assert g.check(17.5 * GiB) is None
    assert "over its budget of 3.00 GiB" in g.check(16.5 * GiB)


def test_default_budget_is_half_the_machine():
    import psutil

    assert MemoryGuard(floor=0).budget == psutil.virtual_memory().total / 2
