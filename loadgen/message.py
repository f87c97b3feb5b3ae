"""The bytes of message number `seq`: what is sent and what the echo must equal.

A message of `size` bytes is the 8-byte big-endian sequence number followed by a
payload that depends on it: byte i of the payload is `(seq + i) % 256`.  Every byte
therefore depends on `seq`, so a flipped byte, a lost or duplicated chunk, a stale echo
of the previous message or bytes from another connection (whose numbers start at an
unrelated random point) all fail the byte-for-byte comparison.

Below 8 bytes only the low `size` bytes of the number are sent.  The check stays
meaningful: consecutive numbers differ in their lowest byte, so a repeated or stale
echo is still caught (modulo 256**size), and any corrupted byte changes the value.
"""

from __future__ import annotations

from functools import lru_cache

_CYCLE = bytes(range(256))


@lru_cache(maxsize=8)
def _pattern(size: int) -> bytes:
    """0, 1, ..., 255, 0, 1, ... long enough to slice any payload of `size` bytes from."""
    need = max(0, size - 8) + 256
    return (_CYCLE * (need // 256 + 1))[:need]


@lru_cache(maxsize=8)
def _payloads(size: int) -> tuple[bytes, ...]:
    """The 256 payloads of `size`-byte messages, by the low byte of their number."""
    p = _pattern(size)
    return tuple(p[k:k + size - 8] for k in range(256))


PAYLOADS_UP_TO = 4096  # sizes whose 256 payloads are kept (1 MiB for 4 KiB messages)


def message(seq: int, size: int) -> bytes:
    """The `size` bytes of message `seq` (seq is taken modulo 2**64)."""
    head = (seq & 0xFFFF_FFFF_FFFF_FFFF).to_bytes(8, "big")
    if size <= 8:
        return head[8 - size:]
    k = seq & 0xFF
    if size <= PAYLOADS_UP_TO:
        return head + _payloads(size)[k]
    return head + _pattern(size)[k:k + size - 8]
