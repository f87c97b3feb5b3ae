"""Children that die with their parent, however the parent dies.

Linux's ``PR_SET_PDEATHSIG`` asks the kernel to signal a process when the thread that
forked it exits, SIGKILL included; it survives ``execve``. :func:`with_parent_death` wraps
a command line in a tiny launcher that sets it, checks the parent is still the one that
started it (it may have died before the setting took), and then becomes the command, so
the child is covered from its first instruction, before any slow import.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys

PR_SET_PDEATHSIG = 1

_LAUNCHER = (
    "import ctypes, os, sys\n"
    "ctypes.CDLL(None, use_errno=True).prctl(1, int(sys.argv[2]), 0, 0, 0)\n"
    "if os.getppid() != int(sys.argv[1]):\n"
    "    os._exit(1)\n"
    "try:\n"
    "    os.execvp(sys.argv[3], sys.argv[3:])\n"
    "except OSError as e:\n"
    "    print(f'cannot run {sys.argv[3]}: {e.strerror}', file=sys.stderr)\n"
    "    os._exit(127)\n"
)


def with_parent_death(argv: list[str], sig: int = signal.SIGKILL) -> list[str]:
    """``argv`` run so that it receives ``sig`` when this process's calling thread exits.

    The command is found on ``PATH`` as ``execvp`` finds it; one that cannot be run exits
    127 with one line on stderr. Where the launcher cannot set the signal (not Linux), the
    command runs without it.
    """
    if not sys.platform.startswith("linux"):
        return list(argv)
    return [sys.executable, "-S", "-c", _LAUNCHER, str(os.getpid()), str(int(sig)), *argv]


def set_parent_death_signal(sig: int = signal.SIGKILL) -> bool:
    """Ask for ``sig`` when this process's parent (thread) exits; ``False`` if unsupported."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return libc.prctl(PR_SET_PDEATHSIG, int(sig), 0, 0, 0) == 0
    except (OSError, AttributeError):
        return False
