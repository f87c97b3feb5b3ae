"""asyncio: the reference strategy, the stdlib event loop a Python user would pick instead.

It uses a :class:`asyncio.BufferedProtocol` rather than streams. Measured on this machine
(closed loop, 64 B messages, 50 connections, one client process): this protocol echoed
129k msgs/s, a streams ``read``/``write``/``drain`` handler 38k msgs/s -- 3.4x, and the
client was the limit. A stream handler is a task woken per chunk with a future per
``drain``; ``buffer_updated`` is a plain callback that receives straight into a 64 KiB
buffer (reads are at most 64 KiB, as the contract says) shared by all connections, and
writes it back.

Backpressure is honest: when the transport's write buffer rises above its high-water
mark, ``pause_writing`` pauses reading on that connection; ``resume_writing`` (buffer
drained below the low-water mark) resumes it. So a peer that never reads costs at most
the high-water mark plus one read. ``eof_received`` returning false closes the
connection once everything received has been written back (half-close).

The accept loop is our own (``loop.sock_accept``) so that accept errors follow the shared
:class:`~servers.base.AcceptBackoff` policy rather than asyncio's fixed 1 s retry. Subclasses
(asyncio-streams, uvloop) keep it and the shutdown, and change how a connection is served
(:meth:`AsyncioServer.start_conn`) or which loop runs it (:meth:`AsyncioServer.serve`).
"""

from __future__ import annotations

import asyncio
import functools
import signal
import socket

from servers.base import READ_SIZE, AcceptBackoff, Config, Server


class ReadBuffer:
    """The one 64 KiB buffer every connection of a loop receives into.

    A callback writes what it received before the next one runs, and the transport sends
    it or copies it -- unless a transport keeps a reference to the unsent tail (some
    Python versions keep a memoryview); then :meth:`taken` swaps in a fresh buffer. An
    idle connection so costs no buffer at all.
    """

    def __init__(self) -> None:
        self.buf = bytearray(READ_SIZE)

    def taken(self) -> None:
        self.buf = bytearray(READ_SIZE)


class EchoProtocol(asyncio.BufferedProtocol):
    def __init__(self, conns: set[asyncio.BaseTransport], shared: ReadBuffer) -> None:
        self.conns = conns
        self.shared = shared

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport
        self.conns.add(transport)

    def get_buffer(self, sizehint: int) -> bytearray:
        return self.shared.buf

    def buffer_updated(self, nbytes: int) -> None:
        self.transport.write(memoryview(self.shared.buf)[:nbytes])
        if self.transport.get_write_buffer_size():
            self.shared.taken()

    def eof_received(self) -> bool:
        return False

    def pause_writing(self) -> None:
        self.transport.pause_reading()

    def resume_writing(self) -> None:
        self.transport.resume_reading()

    def connection_lost(self, exc: Exception | None) -> None:
        self.conns.discard(self.transport)


class AsyncioServer(Server):
    name = "asyncio"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.conns: set[asyncio.BaseTransport] = set()  # aborted at shutdown
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None

    def serve(self, sock: socket.socket) -> None:
        asyncio.run(self._main(sock))

    def shutdown(self) -> None:
        super().shutdown()
        loop, stop = self._loop, self._stop
        if loop is not None and stop is not None:
            try:
                loop.call_soon_threadsafe(stop.set)
            except RuntimeError:
                pass  # loop already closed

    async def _main(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        self._loop = loop
        for signum in (signal.SIGTERM, signal.SIGINT):
            loop.add_signal_handler(signum, self.shutdown)
        if self.stopping:
            return
        acceptor = asyncio.create_task(self._accept_loop(sock))
        stopped = asyncio.create_task(self._stop.wait())
        try:
            await asyncio.wait({acceptor, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if acceptor.done():
                acceptor.result()  # a permanent accept error: let it end the server
        finally:
            acceptor.cancel()
            stopped.cancel()
            for transport in list(self.conns):
                transport.abort()
            await asyncio.sleep(0)

    async def _accept_loop(self, sock: socket.socket) -> None:
        loop = asyncio.get_running_loop()
        backoff = AcceptBackoff()
        while True:
            try:
                conn, _ = await loop.sock_accept(sock)
            except OSError as err:
                await asyncio.sleep(backoff.failed(err))
                continue
            backoff.succeeded()
            try:
                await self.start_conn(conn)
            except OSError:
                conn.close()  # reset before we could set it up: nothing to serve

    async def start_conn(self, conn: socket.socket) -> None:
        """Echo on the accepted ``conn``; its transport is in ``conns`` until it is lost."""
        shared = self._read_buffer
        await asyncio.get_running_loop().connect_accepted_socket(
            lambda: EchoProtocol(self.conns, shared), conn
        )

    @functools.cached_property
    def _read_buffer(self) -> ReadBuffer:
        return ReadBuffer()
