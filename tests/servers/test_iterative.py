"""The iterative server serves one connection at a time, in arrival order."""

from __future__ import annotations

from tests.servers.support import roundtrip


def test_second_client_waits_until_the_first_closes(launch):
    server = launch(["iterative", "--port", "0"])
    first = server.connect()
    assert roundtrip(first, b"first") == b"first"
    second = server.connect()  # the kernel completes the handshake; nobody accepts it yet
    second.sendall(b"second")
    second.settimeout(0.7)
    try:
        early = second.recv(64)
    except TimeoutError:
        early = None
    assert early is None, f"second client was served while the first was open: {early!r}"
    assert roundtrip(first, b"still first") == b"still first"
    first.close()
    second.settimeout(10)
    assert second.recv(64) == b"second"
    second.close()
