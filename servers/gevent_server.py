"""gevent: ``gevent.server.StreamServer``, a greenlet per connection on gevent's hub (libev).

The closest Python relative of a goroutine per connection: each handler is the blocking
echo loop of the thread strategy (:func:`~servers.base.echo_blocking`) on a gevent socket,
whose ``recv``/``sendall`` switch to the hub instead of blocking the thread. No monkey
patching; one OS thread.

Backpressure: ``sendall`` parks the greenlet until the peer reads, so it reads nothing
more. Half-close: the peer's EOF ends the loop; StreamServer closes the socket.

Accept errors: StreamServer accepts, but a temporary error stops accepting for the delay
:class:`~servers.base.AcceptBackoff` gives, with its one line on stderr. (StreamServer's
own handling has the same doubling schedule from 10 ms, and prints a traceback per error.)

Shutdown: the main greenlet waits on ``wake_fd``; then it closes the listener and kills
every handler greenlet (``GreenletExit`` in its ``recv`` or ``sendall``), which closes its
connection. That is a switch into every greenlet, so at 10,000 connections it can outlast
the 1 s that ``StreamServer.stop`` allows; the greenlets left would then die one by one as
the interpreter exits, slower still. ``KILL_BUDGET`` allows more.
"""

from __future__ import annotations

import socket

import gevent
import gevent.socket
from gevent.pool import Pool
from gevent.server import StreamServer

from servers.base import AcceptBackoff, Server, echo_blocking

KILL_BUDGET = 3.0  # seconds to kill the handler greenlets; the contract allows 5 to exit


class EchoStreamServer(StreamServer):
    """StreamServer whose accept errors follow :class:`~servers.base.AcceptBackoff`."""

    def __init__(self, listener: socket.socket, handlers: Pool) -> None:
        super().__init__(listener, spawn=handlers)
        self.backoff = AcceptBackoff()

    def handle(self, conn: gevent.socket.socket, address: object) -> None:
        echo_blocking(conn)

    def do_read(self) -> tuple[gevent.socket.socket, object] | None:
        """Accept one connection; on a temporary error stop accepting for the back-off delay.

        Any other error is re-raised to StreamServer, which reports it and retries later
        (or, for EBADF, EINVAL, ENOTSOCK, closes the listener; open connections go on).
        """
        try:
            accepted = super().do_read()
        except OSError as err:
            delay = self.backoff.failed(err)
            self.stop_accepting()
            gevent.spawn_later(delay, self._resume_accepting)
            return None
        if accepted is not None:
            self.backoff.succeeded()
        return accepted

    def _resume_accepting(self) -> None:
        if self.started:  # not stopped meanwhile
            self.start_accepting()


class GeventServer(Server):
    name = "gevent"

    def serve(self, sock: socket.socket) -> None:
        handlers = Pool()  # unbounded: a greenlet per connection
        server = EchoStreamServer(sock, handlers)
        server.start()
        try:
            self._wait_for_shutdown()
        finally:
            server.close()
            handlers.kill(block=True, timeout=KILL_BUDGET)

    def _wait_for_shutdown(self) -> None:
        while True:
            self.drain_wake()
            if self.stopping:
                return
            gevent.socket.wait_read(self.wake_fd)
