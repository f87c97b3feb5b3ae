"""fork: the parent accepts; a forked child serves each connection and exits at EOF.

The parent closes its copy of every connection and reaps children as they exit: the
SIGCHLD handler only wakes the accept loop (through the signal wakeup fd), which then
calls ``waitpid(WNOHANG)`` until nothing is left to reap -- so no zombie survives even
a burst of short connections. ``gc.freeze()`` before the first fork keeps the
collector from touching (and so copying) the parent's objects in every child.

A child must never outlive the server: on ``shutdown()`` the parent stops accepting,
sends SIGTERM to every child (children keep the default action), waits up to 3 s, then
SIGKILLs any left and reaps them all. If the parent itself is SIGKILLed, the kernel
sends each child SIGKILL (``prctl(PR_SET_PDEATHSIG)``, Linux).
"""

from __future__ import annotations

import ctypes
import gc
import os
import signal
import socket
import time

from servers.base import BlockingServer, Config, echo_blocking

PR_SET_PDEATHSIG = 1
TERM_GRACE = 3.0

_libc = ctypes.CDLL(None, use_errno=True)


class ForkServer(BlockingServer):
    name = "fork"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._children: set[int] = set()
        self._mask: set[signal.Signals] = set()

    def pids(self) -> list[int]:
        return [os.getpid(), *sorted(self._children)]

    def serve(self, sock: socket.socket) -> None:
        signal.signal(signal.SIGCHLD, lambda *_: None)  # a handler, so SIGCHLD wakes us
        gc.freeze()
        parent = os.getpid()
        try:
            while (conn := self.accept(sock)) is not None:
                pid = self._fork()
                if pid == 0:
                    self._child(parent, sock, conn)  # never returns
                conn.close()
                if pid is None:  # EAGAIN/ENOMEM: too many processes for now
                    continue
                self._children.add(pid)
        finally:
            sock.close()
            self._stop_children()
            signal.signal(signal.SIGCHLD, signal.SIG_DFL)

    def _fork(self) -> int | None:
        """``os.fork()`` with SIGTERM and SIGINT held until the child has reset its handlers.

        Without this, a SIGTERM sent to a child just after the fork would run the
        parent's handler, inherited, instead of ending the child.
        """
        self._mask = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        try:
            pid = os.fork()
        except OSError as err:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            self.wait(timeout=self._backoff.pause(f"fork error: {err}"))
            return None
        if pid:
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
        return pid

    def on_wake(self) -> None:
        self._reap()

    def _reap(self) -> None:
        while self._children:
            try:
                pid, _ = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                self._children.clear()
                return
            if pid == 0:
                return
            self._children.discard(pid)

    def _stop_children(self) -> None:
        for pid in self._children:
            _kill(pid, signal.SIGTERM)
        deadline = time.monotonic() + TERM_GRACE
        while self._children and time.monotonic() < deadline:
            self._reap()
            if self._children:
                time.sleep(0.005)
        for pid in self._children:
            _kill(pid, signal.SIGKILL)
        for pid in list(self._children):
            try:
                os.waitpid(pid, 0)
            except ChildProcessError:
                pass
        self._children.clear()

    def _child(self, parent: int, listener: socket.socket, conn: socket.socket) -> None:
        """Serve ``conn`` in the forked child and ``_exit``: never return into the parent's code."""
        status = 1
        try:
            signal.set_wakeup_fd(-1)
            for signum in (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD):
                signal.signal(signum, signal.SIG_DFL)
            signal.pthread_sigmask(signal.SIG_SETMASK, self._mask)
            if _libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0) != 0:
                raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG)")
            if os.getppid() != parent:  # the parent died before prctl took effect
                os._exit(0)
            listener.close()
            self.close_wake()
            echo_blocking(conn)
            conn.close()
            status = 0
        finally:
            os._exit(status)


def _kill(pid: int, signum: int) -> None:
    try:
        os.kill(pid, signum)
    except ProcessLookupError:
        pass  # already exited; reaped below
