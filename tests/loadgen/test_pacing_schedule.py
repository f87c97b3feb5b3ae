"""loadgen.pacing.Pacer on a fake clock: each connection keeps its fixed schedule
(phase + k * period), however late its echoes come back.

Times are dyadic fractions (exact in binary floating point), so the schedule's running
sums equal ``phase + k * period`` exactly and the intended times can be compared with ==.
"""

from __future__ import annotations

from loadgen.pacing import EARLY_S, Pacer

PERIOD = 0.125
T0 = 100.0


class Conn:
    """What the pacer keeps on a connection: its next due time (and a name)."""

    def __init__(self, name: str) -> None:
        self.name = name
        self.due = float("nan")

    def __repr__(self) -> str:
        return self.name


def test_free_connections_send_at_phase_plus_k_periods_interleaved():
    """Three connections with different phases, each echo back well within its period:
    the sends come in time order and each is intended at exactly phase + k * period."""
    pacer = Pacer(PERIOD)
    phases = {"a": 0.0625, "b": 0.0, "c": 0.09375}
    conns = {n: Conn(n) for n in phases}
    for n, c in conns.items():
        pacer.start(c, T0 + phases[n])
    sent: list[tuple[str, float]] = []
    while len(sent) < 3 * 8:
        due = pacer.next_due()
        now = due + 0.0002  # the turn runs a little late
        c = pacer.pop_due(now)
        assert c is not None and pacer.pop_due(now) is None  # phases are far apart
        sent.append((c.name, pacer.sent(c, now)))
        assert pacer.free(c, now + 0.01) is False  # echo back: on the heap again
    expected = sorted(((n, T0 + phases[n] + k * PERIOD) for n in phases for k in range(8)),
                      key=lambda e: e[1])
    assert sent == expected


def test_missed_sends_catch_up_at_their_scheduled_times_and_then_rejoin_the_schedule():
    """A connection's echo takes 5.25 periods: while busy it is on no heap; when freed it
    is behind, and its catch-up sends are intended at exactly the points it missed (not
    shifted to when they leave); caught up, it is back on the heap at its next point."""
    pacer = Pacer(PERIOD)
    c, other = Conn("c"), Conn("other")
    pacer.start(c, T0)
    pacer.start(other, T0 + 0.0625)
    assert pacer.pop_due(T0) is c
    assert pacer.sent(c, T0) == T0
    # c is busy: only the other connection is scheduled meanwhile, on its own points
    for k in range(5):
        assert pacer.next_due() == T0 + 0.0625 + k * PERIOD
        o = pacer.pop_due(pacer.next_due())
        assert o is other
        pacer.sent(o, T0 + 0.0625 + k * PERIOD)
        assert pacer.free(o, T0 + 0.0625 + k * PERIOD + 0.001) is False
    now = T0 + 5.25 * PERIOD
    catchup = []
    while pacer.free(c, now):
        catchup.append(pacer.sent(c, now))
        now += 0.001  # each catch-up echo takes 1 ms
    assert catchup == [T0 + k * PERIOD for k in range(1, 6)]
    assert c.due == T0 + 6 * PERIOD
    assert pacer.pop_due(now) is None  # nothing due: c waits for its next point
    assert pacer.next_due() == T0 + 5 * PERIOD + 0.0625  # other's, then c's
    pacer.pop_due(pacer.next_due())
    assert pacer.next_due() == T0 + 6 * PERIOD
    assert pacer.pop_due(T0 + 6 * PERIOD) is c
    assert pacer.sent(c, T0 + 6 * PERIOD + 0.0003) == T0 + 6 * PERIOD


def test_a_send_due_within_early_s_leaves_now_intended_when_it_left():
    """A wait overshoots by up to a millisecond, so a due time less than EARLY_S ahead
    is popped now; the send is measured from when it left (min(due, now))."""
    pacer = Pacer(PERIOD)
    c = Conn("c")
    pacer.start(c, T0)
    assert pacer.pop_due(T0 - 2 * EARLY_S) is None
    early = T0 - EARLY_S / 2
    assert pacer.pop_due(early) is c
    assert pacer.sent(c, early) == early
    assert c.due == T0 + PERIOD  # the schedule itself is not moved
    # freed within EARLY_S of its next point: sent at once too
    assert pacer.free(c, T0 + PERIOD - EARLY_S / 2) is True
