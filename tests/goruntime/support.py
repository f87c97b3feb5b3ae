"""Helpers shared by the goruntime tests."""

import time

import goruntime as rt


async def until(cond, timeout: float = 5.0) -> None:
    """Let other Gs run until cond() holds (a wait that does not depend on machine load)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await rt.sleep(0.001)
