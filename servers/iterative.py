"""iterative: one connection at a time -- accept, echo until EOF, close, accept the next.

Every other client waits in the listen queue (connected by the kernel, unserved) until
the one being served closes. ``shutdown()`` shuts the current connection down, so a
``recv`` or ``sendall`` blocked in it returns at once.
"""

from __future__ import annotations

import socket

from servers.base import BlockingServer, echo_blocking


class IterativeServer(BlockingServer):
    name = "iterative"

    _conn: socket.socket | None = None

    def serve(self, sock: socket.socket) -> None:
        while (conn := self.accept(sock)) is not None:
            self._conn = conn
            try:
                if not self.stopping:
                    echo_blocking(conn)
            finally:
                self._conn = None
                conn.close()

    def shutdown(self) -> None:
        super().shutdown()
        conn = self._conn
        if conn is not None:
            try:
                conn.shutdown(socket.SHUT_RDWR)
            except OSError:
                pass
