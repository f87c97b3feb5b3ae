"""The common interface of the echo servers and the parts they share.

A strategy is a subclass of :class:`Server`: ``serve(sock)`` echoes on connections
accepted from an already listening socket until ``shutdown()`` is called, then
closes every connection, reaps every child process and thread, and returns.
``pids()`` names the processes that make up the server (for measurement).

Shared policy lives here so that every strategy behaves alike:

* :class:`AcceptBackoff` -- what to do when ``accept`` fails (Go's net/http
  ``Server.Serve``: 5 ms doubling to 1 s, reset on success).
* :meth:`BlockingServer.accept` -- an accept that returns ``None`` once
  ``shutdown()`` was called, for strategies whose main thread blocks.
* :func:`echo_blocking` -- the echo loop of a blocking socket.

And the command line every strategy shares (``python -m servers``): :func:`parse_args`,
:func:`listen`, :func:`listening_line`, and :func:`run`, which installs the SIGTERM and
SIGINT handlers (they call ``shutdown()``) before announcing the server.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import select
import signal
import socket
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from common.cli import Parser as _Parser
from common.cli import UsageError

READ_SIZE = 64 * 1024
"""Largest read; a chunk is written back completely before the next read."""

MIN_THREAD_STACK_KIB = 64
"""Smallest ``--thread-stack``: CPython needs some C stack for even a shallow echo."""

ACCEPT_BACKOFF_MIN = 0.005
ACCEPT_BACKOFF_MAX = 1.0
TEMPORARY_ACCEPT_ERRNOS = frozenset(
    {errno.EMFILE, errno.ENFILE, errno.ECONNABORTED, errno.ENOBUFS, errno.ENOMEM}
)
"""Accept errors that say "not now" rather than "never": the server backs off and retries."""


@dataclass(frozen=True)
class Config:
    """Settings from the command line; a strategy uses those that apply to it."""

    host: str = "127.0.0.1"
    port: int = 0
    backlog: int = socket.SOMAXCONN
    procs: int | None = None
    thread_stack_kib: int = 256


class AcceptBackoff:
    """Delay before retrying a failed ``accept``, as Go's ``Server.Serve`` computes ``tempDelay``.

    The first temporary failure waits :data:`ACCEPT_BACKOFF_MIN`; each further one in a row
    doubles the wait up to :data:`ACCEPT_BACKOFF_MAX`; a successful accept resets it. An
    error outside :data:`TEMPORARY_ACCEPT_ERRNOS` is re-raised: it will not go away.
    """

    def __init__(self) -> None:
        self.delay = 0.0

    def failed(self, err: OSError) -> float:
        """Return the seconds to wait before the next accept, or re-raise ``err``."""
        if err.errno not in TEMPORARY_ACCEPT_ERRNOS:
            raise err
        return self.pause(f"accept error: {err}")

    def pause(self, reason: str) -> float:
        """Count one more temporary failure (``reason`` goes to stderr); return the wait."""
        self.delay = min(self.delay * 2, ACCEPT_BACKOFF_MAX) if self.delay else ACCEPT_BACKOFF_MIN
        print(f"{reason}; retrying in {self.delay * 1000:.0f}ms", file=sys.stderr, flush=True)
        return self.delay

    def succeeded(self) -> None:
        self.delay = 0.0


class Server:
    """An echo server strategy. Subclasses set ``name`` and implement :meth:`serve`.

    ``shutdown()`` may be called from a signal handler or any thread, any number of
    times, before or during ``serve``; it makes ``serve`` return promptly (within 5 s,
    with every connection closed and every child process and thread gone).
    ``wake_fd`` becomes readable when ``shutdown()`` is called or a signal arrives
    (it is the ``signal.set_wakeup_fd`` of ``python -m servers``), so a strategy can
    wait on it beside its sockets.
    """

    name = ""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.stopping = False
        self.wake_fd, self._wake_w = os.pipe()
        os.set_blocking(self.wake_fd, False)
        os.set_blocking(self._wake_w, False)

    @classmethod
    def unavailable(cls) -> str | None:
        """Why this strategy cannot run here (an optional package is missing), or ``None``."""
        return None

    def serve(self, sock: socket.socket) -> None:
        raise NotImplementedError

    def shutdown(self) -> None:
        self.stopping = True
        try:
            os.write(self._wake_w, b"\0")
        except (BlockingIOError, OSError):
            pass  # full pipe: already readable; closed: serve has finished

    def pids(self) -> list[int]:
        """The processes of this server: its own pid, then any children."""
        return [os.getpid()]

    def drain_wake(self) -> None:
        """Empty ``wake_fd``; a SIGTERM or SIGINT byte in it means shutdown.

        Python runs signal handlers only in the main thread and only between bytecodes,
        so a wakeup can be seen before the handler has run; reading the signal numbers
        that ``set_wakeup_fd`` writes closes that window.
        """
        try:
            while data := os.read(self.wake_fd, 512):
                if signal.SIGTERM in data or signal.SIGINT in data:
                    self.shutdown()
        except BlockingIOError:
            pass

    def close_wake(self) -> None:
        for fd in (self.wake_fd, self._wake_w):
            try:
                os.close(fd)
            except OSError:
                pass


class BlockingServer(Server):
    """Base of the strategies whose main thread blocks in ``accept``: iterative, fork, thread."""

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._backoff = AcceptBackoff()

    def accept(self, sock: socket.socket) -> socket.socket | None:
        """Wait for a connection; ``None`` once ``shutdown()`` was called.

        ``sock`` must be non-blocking (a peer that resets between ``poll`` and ``accept``
        would otherwise block us). Temporary errors back off per :class:`AcceptBackoff`,
        waiting on ``wake_fd`` alone so that a pending connection cannot spin us. The
        returned socket is blocking.
        """
        while True:
            self.wait(sock)
            if self.stopping:
                return None
            try:
                conn, _ = sock.accept()
            except (BlockingIOError, InterruptedError):
                continue
            except OSError as err:
                self.wait(timeout=self._backoff.failed(err))
                continue
            self._backoff.succeeded()
            conn.setblocking(True)
            return conn

    def wait(self, sock: socket.socket | None = None, timeout: float | None = None) -> None:
        """Block until ``sock`` is readable, ``wake_fd`` is, or ``timeout`` seconds pass."""
        poller = select.poll()
        poller.register(self.wake_fd, select.POLLIN)
        if sock is not None:
            poller.register(sock, select.POLLIN)
        events = poller.poll(None if timeout is None else timeout * 1000)
        if any(fd == self.wake_fd for fd, _ in events):
            self.drain_wake()
        self.on_wake()

    def on_wake(self) -> None:
        """Called in the accept loop after every wakeup (the fork server reaps here)."""


def echo_blocking(conn: socket.socket) -> None:
    """Echo on a blocking socket until the peer closes or the socket is shut down.

    Half-close: the peer's ``SHUT_WR`` reads as EOF after every byte has been echoed.
    Backpressure: ``sendall`` blocks while the peer does not read, so nothing more is
    read. A reset, a broken pipe or a ``shutdown()`` from another thread ends the loop.
    The caller closes ``conn``. ``recv`` rather than ``recv_into`` a buffer of our own: an
    idle connection then holds no zero-filled 64 KiB (untouched pages cost nothing).
    """
    try:
        while data := conn.recv(READ_SIZE):
            conn.sendall(data)
    except OSError:
        pass


def _int_in(low: int, high: int | None) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer, got {text!r}") from None
        if value < low or (high is not None and value > high):
            bound = f"{low}..{high}" if high is not None else f">= {low}"
            raise argparse.ArgumentTypeError(f"must be {bound}, got {value}")
        return value

    return parse


def parse_args(argv: list[str], strategies: Iterable[str]) -> tuple[str, Config]:
    """Parse ``STRATEGY [--host] [--port] [--backlog] [--procs] [--thread-stack]``.

    Raises :class:`UsageError` with a one-line message on any bad input.
    """
    names = list(strategies)
    parser = _Parser(prog="python -m servers", add_help=True)
    parser.add_argument("strategy", metavar="STRATEGY")
    parser.add_argument("--host", default=Config.host)
    parser.add_argument("--port", type=_int_in(0, 65535), default=Config.port)
    parser.add_argument("--backlog", type=_int_in(1, 65535), default=Config.backlog)
    parser.add_argument("--procs", type=_int_in(1, 1024), default=None)
    parser.add_argument(
        "--thread-stack",
        metavar="KiB",
        type=_int_in(MIN_THREAD_STACK_KIB, 1024 * 1024),
        default=Config.thread_stack_kib,
    )
    args = parser.parse_args(argv)
    if args.strategy not in names:
        raise UsageError(f"unknown strategy {args.strategy!r}: choose one of {', '.join(names)}")
    config = Config(args.host, args.port, args.backlog, args.procs, args.thread_stack)
    return args.strategy, config


def listen(config: Config) -> socket.socket:
    """A non-blocking TCP socket listening on ``config.host:config.port``.

    Raises :class:`UsageError` when the address cannot be bound (bad host, port in use).
    """
    try:
        infos = socket.getaddrinfo(
            config.host, config.port, type=socket.SOCK_STREAM, flags=socket.AI_PASSIVE
        )
        family, type_, proto, _, addr = infos[0]
        sock = socket.socket(family, type_, proto)
    except OSError as err:
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {err}") from None
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.bind(addr)
        sock.listen(config.backlog)
    except OSError as err:
        sock.close()
        raise UsageError(f"cannot listen on {config.host}:{config.port}: {err}") from None
    sock.setblocking(False)
    return sock


def listening_line(strategy: str, sock: socket.socket) -> str:
    """The one JSON line printed once the server accepts (DESIGN.md, "Server contract")."""
    host, port = sock.getsockname()[:2]
    return json.dumps(
        {"event": "listening", "strategy": strategy, "host": host, "port": port,
         "pid": os.getpid()}
    )


def run(server: Server, sock: socket.socket) -> None:
    """Serve until SIGTERM or SIGINT: install the handlers, announce, serve, clean up.

    The handlers are in place before the listening line is printed, so a signal sent
    as soon as the line is read is never fatal; they only call ``server.shutdown()``.
    """
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: server.shutdown())
    signal.set_wakeup_fd(server._wake_w, warn_on_full_buffer=False)
    print(listening_line(server.name, sock), flush=True)
    try:
        server.serve(sock)
    finally:
        signal.set_wakeup_fd(-1)
        sock.close()
        server.close_wake()
