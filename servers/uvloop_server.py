"""uvloop: the asyncio strategy's protocol and accept loop on uvloop's event loop (libuv).

Everything but the loop is :class:`~servers.asyncio_server.AsyncioServer`, so the two
differ only in the loop. uvloop is optional (``pip install -e '.[peers]'``): without it
the strategy is listed, :meth:`UvloopServer.unavailable` says why, and
``python -m servers uvloop`` exits 2 with that line.
"""

from __future__ import annotations

import socket

from servers.asyncio_server import AsyncioServer

try:
    import uvloop
except ImportError as err:
    uvloop = None
    _MISSING = f"uvloop is not importable ({err}); install the extra: pip install -e '.[peers]'"


class UvloopServer(AsyncioServer):
    name = "uvloop"

    @classmethod
    def unavailable(cls) -> str | None:
        return _MISSING if uvloop is None else None

    def serve(self, sock: socket.socket) -> None:
        assert uvloop is not None, self.unavailable()
        uvloop.run(self._main(sock))
