"""TCP listeners and connections over the netpoller (``rt.net``), after Go's net package.

Every socket is non-blocking and registered with the run's netpoller when created, and
belongs to that run. An operation tries its syscall first and parks the G only on EAGAIN
(internal/poll/fd_unix.go), so a ready socket costs one syscall and no scheduling; a read
that follows one that drained the socket parks first instead (it would only get EAGAIN, and
edge-triggered epoll reports any later byte: see netpoll.pollDesc.hup). No thread is used per
connection.

Deadlines are absolute ``time.monotonic()`` seconds (``None`` clears them) and make a parked
or later operation raise ``Timeout`` ("i/o timeout"). Closing a conn or listener wakes any G
parked on it with ``ErrNetClosing`` ("use of closed network connection").

Only one G should read and one G write a Conn at a time (Go serialises them with fdMutex;
here a second concurrent reader is an error).
"""

from __future__ import annotations

import errno
import socket
import time
import types
from collections.abc import Generator
from typing import Any

from .netpoll import ErrNetClosing, Timeout, commit_r, poll_open, pollDesc

__all__ = ["Conn", "ErrNetClosing", "Listener", "Timeout", "dial", "listen"]

_MAXREAD = 1 << 30
# A read asks the kernel for at most the conn's read size: it starts at MIN_READ (bytes that
# few come from Python's small-object allocator, where a 64 KiB read costs a malloc and a
# shrinking realloc), doubles each time a read fills it, and halves after a read that used
# less than a quarter of it. Returning less than asked for is what Go's Read does too.
MIN_READ = 256


def _sockerr(e: OSError, closed: bool) -> OSError:
    if closed and e.errno in (errno.EBADF, errno.ENOTSOCK):
        return ErrNetClosing()
    return e


