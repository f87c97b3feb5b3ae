"""loadgen.crew: the worker set is fixed when complete; the late are refused; the silent lost."""

import pytest

from loadgen.crew import LOST_AFTER_S, SUSPECT_AFTER_S, Crew, Member


def _member(n: int, local: bool = False, t: float = 0.0) -> Member:
    return Member(client_id=f"h{n}_x", index=n, host=f"h{n}", pid=100 + n, boot_id="b",
                  local=local, joined=t, heard=t, address=f"198.18.0.{n}")


def test_the_set_is_fixed_once_every_local_and_the_remote_count_have_joined():
    crew = Crew(local=1, remote=2)
    assert crew.join(_member(1, t=1.0)) == []
    assert crew.join(_member(2, t=2.0)) == []
    assert not crew.fixed  # the local worker is still missing
    assert crew.join(_member(0, local=True, t=3.0)) == []
    assert crew.fixed
    assert sorted(m.index for m in crew.members.values()) == [0, 1, 2]


def test_remote_workers_beyond_the_count_are_refused_by_arrival():
    crew = Crew(local=1, remote=1)
    crew.join(_member(1, t=1.0))
    crew.join(_member(2, t=2.0))
    assert crew.join(_member(0, local=True, t=3.0)) == ["h2_x"]
    assert set(crew.members) == {"h0_x", "h1_x"}
    assert "h2_x" not in crew.joined


def test_a_fixed_set_takes_no_one():
    crew = Crew(local=0, remote=1)
    crew.join(_member(1))
    with pytest.raises(AssertionError):
        crew.join(_member(2))
    assert not crew.is_member("h2_x")


def test_a_member_silent_past_the_limit_is_lost_once():
    crew = Crew(local=0, remote=2)
    crew.join(_member(1))
    crew.join(_member(2))
    crew.heard("h1_x", 10.0)
    crew.heard("h2_x", 10.0 - LOST_AFTER_S - 0.1)
    [(m, quiet)] = crew.silent(10.0)
    assert m.index == 2 and quiet == pytest.approx(LOST_AFTER_S + 0.1)
    crew.lose(m, "silent", "measure", 123.0)
    assert crew.lost == [{"index": 2, "host": "h2", "address": "198.18.0.2", "pid": 102,
                          "phase": "measure", "at": 123.0, "why": "silent"}]
    assert crew.silent(10.0) == []
    assert [m.index for m in crew.alive()] == [1]
    with pytest.raises(AssertionError):
        crew.lose(m, "again", "measure", 124.0)


def test_a_closed_connection_makes_a_shorter_silence_a_loss():
    crew = Crew(local=0, remote=1)
    crew.join(_member(1))
    quiet = (SUSPECT_AFTER_S + LOST_AFTER_S) / 2
    crew.heard("h1_x", 100.0 - quiet)
    assert crew.silent(100.0) == []
    crew.closed_at = 99.0
    assert [m.index for m, _ in crew.silent(100.0)] == [1]


def test_late_workers_are_noted():
    crew = Crew(local=0, remote=1)
    crew.refuse("w3", "measure", 5.0)
    assert crew.late == [{"host": "w3", "phase": "measure", "at": 5.0}]
