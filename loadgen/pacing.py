"""Open-loop pacing: when each connection of a worker sends its next message (pure).

Connection ``c`` sends message k at ``c.phase_at + k * period``, and the schedule is never
shifted: a connection still waiting for an echo when its next send falls due sends it the
moment the echo arrives (a *catch-up* send), measured from its intended time, until it has
caught up. A send whose connection was free when it fell due is a *timed* send: how late
it left measures the worker itself (``Recorder.late``).

The schedule is a heap of the free connections' next due times; a busy connection is not
in it (it is *behind* if its due time passes meanwhile). Timers and ``epoll_wait`` round a
wait up to the next millisecond, so a due time within :data:`EARLY_S` of now is sent now
(up to 1 ms early; such a send is measured from when it left: ``intended = min(due, now)``).
"""

from __future__ import annotations

import heapq
from typing import Protocol

EARLY_S = 0.001


class Paced(Protocol):
    """What the pacer keeps on a connection: its next due time."""

    due: float


class Pacer:
    """The due times of one worker's free connections (see the module docstring)."""

    def __init__(self, period: float) -> None:
        assert period > 0, "an open-loop period is positive"
        self.period = period
        self._heap: list[tuple[float, int, Paced]] = []
        self._ties = 0

    def start(self, c: Paced, first_due: float) -> None:
        """Put a connection on the schedule: its first message is due at ``first_due``."""
        c.due = first_due
        self._push(c)

    def _push(self, c: Paced) -> None:
        self._ties += 1
        heapq.heappush(self._heap, (c.due, self._ties, c))

    def next_due(self) -> float | None:
        """The earliest due time of a free connection (``None``: none is scheduled)."""
        return self._heap[0][0] if self._heap else None

    def pop_due(self, now: float) -> Paced | None:
        """A free connection whose send is due by ``now + EARLY_S``, taken off the heap
        (its send is a timed one), or ``None``. A connection closed meanwhile comes back
        too: the caller skips it (removing it from the heap would cost O(n))."""
        if self._heap and self._heap[0][0] <= now + EARLY_S:
            return heapq.heappop(self._heap)[2]
        return None

    def sent(self, c: Paced, now: float) -> float:
        """The send of ``c``'s due message leaves at ``now``: its intended time (never
        after ``now``); ``c.due`` moves to the next message."""
        intended = min(c.due, now)
        c.due += self.period
        return intended

    def free(self, c: Paced, now: float) -> bool:
        """``c`` has finished a message at ``now``. True if its next send is already due
        (send it at once: a catch-up); else it is back on the heap."""
        if c.due <= now + EARLY_S:
            return True
        self._push(c)
        return False
