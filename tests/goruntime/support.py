"""Helpers shared by the goruntime tests."""

import time

import goruntime as rt


async def until(cond, timeout: float = 5.0) -> None:
    """Let other Gs run until cond() holds (a wait that does not depend on machine load)."""
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not reached"
        await rt.sleep(0.001)


def go_ping_pong(running) -> None:
    """Start two Gs that hand a value back and forth over two unbuffered channels while
    ``running()`` holds: each readies the other into runnext, so they share one time slice
    until sysmon ends it."""
    a, b = rt.Chan(), rt.Chan()

    async def ping():
        while running():
            await a.send(1)
            await b.recv()

    async def pong():
        while True:
            await a.recv()
            await b.send(1)

    rt.go(pong)
    rt.go(ping)
