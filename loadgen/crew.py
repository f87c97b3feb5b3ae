"""The workers of one case: who joined, the fixed set, the late and the lost (pure).

A worker *joins* by saying hello (host, pid, boot id, whether the master started it). The
set is *fixed* as soon as every local worker and ``remote`` remote workers have joined:
from then on the members never change. A worker that joins later, or a remote worker
beyond ``remote``, is *late*: refused and noted. A member that goes silent is *lost*:
after :data:`LOST_AFTER_S` without a word, or :data:`SUSPECT_AFTER_S` once the master has
seen some worker's connection close (a killed process closes it at once; a host that
vanishes only goes silent). Instants are ``time.perf_counter()`` seconds; the caller
records them with :meth:`Crew.heard` for every message.
"""

from __future__ import annotations

from dataclasses import dataclass, field

LOST_AFTER_S = 3.0
SUSPECT_AFTER_S = 1.5
SUSPECT_WINDOW_S = 5.0  # how long a connection closing makes every silence suspect


@dataclass
class Member:
    """A worker that joined: what it said of itself, and when it was last heard."""

    client_id: str
    index: int
    host: str
    pid: int
    boot_id: str
    local: bool
    joined: float
    heard: float
    address: str = ""

    def describe(self) -> dict:
        return {"index": self.index, "host": self.host, "address": self.address,
                "pid": self.pid}


@dataclass
class Crew:
    """The worker set of a case.

    Invariants: ``members`` is ``None`` until fixed, then holds exactly the ``local``
    local workers and ``remote`` remote ones and never changes; ``lost`` names members
    only, each once; a refused (late) worker is never a member.
    """

    local: int
    remote: int
    joined: dict[str, Member] = field(default_factory=dict)
    members: dict[str, Member] | None = None
    lost: list[dict] = field(default_factory=list)
    late: list[dict] = field(default_factory=list)
    closed_at: float = -SUSPECT_WINDOW_S * 2  # the last time a worker connection closed

    @property
    def fixed(self) -> bool:
        return self.members is not None

    def heard(self, client_id: str, now: float) -> None:
        m = self.joined.get(client_id)
        if m is not None:
            m.heard = now

    def join(self, m: Member) -> list[str]:
        """Record a hello; fix the set if it is complete. Returns the client ids to refuse
        (remote workers beyond the set)."""
        assert not self.fixed, "a worker joining a fixed set is late, not joined"
        self.joined[m.client_id] = m
        locals_ = [x for x in self.joined.values() if x.local]
        remotes = sorted((x for x in self.joined.values() if not x.local),
                         key=lambda x: x.joined)
        if len(locals_) < self.local or len(remotes) < self.remote:
            return []
        chosen = locals_ + remotes[:self.remote]
        self.members = {x.client_id: x for x in chosen}
        extra = [x.client_id for x in remotes[self.remote:]]
        for cid in extra:
            del self.joined[cid]
        return extra

    def is_member(self, client_id: str) -> bool:
        return self.members is not None and client_id in self.members

    def refuse(self, host: str, phase: str, at: float) -> None:
        self.late.append({"host": host, "phase": phase, "at": round(at, 4)})

    def alive(self) -> list[Member]:
        gone = {x["index"] for x in self.lost}
        return [m for m in (self.members or {}).values() if m.index not in gone]

    def lose(self, m: Member, why: str, phase: str, at: float) -> None:
        assert self.is_member(m.client_id) and m in self.alive()
        self.lost.append({**m.describe(), "phase": phase, "at": round(at, 4), "why": why})

    def silent(self, now: float) -> list[tuple[Member, float]]:
        """Members alive but silent past the limit, with how long they have been silent."""
        limit = SUSPECT_AFTER_S if now - self.closed_at < SUSPECT_WINDOW_S else LOST_AFTER_S
        return [(m, now - m.heard) for m in self.alive() if now - m.heard > limit]
