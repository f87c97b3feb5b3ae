"""The echo check end to end: an echo is verified whatever pieces it comes back in, and a
single flipped byte anywhere in it fails the message."""

from __future__ import annotations

import json
import signal

import pytest

from tests.loadgen.conftest import run_loadgen

SHORT = ("--duration", "1", "--warmup", "0", "--workers", "1")
NO_ERRORS = {"refused": 0, "reset": 0, "timeout": 0, "corrupt": 0, "closed": 0, "other": 0}
LARGE = 200_000  # above 64 KiB: it reaches the server, and comes back, in several reads
SMALL_MSS = 536  # the server's advertised MSS: the driver's send buffer holds ~138 KB, so
# a LARGE message is sent in part, the rest when the socket is writable (on loopback a
# 64 KiB MSS gives a ~4 MB send buffer: any message up to 1 MiB would go in one call)


def _all_verified(r: dict, connections: int, size: int) -> None:
    assert r["errors"] == NO_ERRORS
    assert sum(r["connect_errors"].values()) == 0
    assert r["connections"]["served"] == connections
    assert r["messages"] > 0
    assert r["bytes"] == r["messages"] * size


def test_echo_returned_one_byte_per_write_is_verified(fault_server):
    """The server writes each echo back one byte at a time (each flushed, TCP_NODELAY):
    the driver reads it in many pieces, each checked at its offset in the message."""
    s = fault_server("split")
    r = run_loadgen(s.port, "--connections", "2", "--size", "64", *SHORT)
    _all_verified(r, 2, 64)


def test_echo_gathered_into_one_write_is_verified(fault_server):
    """A 200,000-byte message leaves the driver in several sends and reaches the server
    in several reads; the server writes it back whole in one write, once all of it has
    come: the echo's pieces are unrelated to the ones it was sent in, and nothing comes
    back until the driver has sent the rest of it. The server counts the messages it had
    to gather."""
    s = fault_server("coalesce", size=LARGE, mss=SMALL_MSS)
    r = run_loadgen(s.port, "--connections", "2", "--size", str(LARGE), *SHORT)
    _all_verified(r, 2, LARGE)
    s.signal(signal.SIGTERM)
    stopped = json.loads(s.proc.stdout.readline())
    assert stopped["gathered"] > 0  # the chunking really differed


def test_message_above_64_kib_is_sent_and_read_at_once(fault_server):
    """The plain echo of a 200,000-byte message starts before the message is all sent:
    the driver sends the rest as the socket allows while it reads and checks the echo."""
    s = fault_server("echo", mss=SMALL_MSS)
    r = run_loadgen(s.port, "--connections", "2", "--size", str(LARGE), *SHORT)
    _all_verified(r, 2, LARGE)


@pytest.mark.parametrize("size", [64, LARGE])
@pytest.mark.parametrize("mode", ["flip-first", "flip-middle", "flip-last"])
def test_one_flipped_byte_fails_every_message_as_corrupt(fault_server, mode, size):
    """After the ramp's echoes (left intact), every echo has its first, middle or last
    byte flipped, counted from the message boundary (for 200,000 bytes the middle and
    last ones come in a later read than the first): no message is verified, each is
    ``corrupt``."""
    s = fault_server(mode, size=size, clean=2)
    r = run_loadgen(s.port, "--connections", "2", "--size", str(size), *SHORT)
    assert r["connections"]["served"] == 2
    assert r["errors"]["corrupt"] > 0
    assert r["messages"] == 0
    assert {k: v for k, v in r["errors"].items() if k != "corrupt"} == {
        k: 0 for k in NO_ERRORS if k != "corrupt"}
