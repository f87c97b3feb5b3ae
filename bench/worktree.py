"""The base side of a regression check: a git ref resolved and checked out beside the tree.

:func:`default_base` is ``HEAD`` when the work tree has changes (the changes are what is
judged) and ``HEAD~1`` when it is clean (the last commit is). :func:`resolve` turns a ref
into a commit sha; an unknown ref is a :class:`~bench.UsageError` (one line, exit 2).

:func:`checkout` puts a commit into a temporary detached ``git worktree`` and removes it
when the block ends, however it ends: normally, on an exception, on Ctrl-C. The worktree
is registered in the repository only while the block runs; ``git worktree list`` after
it shows none left.
"""

from __future__ import annotations

import shutil
import signal
import subprocess
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from bench import UsageError

GIT_TIMEOUT_S = 120.0
PREFIX = "c10k-regress-"


class WorktreeError(RuntimeError):
    """The worktree could not be made; ``str(e)`` is git's one-line reason."""


def git(root: Path, *args: str) -> subprocess.CompletedProcess:
    """``git -C root ARGS`` with output captured; never raises on a non-zero exit."""
    try:
        return subprocess.run(["git", "-C", str(root), *args], capture_output=True, text=True,
                              timeout=GIT_TIMEOUT_S)
    except FileNotFoundError:
        raise UsageError("git is not installed: regress needs git to check out the base") \
            from None


def toplevel(path: Path) -> Path:
    """The root of the git work tree holding ``path``; UsageError outside one."""
    r = git(path, "rev-parse", "--show-toplevel")
    if r.returncode != 0:
        raise UsageError(f"{path} is not in a git repository: regress compares two commits")
    return Path(r.stdout.strip())


def is_dirty(root: Path) -> bool:
    """Whether the work tree has changes git would show (ignored files do not count)."""
    r = git(root, "status", "--porcelain")
    if r.returncode != 0:
        raise UsageError(f"git status failed in {root}: {r.stderr.strip()}")
    return bool(r.stdout.strip())


def default_base(root: Path) -> str:
    """``HEAD`` when the work tree has changes, else ``HEAD~1``."""
    return "HEAD" if is_dirty(root) else "HEAD~1"


def resolve(root: Path, ref: str) -> str:
    """The full sha of the commit ``ref`` names; UsageError naming the ref if none."""
    if ref.startswith("-"):
        raise UsageError(f"--base {ref!r} is not a git ref")
    r = git(root, "rev-parse", "--verify", "--quiet", "--end-of-options", f"{ref}^{{commit}}")
    if r.returncode != 0:
        hint = " (HEAD has no parent: give --base REF)" if ref == "HEAD~1" else ""
        raise UsageError(f"--base {ref!r} is not a commit in {root}{hint}")
    return r.stdout.strip()


def commit_time(root: Path, sha: str) -> str | None:
    """The committer date of ``sha`` in ISO 8601, or None if git cannot say."""
    r = git(root, "show", "-s", "--format=%cI", sha)
    return (r.stdout.strip() or None) if r.returncode == 0 else None


@contextmanager
def checkout(root: Path, sha: str) -> Iterator[Path]:
    """A temporary detached worktree of ``sha``, removed when the block ends.

    Raises :class:`WorktreeError` (with git's message) if the worktree cannot be made.
    """
    parent = Path(tempfile.mkdtemp(prefix=PREFIX))
    path = parent / "base"
    try:
        r = git(root, "worktree", "add", "--detach", "--quiet", str(path), sha)
        if r.returncode != 0:
            raise WorktreeError(f"git worktree add failed: {r.stderr.strip()}")
        yield path
    finally:
        remove(root, path)
        shutil.rmtree(parent, ignore_errors=True)


def remove(root: Path, path: Path) -> None:
    """Unregister and delete the worktree at ``path`` (a no-op if it is already gone).

    A second Ctrl-C does not cut the clean-up short: SIGINT is ignored while it runs (in
    the main thread, and so in the git processes it starts).
    """
    main = threading.current_thread() is threading.main_thread()
    old = signal.signal(signal.SIGINT, signal.SIG_IGN) if main else None
    try:
        git(root, "worktree", "remove", "--force", "--force", str(path))
        shutil.rmtree(path, ignore_errors=True)
        git(root, "worktree", "prune")
    finally:
        if main:
            signal.signal(signal.SIGINT, old)
