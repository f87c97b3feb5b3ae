"""Facts about this host that processes compare with each other."""

from __future__ import annotations


def boot_id() -> str:
    """This boot's id (``""`` where the kernel does not say): processes with the same one
    share ``time.monotonic()``'s clock (CLOCK_MONOTONIC), so their instants compare."""
    try:
        with open("/proc/sys/kernel/random/boot_id") as f:
            return f.read().strip()
    except OSError:
        return ""
