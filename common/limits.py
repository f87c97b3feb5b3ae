"""Process limits a server or load generator of 10,000 connections needs."""

from __future__ import annotations

import resource


def raise_fd_limit() -> int:
    """Raise the soft open-file limit to the hard one; return the limit now in force."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return hard
