"""The thread server: one thread per connection, with the stack size given."""

from __future__ import annotations

import random

import pytest

from tests.servers.support import roundtrip

CONNS = 20


def _anonymous_mappings(pid: int, kib: int) -> int:
    """How many anonymous read-write mappings of exactly ``kib`` KiB ``pid`` has."""
    count = 0
    with open(f"/proc/{pid}/maps") as maps:
        for line in maps:
            fields = line.split()
            low, high = (int(x, 16) for x in fields[0].split("-"))
            if len(fields) == 5 and fields[1] == "rw-p" and high - low == kib * 1024:
                count += 1
    return count


@pytest.mark.parametrize("stack_kib", [4096, 320])
@pytest.mark.timeout(60)
def test_one_thread_per_connection_with_the_stack_size_given(launch, stack_kib):
    server = launch(["thread", "--port", "0", "--thread-stack", str(stack_kib)])
    ps = server.ps
    threads0, stacks0 = ps.num_threads(), _anonymous_mappings(server.pid, stack_kib)
    conns = [server.connect() for _ in range(CONNS)]
    for c in conns:
        assert roundtrip(c, b"x") == b"x"
    assert ps.num_threads() - threads0 == CONNS
    assert _anonymous_mappings(server.pid, stack_kib) - stacks0 == CONNS
    for c in conns:
        c.close()


@pytest.mark.timeout(60)
def test_smallest_stack_still_echoes_a_large_message(launch):
    server = launch(["thread", "--port", "0", "--thread-stack", "64"])
    data = random.Random(4).randbytes(3 * 1024 * 1024)
    with server.connect() as c:
        assert roundtrip(c, data) == data
