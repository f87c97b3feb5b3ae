"""Server user-space instructions per echoed message, counted by valgrind (load-independent).

``python -m bench.echo_instructions [--servers asyncio,goroutine] [--rounds 20,120]``
``python -m bench.echo_instructions --paced CONNS:RATE [--seconds 2,6]``
``python -m bench.echo_instructions --idle CONNS [--seconds 2,6]``

CPU time on a shared machine moves by tens of percent from run to run; an instruction count
does not. Each server runs in one process under ``valgrind --tool=callgrind``; the client
is a separate process outside valgrind, so only server instructions are counted and no GIL
is shared with the client. Two runs that differ only in length are differenced, which
cancels start-up, accepting and shutting down. Kernel work (the syscalls) is not counted.
goroutine runs with ``--procs`` (default 1). Workloads (64 B messages):

* saturated (default): 100 blocking connections in lock-step rounds (send on every
  connection, then read every echo). Under valgrind the server is the slow side, as in a
  closed-loop benchmark, so every round finds all 100 messages waiting, for every server
  alike, and the count barely moves from run to run. Instructions per message.
* ``--paced CONNS:RATE``: CONNS connections, one message every 1/RATE s in turn (open
  loop), so the server is idle between messages. Instructions per message, including what
  the server spends idling between them (sysmon ticks, timers, wakeups): the light-load
  cost. RATE must stay well below what the server does under valgrind (~1k msg/s).
* ``--idle CONNS``: CONNS connections that send nothing. Instructions per second of an
  idle server.

Every workload first echoes one message on each connection, so the timed part starts with
every connection accepted and served.
"""

from __future__ import annotations

import argparse
import re
import selectors
import shutil
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CONNS = 100
MSG = b"m" * 64
REPLY_TIMEOUT_S = 60.0  # a paced client waits this long for the last echoes


def _connect(port: int, n: int) -> list[socket.socket]:
    socks = [socket.create_connection(("127.0.0.1", port)) for _ in range(n)]
    _lockstep(socks, 1)  # every connection accepted and served before the timed part
    return socks


def _read_echo(s: socket.socket) -> None:
    got = 0
    while got < len(MSG):
        b = s.recv(len(MSG) - got)
        if not b:
            raise SystemExit("echo_instructions: server closed a connection")
        got += len(b)


def _lockstep(socks: list[socket.socket], rounds: int) -> None:
    for _ in range(rounds):
        for s in socks:
            s.sendall(MSG)
        for s in socks:
            _read_echo(s)


def _paced(socks: list[socket.socket], rate: float, seconds: float) -> None:
    """Send ``round(rate * seconds)`` messages, one every 1/rate s round-robin; read echoes."""
    n = round(rate * seconds)
    sel = selectors.DefaultSelector()
    for s in socks:
        s.setblocking(False)
        sel.register(s, selectors.EVENT_READ)
    sent = got = 0  # messages sent, bytes echoed
    t0 = time.monotonic()
    while got < n * len(MSG):
        now = time.monotonic()
        while sent < n and now >= t0 + sent / rate:
            socks[sent % len(socks)].send(MSG)  # 64 B into an idle socket: never partial
            sent += 1
        if sent < n:
            timeout = max(0.0, t0 + sent / rate - now)
        else:
            timeout = t0 + seconds + REPLY_TIMEOUT_S - now
            if timeout <= 0.0:
                raise SystemExit(f"echo_instructions: {n - got // len(MSG)} echoes never came")
        for key, _ in sel.select(timeout):
            b = key.fileobj.recv(65536)
            if not b:
                raise SystemExit("echo_instructions: server closed a connection")
            got += len(b)
    sel.close()


def _client(port: int, workload: str) -> None:
    kind, *args = workload.split(":")
    if kind == "rounds":
        socks = _connect(port, CONNS)
        _lockstep(socks, int(args[0]))
    elif kind == "paced":
        socks = _connect(port, int(args[0]))
        _paced(socks, float(args[1]), float(args[2]))
    elif kind == "idle":
        socks = _connect(port, int(args[0]))
        time.sleep(float(args[1]))
    else:
        raise SystemExit(f"echo_instructions: unknown workload {workload!r}")
    for s in socks:
        s.close()


def _serve(name: str, workload: str, procs: int) -> None:
    """Child mode: run server `name` in this process against a client process."""
    from servers import STRATEGIES
    from servers.base import Config, listen

    cfg = Config(procs=procs) if name == "goroutine" else Config()
    srv = STRATEGIES[name](cfg)
    sock = listen(cfg)
    # Not traced by valgrind (no --trace-children): the client runs at full speed.
    client = subprocess.Popen([sys.executable, "-m", "bench.echo_instructions", "--client-port",
                               str(sock.getsockname()[1]), "--workload", workload], cwd=ROOT)

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


