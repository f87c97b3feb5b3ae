"""Errors the runtime raises: Go's panics and its fatal deadlock."""

from __future__ import annotations

DEADLOCK_MSG = "all goroutines are asleep - deadlock!"


class Panic(Exception):
    """A Go panic (``send on closed channel``, ``close of closed channel``, ...).

    A G may catch it with ``try``/``except`` as Go's ``recover`` would; if it escapes a G,
    ``run`` re-raises it, as an unrecovered panic ends a Go program.
    """


class Deadlock(Exception):
    """Raised by ``run`` when no G can ever run again (Go's fatal error)."""

    def __init__(self, msg: str = DEADLOCK_MSG) -> None:
        super().__init__(msg)


class Fatal(Exception):
    """A Go ``fatal error`` (unrecoverable misuse, e.g. unlock of an unlocked mutex).

    It is raised in the offending G like a panic but is not a ``Panic``: code that catches
    ``Panic`` to recover does not swallow it.
    """
