"""A server that accepts every connection, reads what arrives, and never echoes."""

import json
import os
import selectors
import signal
import socket
import sys

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4096)
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
print(json.dumps({"event": "listening", "strategy": "silent", "host": "127.0.0.1",
                  "port": ls.getsockname()[1], "pid": os.getpid()}), flush=True)
while True:
    for key, _ in sel.select():
        if key.fileobj is ls:
            c, _ = ls.accept()
            sel.register(c, selectors.EVENT_READ)
        elif not key.fileobj.recv(65536):
            sel.unregister(key.fileobj)
            key.fileobj.close()
