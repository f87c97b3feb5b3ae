"""Open N concurrent connections to an echo server, echo a distinct message on each, close.

``python tests/servers/tenk_client.py --port P [--connections 10000] [--hold]``

One thread, one epoll (selectors): connects are non-blocking with at most ``--inflight`` in
progress, so the server's accept backlog is not overrun into SYN retransmits. Every
connection stays open until every echo has been checked byte for byte, so the server held
all N at once. Prints JSON lines on stdout: ``{"event": "connected", ...}`` once all are
established, ``{"event": "verified", ...}`` once every echo matched; with ``--hold`` it then
waits for a line on stdin before closing (so a caller can measure the server at N open
connections); last ``{"event": "done", ...}``. Exit 0 when every echo matched, 1 otherwise.
"""

from __future__ import annotations

import argparse
import errno
import json
import os
import resource
import selectors
import socket
import sys
import time


def _emit(event: str, **kw: object) -> None:
    print(json.dumps({"event": event, **kw}), flush=True)


def message(i: int) -> bytes:
    """The distinct message for connection i (32..95 bytes, content depends on i)."""
    head = f"conn {i:06d} ".encode()
    body = bytes((i * 7 + k * 13) % 251 for k in range(19 + i % 64))
    return head + body + b"\n"


class _Conn:
    __slots__ = ("i", "sock", "want", "got", "sent")

    def __init__(self, i: int, sock: socket.socket) -> None:
        self.i = i
        self.sock = sock
        self.want = message(i)
        self.got = bytearray()
        self.sent = 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="tenk_client")
    ap.add_argument("--host", default="127.0.0.1")
    ap.add_argument("--port", type=int, required=True)
    ap.add_argument("--connections", type=int, default=10000)
    ap.add_argument("--inflight", type=int, default=256)
    ap.add_argument("--timeout", type=float, default=60.0)
    ap.add_argument("--hold", action="store_true")
    args = ap.parse_args(argv)

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = args.connections + 64
    if soft < need:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(need, soft)), hard))
    deadline = time.monotonic() + args.timeout
    sel = selectors.EpollSelector()
    conns: list[_Conn] = []
    t0 = time.monotonic()

    # Phase 1: connect all, at most `inflight` at a time.
    pending: set[_Conn] = set()
    nxt = 0
    established = 0
    errors = 0
    while established < args.connections:
        if time.monotonic() > deadline:
            _emit("error", phase="connect", established=established)
            return 1
        while nxt < args.connections and len(pending) < args.inflight:
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.setblocking(False)
            err = s.connect_ex((args.host, args.port))
            c = _Conn(nxt, s)
            nxt += 1
            conns.append(c)
            if err in (0, errno.EISCONN):
                established += 1
            elif err == errno.EINPROGRESS:
                pending.add(c)
                sel.register(s, selectors.EVENT_WRITE, c)
            else:
                _emit("error", phase="connect", conn=c.i, errno=err)
                return 1
        for key, _ in sel.select(timeout=1.0):
            c = key.data
            err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
            sel.unregister(c.sock)
            pending.discard(c)
            if err:
                errors += 1
                _emit("error", phase="connect", conn=c.i, errno=err)
                return 1
            established += 1
    _emit("connected", connections=established, seconds=round(time.monotonic() - t0, 3))

    # Phase 2: send every message, read every echo, all connections open.
    t1 = time.monotonic()
    for c in conns:
        sel.register(c.sock, selectors.EVENT_READ | selectors.EVENT_WRITE, c)
    left = len(conns)
    while left:
        if time.monotonic() > deadline:
            _emit("error", phase="echo", unfinished=left)
            return 1
        for key, ev in sel.select(timeout=1.0):
            c = key.data
            if ev & selectors.EVENT_WRITE and c.sent < len(c.want):
                c.sent += c.sock.send(c.want[c.sent :])
                if c.sent == len(c.want):
                    sel.modify(c.sock, selectors.EVENT_READ, c)
            if ev & selectors.EVENT_READ:
                data = c.sock.recv(65536)
                if not data:
                    _emit("error", phase="echo", conn=c.i, reason="EOF before full echo")
                    return 1
                c.got += data
                if len(c.got) > len(c.want) or c.want[: len(c.got)] != c.got:
                    _emit("error", phase="echo", conn=c.i, reason="corrupt echo")
                    return 1
                if len(c.got) == len(c.want):
                    sel.unregister(c.sock)
                    left -= 1
    total = sum(len(c.want) for c in conns)
    _emit("verified", connections=len(conns), bytes=total,
          seconds=round(time.monotonic() - t1, 3))
    if args.hold:
        sys.stdin.readline()
    for c in conns:
        c.sock.close()
    sel.close()
    _emit("done", seconds=round(time.monotonic() - t0, 3), pid=os.getpid())
    return 0


if __name__ == "__main__":
    sys.exit(main())
