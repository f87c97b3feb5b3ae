"""Announces a port on which nothing listens (bound, never listening), then waits."""

import json
import os
import signal
import socket
import sys
import time

signal.signal(signal.SIGTERM, lambda *_: sys.exit(0))
s = socket.socket()
s.bind(("127.0.0.1", 0))
print(json.dumps({"event": "listening", "strategy": "closed", "host": "127.0.0.1",
                  "port": s.getsockname()[1], "pid": os.getpid()}), flush=True)
time.sleep(600)
