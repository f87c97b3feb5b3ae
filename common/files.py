"""Files a reader never sees half-written."""

from __future__ import annotations

import os
import tempfile
from pathlib import Path


def atomic_write(data: bytes, target: Path, exclusive: bool = False) -> bool:
    """Write ``data`` to ``target`` so a reader sees the old file or the whole new one.

    Temp file in the same directory, fsync, rename, fsync of the directory: a crash or
    Ctrl-C at any point leaves no half-written file (at worst a ``.tmp`` is removed).
    With ``exclusive`` the temp file is hard-linked to ``target`` instead of renamed, which
    fails if ``target`` exists: then nothing is written and ``False`` is returned.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.stem}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        if exclusive:
            try:
                os.link(tmp, target)
            except FileExistsError:
                return False
            finally:
                Path(tmp).unlink(missing_ok=True)
        else:
            os.replace(tmp, target)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    dirfd = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(dirfd)
    finally:
        os.close(dirfd)
    return True
