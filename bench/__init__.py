"""The runner's internals: case matrix, server lifecycle, sampling, progress, commands."""

from __future__ import annotations

import os
from pathlib import Path

from common.cli import UsageError

__all__ = ["UsageError", "writable_dir"]


def writable_dir(path: Path, option: str) -> None:
    """Make ``path`` a directory this process can write, or say in one line why not."""
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as e:
        raise UsageError(f"{option} {path}: cannot make the directory "
                         f"({e.strerror or e})") from None
    if not os.access(path, os.W_OK | os.X_OK):
        raise UsageError(f"{option} {path}: not a writable directory")
