"""Starting a server under test as a subprocess, and a client that talks to it."""

from __future__ import annotations

import json
import os
import selectors
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import psutil

ROOT = Path(__file__).resolve().parents[2]


@dataclass
class ServerProcess:
    """A ``python -m servers ...`` child and what its listening line said."""

    proc: subprocess.Popen
    line: dict
    stderr_path: Path
    argv: list[str] = field(default_factory=list)

    @property
    def pid(self) -> int:
        return self.proc.pid

    @property
    def port(self) -> int:
        return self.line["port"]

    @property
    def ps(self) -> psutil.Process:
        return psutil.Process(self.proc.pid)

    def stderr(self) -> str:
        return self.stderr_path.read_text(errors="replace")

    def connect(self, timeout: float = 10.0) -> socket.socket:
        return socket.create_connection(("127.0.0.1", self.port), timeout=timeout)

    def tree(self) -> list[psutil.Process]:
        """The server process and all its descendants that still exist."""
        try:
            top = psutil.Process(self.proc.pid)
            return [top, *top.children(recursive=True)]
        except psutil.NoSuchProcess:
            return []

    def tree_rss(self) -> int:
        total = 0
        for p in self.tree():
            try:
                total += p.memory_info().rss
            except psutil.NoSuchProcess:
                pass
        return total

    def kill(self) -> None:
        """Kill the whole tree (children first) and reap the server; safe to call twice."""
        for p in reversed(self.tree()):
            try:
                p.kill()
            except psutil.NoSuchProcess:
                pass
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        if self.proc.stdout:
            self.proc.stdout.close()


def server_command(argv: list[str]) -> list[str]:
    return [sys.executable, "-m", "servers", *argv]


def start_server(argv: list[str], stderr_path: Path, timeout: float = 15.0) -> ServerProcess:
    """Start ``python -m servers *argv`` and wait for its listening line."""
    with open(stderr_path, "wb") as err:
        proc = subprocess.Popen(
            server_command(argv), cwd=ROOT, stdout=subprocess.PIPE, stderr=err,
            stdin=subprocess.DEVNULL,
        )
    line = read_line(proc, timeout)
    server = ServerProcess(proc, {}, stderr_path, argv)
    try:
        server.line = json.loads(line)
    except ValueError:
        server.kill()
        raise AssertionError(
            f"{argv}: no listening line within {timeout}s, got {line!r}; "
            f"stderr: {stderr_path.read_text(errors='replace')[-2000:]}"
        ) from None
    return server


def read_line(proc: subprocess.Popen, timeout: float) -> bytes:
    """One line of ``proc``'s stdout, or whatever arrived before ``timeout`` or EOF."""
    fd = proc.stdout.fileno()
    sel = selectors.DefaultSelector()
    sel.register(fd, selectors.EVENT_READ)
    data = b""
    deadline = time.monotonic() + timeout
    while b"\n" not in data:
        left = deadline - time.monotonic()
        if left <= 0 or not sel.select(left):
            break
        chunk = os.read(fd, 4096)
        if not chunk:
            break
        data += chunk
    sel.close()
    return data.split(b"\n", 1)[0]


def roundtrip(
    sock: socket.socket, data: bytes, half_close: bool = False, timeout: float = 30.0
) -> bytes:
    """Send ``data`` while reading the echo; return what came back.

    Sending and reading interleave, so a server with backpressure never deadlocks us.
    Reads until ``len(data)`` bytes came back, or -- with ``half_close`` -- until EOF
    after ``shutdown(SHUT_WR)`` following the last byte.
    """
    sock.setblocking(False)
    sel = selectors.DefaultSelector()
    sel.register(sock, selectors.EVENT_READ | selectors.EVENT_WRITE)
    view = memoryview(data)
    sent = 0
    got = bytearray()
    deadline = time.monotonic() + timeout
    if half_close and not data:
        sock.shutdown(socket.SHUT_WR)
    try:
        while True:
            if not half_close and len(got) >= len(data):
                break
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"echo incomplete: sent {sent}, got {len(got)} of {len(data)}")
            for _, mask in sel.select(left):
                if mask & selectors.EVENT_WRITE and sent < len(data):
                    try:
                        sent += sock.send(view[sent : sent + 256 * 1024])
                    except BlockingIOError:
                        pass
                    if sent == len(data):
                        sel.modify(sock, selectors.EVENT_READ)
                        if half_close:
                            sock.shutdown(socket.SHUT_WR)
                if mask & selectors.EVENT_READ:
                    try:
                        chunk = sock.recv(256 * 1024)
                    except BlockingIOError:
                        continue
                    if not chunk:
                        return bytes(got)
                    got += chunk
    finally:
        sel.close()
        sock.setblocking(True)
        sock.settimeout(timeout)
    return bytes(got)


def wait_closed(sock: socket.socket, timeout: float) -> str:
    """Read until the server closes ``sock``; return "eof", "reset" or "open"."""
    sock.settimeout(timeout)
    try:
        while sock.recv(65536):
            pass
        return "eof"
    except ConnectionResetError:
        return "reset"
    except TimeoutError:
        return "open"