def serve_argv(name: str, procs: int = 1) -> list[str]:
    """The command that runs server ``name`` as a counted child (append the workload)."""
    return [sys.executable, "-m", "bench.echo_instructions", "--serve", name,
            "--procs", str(procs)]


def per_message(argv: list[str], r1: int, r2: int) -> float:
    """Saturated: instructions per message of ``argv`` (``serve_argv``) over r2 - r1 rounds."""
    a = _count([*argv, str(r1)])
    b = _count([*argv, str(r2)])
    return (b - a) / ((r2 - r1) * CONNS)


def paced_per_message(argv: list[str], conns: int, rate: float, s1: float, s2: float) -> float:
    """Light load: instructions per message at ``rate`` msg/s over ``conns`` connections."""
    a = _count([*argv, "--workload", f"paced:{conns}:{rate}:{s1}"])
    b = _count([*argv, "--workload", f"paced:{conns}:{rate}:{s2}"])
    return (b - a) / (round(rate * s2) - round(rate * s1))


def idle_per_second(argv: list[str], conns: int, s1: float, s2: float) -> float:
    """Idle: instructions per second of a server holding ``conns`` silent connections."""
    a = _count([*argv, "--workload", f"idle:{conns}:{s1}"])
    b = _count([*argv, "--workload", f"idle:{conns}:{s2}"])
    return (b - a) / (s2 - s1)


def _pair(text: str, what: str) -> tuple[float, float]:
    """``"2,6"`` -> ``(2.0, 6.0)``; ValueError with a one-line reason otherwise."""
    try:
        a, b = (float(x) for x in text.split(","))
    except ValueError:
        raise ValueError(f"{what} wants two numbers like 2,6, not {text!r}") from None
    if not 0 <= a < b:
        raise ValueError(f"{what} wants 0 <= first < second, not {text!r}")
    return a, b


def _workload(args: argparse.Namespace) -> tuple[str, tuple]:
    """The measurement the command line asks for; ValueError with a one-line reason."""
    if args.procs < 1:
        raise ValueError("--procs must be >= 1")
    if args.paced:
        try:
            conns, rate = args.paced.split(":")
            conns_n, rate_f = int(conns), float(rate)
        except ValueError:
            raise ValueError(f"--paced wants CONNS:RATE, not {args.paced!r}") from None
        if conns_n < 1 or rate_f <= 0:
            raise ValueError(f"--paced wants CONNS >= 1 and RATE > 0, not {args.paced!r}")
        return "paced", (conns_n, rate_f, *_pair(args.seconds, "--seconds"))
    if args.idle is not None:
        if args.idle < 1:
            raise ValueError("--idle wants CONNS >= 1")
        return "idle", (args.idle, *_pair(args.seconds, "--seconds"))
    r1, r2 = _pair(args.rounds, "--rounds")
    return "rounds", (int(r1), int(r2))


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.echo_instructions")
    ap.add_argument("--servers", default="asyncio,goroutine")
    ap.add_argument("--procs", type=int, default=1, help="goroutine's procs (default 1)")
    ap.add_argument("--rounds", default="20,120", help="saturated: the two round counts")
    ap.add_argument("--paced", metavar="CONNS:RATE", help="light load: RATE msg/s over CONNS")
    ap.add_argument("--idle", metavar="CONNS", type=int, help="idle: CONNS silent connections")
    ap.add_argument("--seconds", default="2,6", help="paced/idle: the two durations")
    ap.add_argument("--serve", help=argparse.SUPPRESS)
    ap.add_argument("--client-port", type=int, help=argparse.SUPPRESS)
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    ap.add_argument("n", nargs="?", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.workload or f"rounds:{args.n}", args.procs)
        return 0
    if args.client_port:
        _client(args.client_port, args.workload)
        return 0
    try:
        kind, params = _workload(args)
    except ValueError as e:
        print(f"echo_instructions: {e}", file=sys.stderr)
        return 2
    if shutil.which("valgrind") is None:
        print("echo_instructions: valgrind not found", file=sys.stderr)
        return 2
    for name in args.servers.split(","):
        me = serve_argv(name, args.procs)
        if kind == "paced":
            conns, rate, s1, s2 = params
            print(f"{name}: {paced_per_message(me, conns, rate, s1, s2):.0f} server "
                  f"instructions/message at {rate:g} msg/s over {conns} connections")
        elif kind == "idle":
            conns, s1, s2 = params
            print(f"{name}: {idle_per_second(me, conns, s1, s2):.0f} server "
                  f"instructions/second idle with {conns} connections")
        else:
            print(f"{name}: {per_message(me, *params):.0f} server instructions/message")
    return 0


if __name__ == "__main__":
    sys.exit(main())
