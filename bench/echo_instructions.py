"""Server user-space instructions per echoed message, counted by valgrind (load-independent).

``python -m bench.echo_instructions [--servers asyncio,goroutine] [--rounds 20,120]``

CPU time on a shared machine moves by tens of percent from run to run; an instruction count
does not. Each server runs in one process under ``valgrind --tool=callgrind``; the client
(100 blocking connections, 64 B messages, lock-step rounds: send on every connection, then
read every echo) is a separate process outside valgrind, so only server instructions are
counted and no GIL is shared with the client. Under valgrind the server is the slow side,
as it is in a closed-loop benchmark, so every round finds all 100 messages waiting, for
every server alike, and the count barely moves from run to run. Two round counts are run
and differenced, which cancels start-up. Kernel work (the syscalls, the same for every
server) is not counted. goroutine runs with procs=1.
"""

from __future__ import annotations

import argparse
import re
import shutil
import socket
import subprocess
import sys
import threading
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONNS = 100


def _client(port: int, rounds: int) -> None:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(CONNS)]
    msg = b"m" * 64
    for _ in range(rounds):
        for s in socks:
            s.sendall(msg)
        for s in socks:
            got = 0
            while got < len(msg):
                got += len(s.recv(len(msg) - got))
    for s in socks:
        s.close()


def _serve(name: str, rounds: int) -> None:
    """Child mode: run server `name` in this process against a client process."""
    from servers import STRATEGIES
    from servers.base import Config, listen

    cfg = Config(procs=1) if name == "goroutine" else Config()
    srv = STRATEGIES[name](cfg)
    sock = listen(cfg)
    # Not traced by valgrind (no --trace-children): the client runs at full speed.
    client = subprocess.Popen([sys.executable, "-m", "bench.echo_instructions", "--client-port",
                               str(sock.getsockname()[1]), str(rounds)], cwd=ROOT)

    def wait_client() -> None:
        try:
            client.wait()
        finally:
            srv.shutdown()

    t = threading.Thread(target=wait_client)
    t.start()
    srv.serve(sock)
    t.join()
    if client.returncode != 0:
        raise SystemExit(f"echo_instructions: client failed ({client.returncode})")


def _count(argv: list[str]) -> int:
    r = subprocess.run(["valgrind", "--tool=callgrind", "--callgrind-out-file=/dev/null", *argv],
                       cwd=ROOT, capture_output=True, text=True, timeout=900)
    m = re.search(r"Collected : (\d+)", r.stderr)
    if r.returncode != 0 or m is None:
        raise SystemExit(f"echo_instructions: valgrind run failed: {r.stderr[-500:]}")
    return int(m.group(1))


def per_message(argv: list[str], r1: int, r2: int) -> float:
    a = _count([*argv, str(r1)])
    b = _count([*argv, str(r2)])
    return (b - a) / ((r2 - r1) * CONNS)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.echo_instructions")
    ap.add_argument("--servers", default="asyncio,goroutine")
    ap.add_argument("--rounds", default="20,120")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("n", nargs="?", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.n)
        return 0
    if args.client_port:
        _client(args.client_port, args.n)
        return 0
    if shutil.which("valgrind") is None:
        print("echo_instructions: valgrind not found", file=sys.stderr)
        return 2
    r1, r2 = (int(x) for x in args.rounds.split(","))
    me = [sys.executable, "-m", "bench.echo_instructions"]
    for name in args.servers.split(","):
        print(f"{name}: {per_message([*me, '--serve', name], r1, r2):.0f} "
              "server instructions/message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
