"""Test echo servers, run as subprocesses: `python echo_server.py MODE [--every N] [--host H]`.

Prints one JSON line `{"event": "listening", "port": P, "pid": X}` when ready (as the
servers package does), then serves until SIGTERM, and then prints
`{"event": "stopped", "accepted": N, "peers": {ADDRESS: N}}`: the connections it
accepted, in all and by the client's address.  Modes:
  echo     plain asyncio echo (fd soft limit raised to hard)
  corrupt  echo, but flips one byte of every Nth chunk written
  refuse   a bound socket that never listens: every connect is refused
  reset    echoes N chunks on a connection, then resets it (SO_LINGER 0)
  silent   accepts and reads, never answers
  stall    echo; SIGUSR1 makes it stop answering for 1 s (all connections), once
"""

import argparse
import asyncio
import json
import os
import resource
import signal
import socket
import struct
import sys


def ready(port: int) -> None:
    print(json.dumps({"event": "listening", "port": port, "pid": os.getpid()}), flush=True)


async def serve(mode: str, every: int, host: str) -> None:
    loop = asyncio.get_running_loop()
    stop = asyncio.Event()
    loop.add_signal_handler(signal.SIGTERM, stop.set)
    loop.add_signal_handler(signal.SIGINT, stop.set)
    stall = {"until": 0.0, "used": False}

    def on_usr1() -> None:
        if not stall["used"]:
            stall["used"] = True
            stall["until"] = loop.time() + 1.0

    loop.add_signal_handler(signal.SIGUSR1, on_usr1)
    chunks = {"n": 0}
    accepted = 0
    peers: dict[str, int] = {}

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted
        accepted += 1
        peer = writer.get_extra_info("peername")[0]
        peers[peer] = peers.get(peer, 0) + 1
        served = 0
        try:
            while True:
                data = await reader.read(65536)
                if not data:
                    break
                if mode == "silent":
                    continue
                if mode == "stall" and loop.time() < stall["until"]:
                    await asyncio.sleep(stall["until"] - loop.time())
                chunks["n"] += 1
                served += 1
                if mode == "corrupt" and chunks["n"] % every == 0:
                    data = bytes([data[0] ^ 0xFF]) + data[1:]
                if mode == "reset" and served > every:
                    sock = writer.get_extra_info("socket")
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                    writer.transport.abort()
                    return
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    server = await asyncio.start_server(handle, host, 0, backlog=4096)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await stop.wait()
    print(json.dumps({"event": "stopped", "accepted": accepted, "peers": peers}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=["echo", "corrupt", "refuse", "reset", "silent", "stall"])
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--host", default="127.0.0.1")
    a = p.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    if a.mode == "refuse":
        s = socket.socket()
        s.bind((a.host, 0))  # bound, never listening: connects get RST
        ready(s.getsockname()[1])
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
        signal.sigwait({signal.SIGTERM, signal.SIGINT})
        sys.exit(0)
    asyncio.run(serve(a.mode, a.every, a.host))


if __name__ == "__main__":
    main()
