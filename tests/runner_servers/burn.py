"""An echo server that burns a known CPU time per echoed message, single-threaded.

``burn.py SECONDS [AFFINITY_FILE]``: what it receives is echoed after SECONDS of CPU time
(``time.thread_time``: a busy machine stretches the wall time, not the CPU time) for each
64-byte message in it (the loadgen's default size; messages that queued up while the
server was busy arrive in one read).
With AFFINITY_FILE it writes the CPUs it may run on there, once it is listening.
"""

import json
import os
import selectors
import signal
import socket
import sys
import time

burn = float(sys.argv[1])
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        json.dump(sorted(os.sched_getaffinity(0)), f)
signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
ls = socket.socket()
ls.bind(("127.0.0.1", 0))
ls.listen(4096)
ls.setblocking(False)
sel = selectors.DefaultSelector()
sel.register(ls, selectors.EVENT_READ)
print(json.dumps({"event": "listening", "strategy": "burn", "host": "127.0.0.1",
                  "port": ls.getsockname()[1], "pid": os.getpid()}), flush=True)
while True:
    for key, _ in sel.select():
        if key.fileobj is ls:
            try:
                c, _ = ls.accept()
            except BlockingIOError:
                continue
            sel.register(c, selectors.EVENT_READ)
            continue
        c = key.fileobj
        try:
            data = c.recv(65536)
        except OSError:
            data = b""
        if not data:
            sel.unregister(c)
            c.close()
            continue
        t = time.thread_time()
        while time.thread_time() - t < burn * -(-len(data) // 64):
            pass
        c.setblocking(True)
        c.sendall(data)
        c.setblocking(False)
