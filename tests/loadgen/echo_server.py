"""Test echo servers, run as subprocesses:
`python echo_server.py MODE [--every N] [--size S] [--clean K] [--mss M] [--host H]`.

Prints one JSON line `{"event": "listening", "port": P, "pid": X}` when ready (as the
servers package does), then serves until SIGTERM, and then prints
`{"event": "stopped", "accepted": N, "peers": {ADDRESS: N}, "gathered": G}`: the
connections it accepted, in all and by the client's address, and (coalesce) the messages
that took more than one read to arrive.  Modes:
  echo     plain asyncio echo (fd soft limit raised to hard)
  corrupt  echo, but flips one byte of every Nth chunk written
  refuse   a bound socket that never listens: every connect is refused
  reset    echoes N chunks on a connection, then resets it (SO_LINGER 0)
  silent   accepts and reads, never answers
  stall    echo; SIGUSR1 makes it stop answering for 1 s (all connections), once
  split    echo, one byte per write, each flushed and followed by a turn of the loop
           (TCP_NODELAY): the echo comes back in many small pieces
  coalesce echo of whole messages of S bytes: what the reads of one message brought is
           gathered and written back in one write, whatever pieces it came in
  flip-first, flip-middle, flip-last
           echo with byte 0, S // 2 or S - 1 of every message of S bytes flipped (XOR
           0xFF), counted from the message boundaries whatever the reads; the first K
           messages the server sees (all connections) are echoed intact
With ``--mss M`` the listening socket advertises a maximum segment size of M bytes: the
client's kernel then sizes its send buffer from it (on loopback, from a 64 KiB MSS, it is
about 4 MB, and a 1 MiB send always goes in one call), so a client's send of a few
hundred KB is accepted only in part (the rest waits for the socket to be writable).
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


FLIP_AT = {"flip-first": lambda size: 0, "flip-middle": lambda size: size // 2,
           "flip-last": lambda size: size - 1}
MODES = ["echo", "corrupt", "refuse", "reset", "silent", "stall", "split", "coalesce",
         *FLIP_AT]


async def serve(mode: str, every: int, host: str, size: int, clean: int, mss: int) -> None:
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
    messages = 0  # flip modes: messages begun, all connections
    gathered = 0  # coalesce: messages that took more than one read
    flip_at = FLIP_AT[mode](size) if mode in FLIP_AT else -1

    def flip(data: bytes, pos: int) -> tuple[bytes, int]:
        """``data`` with the flipped byte of each message it holds flipped; ``pos`` is the
        offset of its first byte within its message; returns the offset after it."""
        nonlocal messages
        out = bytearray(data)
        i = 0
        while i < len(out):
            if pos == 0:
                messages += 1
            take = min(size - pos, len(out) - i)
            if messages > clean and pos <= flip_at < pos + take:
                out[i + flip_at - pos] ^= 0xFF
            pos = (pos + take) % size
            i += take
        return bytes(out), pos

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        nonlocal accepted, gathered
        accepted += 1
        peer = writer.get_extra_info("peername")[0]
        peers[peer] = peers.get(peer, 0) + 1
        served = 0
        pos = 0  # flip modes: offset in the current message
        pending = bytearray()  # coalesce: the current message's bytes so far
        reads = 0  # coalesce: the reads that brought them
        if mode == "split":
            writer.get_extra_info("socket").setsockopt(
                socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
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
                if mode == "split":
                    for i in range(len(data)):
                        writer.write(data[i:i + 1])
                        await writer.drain()
                        await asyncio.sleep(0)
                    continue
                if mode == "coalesce":
                    pending += data
                    reads += 1
                    while len(pending) >= size:
                        gathered += reads > 1
                        writer.write(bytes(pending[:size]))
                        del pending[:size]
                        reads = 1 if pending else 0
                    await writer.drain()
                    continue
                if flip_at >= 0:
                    data, pos = flip(data, pos)
                writer.write(data)
                await writer.drain()
        except (ConnectionError, OSError):
            pass
        finally:
            writer.close()

    if mss:  # set before listen: the accepted sockets advertise it in their SYN-ACK
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_MAXSEG, mss)
        sock.bind((host, 0))
        server = await asyncio.start_server(handle, sock=sock, backlog=4096)
    else:
        server = await asyncio.start_server(handle, host, 0, backlog=4096)
    ready(server.sockets[0].getsockname()[1])
    async with server:
        await stop.wait()
    print(json.dumps({"event": "stopped", "accepted": accepted, "peers": peers,
                      "gathered": gathered}), flush=True)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("mode", choices=MODES)
    p.add_argument("--every", type=int, default=10)
    p.add_argument("--size", type=int, default=64, help="message bytes (coalesce, flip-*)")
    p.add_argument("--clean", type=int, default=0,
                   help="flip-*: the first K messages are echoed intact")
    p.add_argument("--mss", type=int, default=0, help="TCP_MAXSEG of the listening socket")
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
    asyncio.run(serve(a.mode, a.every, a.host, a.size, a.clean, a.mss))


if __name__ == "__main__":
    main()