class Conn:
    """A connected TCP socket. ``read``/``write`` are awaitables; the rest is synchronous."""

    __slots__ = ("sock", "pd", "closed", "_drained", "_rsize")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.pd: pollDesc = poll_open(sock.fileno())
        self.closed = False
        self._drained = False
        self._rsize = MIN_READ

    def __repr__(self) -> str:
        return f"<Conn fd={self.pd.fd} closed={self.closed}>"

    @types.coroutine
    def read(self, n: int) -> Generator[Any, Any, bytes]:
        """Read up to ``n`` bytes; wait until at least one is available. ``b""`` at EOF.

        Raises ErrNetClosing if the conn is (or gets) closed, Timeout past the read
        deadline, and the socket's error (ConnectionResetError, ...) otherwise.
        """
        # Go's fd_unix.go Read: the syscall first, a park only when it would block. Hot
        # path (64 B echo): park, recv, return -- no exception, and no frame besides this
        # one: a generator-based coroutine, it yields the park request to the M itself (what
        # proc.gopark(commit_r, pd, "IO wait") yields). commit_r parks the G unless the conn
        # is closing, past its deadline or an event came first; the G then resumes at once,
        # with something else than True (I/O ready), and checks why.
        pd = self.pd
        if self._drained and not pd.hup:
            # The last read drained the socket: wait first instead of a read that would
            # only say EAGAIN (see pollDesc.hup for why no byte can be missed).
            self._drained = False
            if (yield (commit_r, "IO wait", pd)) is not True:
                pd.checkerr("r")
        elif pd.closing or pd.rd < 0.0:
            pd.checkerr("r")
        rsize = self._rsize
        if not 0 < n <= rsize:
            if n <= 0:
                return b""
            n = rsize
        while True:
            try:
                data = self.sock.recv(n)
            except (BlockingIOError, InterruptedError):
                data = None
            except OSError as e:
                raise _sockerr(e, self.closed) from None
            if data is not None:
                got = len(data)
                if got < n:
                    self._drained = True  # b"" too: harmless, hup is set at EOF
                    if rsize > MIN_READ and got < rsize >> 2:
                        self._rsize = rsize >> 1
                elif n == rsize and rsize < _MAXREAD:
                    self._rsize = rsize << 1
                return data
            # Parked outside the except clause: a G suspended inside one keeps the exception
            # and its traceback alive (hundreds of bytes per idle connection).
            if (yield (commit_r, "IO wait", pd)) is not True:
                pd.checkerr("r")

    async def write(self, data: bytes | bytearray | memoryview) -> int:
        """Write all of ``data``, parking whenever the socket buffer is full; return len(data).

        On an error part of the data may have been written (as Go's Write, which returns the
        count written with the error); the exception is raised and the count is lost.
        """
        # Go's fd_unix.go Write: one send that takes everything is the hot path.
        pd = self.pd
        if pd.closing or pd.wd < 0.0:
            pd.checkerr("w")
        try:
            n = self.sock.send(data)
        except (BlockingIOError, InterruptedError):
            n = 0
        except OSError as e:
            raise _sockerr(e, self.closed) from None
        total = len(data)
        if n == total:
            return total
        send = self.sock.send
        view = memoryview(data)[n:]
        while view:
            try:
                n = send(view)
            except (BlockingIOError, InterruptedError):
                n = -1
            except OSError as e:
                raise _sockerr(e, self.closed) from None
            if n >= 0:
                view = view[n:]
                continue
            await pd.wait_write()
            if pd.closing or pd.wd < 0.0:
                pd.checkerr("w")
        return total

    def close_write(self) -> None:
        """Half-close: the peer reads EOF; this side can still read (shutdown SHUT_WR)."""
        if self.closed:
            raise ErrNetClosing()
        self.sock.shutdown(socket.SHUT_WR)

    def close(self) -> None:
        """Close the conn; Gs parked in read or write raise ErrNetClosing. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.pd.close()
        self.sock.close()

    def set_deadline(self, t: float | None) -> None:
        """Read and write deadline, absolute time.monotonic() seconds; None clears it."""
        self.pd.set_deadline(t, "rw")

    def set_read_deadline(self, t: float | None) -> None:
        self.pd.set_deadline(t, "r")

    def set_write_deadline(self, t: float | None) -> None:
        self.pd.set_deadline(t, "w")

    def local_addr(self) -> tuple:
        return self.sock.getsockname()

    def remote_addr(self) -> tuple:
        return self.sock.getpeername()


class Listener:
    """A listening TCP socket; ``accept`` parks until a connection arrives."""

    __slots__ = ("sock", "pd", "addr", "closed")

    def __init__(self, sock: socket.socket) -> None:
        sock.setblocking(False)
        self.sock = sock
        self.addr: tuple = sock.getsockname()
        self.pd = poll_open(sock.fileno())
        self.closed = False

    def __repr__(self) -> str:
        return f"<Listener {self.addr[0]}:{self.addr[1]} closed={self.closed}>"

    async def accept(self) -> Conn:
        """Wait for and return the next connection.

        Raises ErrNetClosing once the listener is closed and OSError for accept errors
        (EMFILE, ENFILE, ECONNABORTED, ENOBUFS, ...), which a server should back off on
        and retry rather than treat as fatal (Go's net/http does).
        """
        pd = self.pd
        if pd.closing or pd.rd < 0.0:
            pd.checkerr("r")
        while True:
            try:
                fd = self.sock._accept()[0]
            except (BlockingIOError, InterruptedError):
                fd = -1
            except OSError as e:
                raise _sockerr(e, self.closed) from None
            if fd < 0:
                await pd.wait_read()
                if pd.closing or pd.rd < 0.0:
                    pd.checkerr("r")
                continue
            s = socket.socket(self.sock.family, socket.SOCK_STREAM, 0, fileno=fd)
            try:
                return Conn(s)
            except BaseException:
                s.close()
                raise

    def close(self) -> None:
        """Stop listening; a G parked in accept raises ErrNetClosing. Idempotent."""
        if self.closed:
            return
        self.closed = True
        self.pd.close()
        self.sock.close()

    def set_deadline(self, t: float | None) -> None:
        """Deadline for accept, absolute time.monotonic() seconds; None clears it."""
        self.pd.set_deadline(t, "r")


def listen(host: str = "127.0.0.1", port: int = 0, backlog: int = 4096) -> Listener:
    """Listen on host:port (port 0 picks a free one; see ``Listener.addr``).

    SO_REUSEADDR is set (as Go does on Unix). Must be called inside ``rt.run``.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        s.bind((host, port))
        s.listen(backlog)
        return Listener(s)
    except BaseException:
        s.close()
        raise


async def dial(host: str, port: int, timeout: float | None = None) -> Conn:
    """Connect to host:port without blocking an M; return the Conn.

    Raises ConnectionRefusedError (or the socket's other connect error) when the connection
    fails and Timeout if ``timeout`` seconds pass first. TCP_NODELAY is set, as Go does.
    """
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    s = socket.socket(family, socket.SOCK_STREAM)
    s.setblocking(False)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex((host, port))
        c = Conn(s)
    except BaseException:
        s.close()
        raise
    try:
        if err not in (0, errno.EISCONN):
            if err not in (errno.EINPROGRESS, errno.EALREADY, errno.EINTR):
                raise _connerr(err)
            if timeout is not None:
                c.set_write_deadline(time.monotonic() + timeout)
            while True:
                await c.pd.wait("w")
                c.pd.checkerr("w")
                err = s.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
                if err in (errno.EINPROGRESS, errno.EALREADY, errno.EINTR):
                    continue  # spurious wakeup
                if err == errno.EISCONN:
                    break
                if err == 0:
                    # The poller may wake us spuriously (Go issues 14548, 19289): connected
                    # only if there is a peer.
                    try:
                        s.getpeername()
                        break
                    except OSError:
                        continue
                raise _connerr(err)
            if timeout is not None:
                c.set_write_deadline(None)
    except BaseException:
        c.close()
        raise
    return c


def _connerr(err: int) -> OSError:
    msg = f"connect: {errno.errorcode.get(err, str(err))}"
    if err == errno.ECONNREFUSED:
        return ConnectionRefusedError(err, msg)
    if err == errno.ETIMEDOUT:
        return Timeout()
    return OSError(err, msg)
