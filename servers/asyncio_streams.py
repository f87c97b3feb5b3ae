"""asyncio-streams: one coroutine per connection over asyncio streams, as ``go handle(conn)``.

The handler is the one ``asyncio.start_server`` is written for: ``read`` up to 64 KiB,
``write`` it, ``await drain()``, until ``read`` returns EOF, then ``close``. Each connection
is a :class:`asyncio.StreamReader`/:class:`asyncio.StreamWriter` pair and a task.

Accepting is :class:`~servers.asyncio_server.AsyncioServer`'s loop (the shared
:class:`~servers.base.AcceptBackoff`), and the pair is built with
``asyncio.open_connection(sock=conn)`` -- the same protocol ``start_server`` builds. (On
EMFILE, ``start_server``'s own accept loop tries ``backlog`` (100) accepts in a row, logging
a traceback for each, then waits a fixed 1 s.)

Backpressure: ``drain`` waits while the transport holds more than its high-water mark
(64 KiB), so the handler does not read; the reader stops reading the socket once it holds
more than twice its 64 KiB limit. A connection so buffers at most those plus one socket
read (asyncio reads up to 256 KiB at a time), whatever the peer sends.
Half-close: the peer's EOF ends the loop after everything read was written; ``close``
sends what is still buffered, then closes. Shutdown aborts every transport, which ends
each handler's ``read``.
"""

from __future__ import annotations

import asyncio
import socket

from servers.asyncio_server import AsyncioServer
from servers.base import READ_SIZE, Config


class StreamsServer(AsyncioServer):
    name = "asyncio-streams"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.handlers: set[asyncio.Task[None]] = set()  # strong references: tasks are weak

    async def start_conn(self, conn: socket.socket) -> None:
        reader, writer = await asyncio.open_connection(sock=conn)
        self.conns.add(writer.transport)
        task = asyncio.create_task(self.handle(reader, writer))
        self.handlers.add(task)
        task.add_done_callback(self.handlers.discard)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while data := await reader.read(READ_SIZE):
                writer.write(data)
                await writer.drain()
        except OSError:
            pass  # reset or broken pipe
        finally:
            self.conns.discard(writer.transport)
            writer.close()
