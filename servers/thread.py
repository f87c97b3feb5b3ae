"""thread: one OS thread per connection, the main thread accepting.

The stack size of every connection thread is ``--thread-stack`` KiB (default 256): at
10,000 connections it decides how much address space, and how many touched stack
pages, the server holds. On ``shutdown()`` the main thread stops accepting and shuts
every open connection down, which makes each blocked ``recv``/``sendall`` return, and
joins the threads, all within ``SHUTDOWN_BUDGET`` seconds.

Edge case, 10,000 busy connections: every ``shutdown()`` call releases the GIL, and the
thousands of threads it wakes compete to take it back, so the main thread can be held off
for many seconds (measured here: SIGTERM to exit past 5 s in 2 of 3 runs at 10k). When
the budget runs out, the server ends the process with ``os._exit(0)``: the kernel closes
every remaining connection and the daemonic threads end with the process.
"""

from __future__ import annotations

import os
import socket
import sys
import threading
import time

from servers.base import BlockingServer, Config, echo_blocking

SHUTDOWN_BUDGET = 3.0  # seconds from leaving the accept loop; the contract allows 5


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
            deadline = time.monotonic() + SHUTDOWN_BUDGET
            self._close_all(deadline)
            with self._lock:
                threads = list(self._conns.values())
            for thread in threads:
                thread.join(max(0.0, deadline - time.monotonic()))
            if any(thread.is_alive() for thread in threads):
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(0)

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

    def _close_all(self, deadline: float) -> None:
        # Under the lock: woken threads wait on it (off the GIL) rather than closing a
        # descriptor we are about to shut down.
        with self._lock:
            for conn in self._conns:
                if time.monotonic() > deadline:
                    return
                try:
                    conn.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass
