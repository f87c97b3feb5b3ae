"""An echo server that prints nothing: ``quiet.py PORT`` listens on 127.0.0.1:PORT
(threads, one per connection) until SIGTERM."""

import signal
import socket
import sys
import threading

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ls = socket.socket()
ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
ls.bind(("127.0.0.1", int(sys.argv[1])))
ls.listen(1024)


def echo(c: socket.socket) -> None:
    with c:
        while data := c.recv(65536):
            c.sendall(data)


while True:
    conn, _ = ls.accept()
    threading.Thread(target=echo, args=(conn,), daemon=True).start()
