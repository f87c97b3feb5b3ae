"""thread: one OS thread per connection, the main thread accepting.

The stack size of every connection thread is ``--thread-stack`` KiB (default 256): at
10,000 connections it decides how much address space, and how many touched stack
pages, the server holds. On ``shutdown()`` the main thread stops accepting and shuts
every open connection down, which makes each blocked ``recv``/``sendall`` return; it
then joins the threads (up to 4 s; they are daemonic, so a stuck one cannot keep the
process alive past exit).
"""

from __future__ import annotations

import socket
import threading
import time

from servers.base import BlockingServer, Config, echo_blocking

JOIN_TIMEOUT = 4.0


class ThreadServer(BlockingServer):
    name = "thread"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self._lock = threading.Lock()
        self._conns: dict[socket.socket, threading.Thread] = {}

    def serve(self, sock: socket.socket) -> None:
        threading.stack_size(self.config.thread_stack_kib * 1024)
        try:
            while (conn := self.accept(sock)) is not None:
                self._start(conn)
        finally:
            sock.close()
            self._close_all()
            deadline = time.monotonic() + JOIN_TIMEOUT
            with self._lock:
                threads = list(self._conns.values())
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))

    def _start(self, conn: socket.socket) -> None:
        thread = threading.Thread(target=self._handle, args=(conn,), daemon=True)
        with self._lock:
            self._conns[conn] = thread
        try:
            thread.start()
        except RuntimeError as err:  # "can't start new thread": out of memory or tasks
            with self._lock:
                del self._conns[conn]
            conn.close()
            self.wait(timeout=self._backoff.pause(f"thread error: {err}"))

    def _handle(self, conn: socket.socket) -> None:
        try:
            echo_blocking(conn)
        finally:
            # Forget before closing, so _close_all never shuts down a reused descriptor.
            with self._lock:
                del self._conns[conn]
            conn.close()

    def _close_all(self) -> None:
        with self._lock:
            for conn in self._conns:
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
