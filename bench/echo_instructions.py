"""Server user-space instructions per echoed message, counted by valgrind (load-independent).

``python -m bench.echo_instructions [--servers asyncio,goroutine] [--rounds 20,120]``
``python -m bench.echo_instructions --paced CONNS:RATE [--seconds 2,6]``
``python -m bench.echo_instructions --idle CONNS [--seconds 2,6]``
``python -m bench.echo_instructions --pingpong`` (the count ``runner.py regress`` gates on)
``python -m bench.echo_instructions --paced CONNS:RATE --main-thread [--seconds 2,6]``

CPU time on a shared machine moves by tens of percent from run to run; an instruction count
does not. Each server runs in one process under ``valgrind --tool=callgrind``; the client
is a separate process outside valgrind, so only server instructions are counted and no GIL
is shared with the client. Two runs that differ only in length are differenced, which
cancels start-up, accepting and shutting down. Kernel work (the syscalls) is not counted.
goroutine runs with ``--procs`` (default 1). Workloads (64 B messages):

* saturated (default): 100 blocking connections in lock-step rounds (send on every
  connection, then read every echo). Under valgrind the server is the slow side, as in a
  closed-loop benchmark, so most rounds find all 100 messages waiting, for every server
  alike. Instructions per message.
* ``--paced CONNS:RATE``: CONNS connections, one message every 1/RATE s in turn (open
  loop), so the server is idle between messages. Instructions per message, including what
  the server spends idling between them (sysmon ticks, timers, wakeups): the light-load
  cost. RATE must stay well below what the server does under valgrind (~1k msg/s).
* ``--idle CONNS``: CONNS connections that send nothing. Instructions per second of an
  idle server.
* ``--pingpong``: one connection in strict ping-pong, each message sent only once the
  server's main thread has slept in ``epoll_wait`` for :data:`PINGPONG_GAP_S` (seen in
  ``/proc/PID/task/PID/wchan``; where the kernel does not show it, a fixed
  :data:`PINGPONG_FALLBACK_GAP_S` after each echo). So every message takes the same path
  (the poller wakes, read, write, the next read parks, a blocking poll) whatever the
  machine's load, and sysmon sleeps throughout. Only the main thread is counted (the one
  that runs the Gs at procs 1), between callgrind marks set by the main thread itself in
  signal handlers (:func:`_install_marks`), around :data:`PINGPONG` messages after
  :data:`PINGPONG_WARMUP` uncounted ones: the short window's count is subtracted from the
  long one's. In :mod:`bench.side`'s counting mode, with the allocator of
  ``bench/counting_alloc.c``, repeated counts of identical code agree to a few parts per
  million, and trees at other paths (other heap layouts) to 0.02%. This is the light-load
  cost per message, about twice the saturated one (the poll and the wake-up are paid by
  every message).

* ``--paced CONNS:RATE --main-thread``: the paced load, counted as the ping-pong is (the
  main thread only, between its own marks, the two windows of the two ``--seconds``
  differenced) after one echo on each connection. Differencing two whole runs, as
  ``--paced`` does, cancels start-up only when it costs the same both times; at 10,000
  connections a goroutine server's accept phase and the garbage collector moved the
  difference by more than the messages cost. Sysmon's thread is not counted.

The first three workloads count the whole process and first echo one message on each
connection, so the measured part starts with every connection accepted and served; they
move by a few percent from run to run (the machine decides how messages batch and how
often sysmon ticks).
"""

from __future__ import annotations

import argparse
import os
import re
import selectors
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

from bench import micro_count, side

ROOT = Path(__file__).resolve().parents[1]
CONNS = 100
MSG = b"m" * 64
REPLY_TIMEOUT_S = 60.0  # a paced client waits this long for the last echoes
PINGPONG = (100, 300)  # messages in the short and the long counted window
PINGPONG_WARMUP = 50  # messages before counting starts (the interpreter specialises)
PINGPONG_GAP_S = 0.002  # the server sleeps in epoll_wait at least this long per message
PINGPONG_FALLBACK_GAP_S = 0.01  # after each echo, where the kernel hides the server's wchan
WCHAN_PROBE_S = 0.0001  # how often the client looks whether the server sleeps in epoll
WCHAN_TIMEOUT_S = 10.0  # a server not seen in epoll_wait by then: the kernel hides wchan


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


def _polling(pid: int) -> bool:
    """Whether the main thread of process ``pid`` sleeps in ``epoll_wait`` (False if unknown)."""
    try:
        with open(f"/proc/{pid}/task/{pid}/wchan") as f:
            return "epoll" in f.read()
    except OSError:
        return False


def _await_poll(pid: int, timeout: float) -> bool:
    """Wait until the server's main thread sleeps in epoll_wait; False after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while not _polling(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(WCHAN_PROBE_S)
    return True


class _Pingpong:
    """Strict ping-pong on one connection, each message sent to a server idle in epoll."""

    def __init__(self, s: socket.socket, server_pid: int) -> None:
        self.s = s
        self.pid = server_pid
        self.wchan = True  # False once the kernel has not shown the server in epoll_wait

    def idle(self) -> None:
        """Return once the server has slept in epoll_wait for PINGPONG_GAP_S (or the
        fallback gap has passed, where its wait cannot be seen)."""
        if self.wchan and not _await_poll(self.pid, WCHAN_TIMEOUT_S):
            self.wchan = False
        time.sleep(PINGPONG_GAP_S if self.wchan else PINGPONG_FALLBACK_GAP_S)

    def run(self, n: int) -> None:
        for _ in range(n):
            self.idle()
            self.s.sendall(MSG)
            _read_echo(self.s)

    def mark(self, sig: int, ack: int) -> None:
        """Have the idle server's main thread take mark ``sig`` and wait until it has."""
        self.idle()
        os.kill(self.pid, sig)
        if os.read(ack, 1) != MARKS[sig]:
            raise SystemExit("echo_instructions: the server did not take its mark")


def _counted_pingpong(socks: list[socket.socket], warmup: int, n1: int, n2: int,
                      ack: int) -> None:
    pp = _Pingpong(socks[0], os.getppid())  # the server started this client
    pp.run(warmup)
    pp.mark(signal.SIGUSR1, ack)
    for n in (n1, n2):
        pp.run(n)
        pp.mark(signal.SIGUSR2, ack)


def _mark(pid: int, sig: int, ack: int) -> None:
    """Have the server's main thread take mark ``sig`` and wait until it has."""
    os.kill(pid, sig)
    if os.read(ack, 1) != MARKS[sig]:
        raise SystemExit("echo_instructions: the server did not take its mark")


def _counted_paced(socks: list[socket.socket], rate: float, s1: float, s2: float,
                   ack: int) -> None:
    for s in socks:  # every connection accepted and served once, uncounted
        s.sendall(MSG)
        _read_echo(s)
    pid = os.getppid()  # the server started this client
    _mark(pid, signal.SIGUSR1, ack)
    for seconds in (s1, s2):
        _paced(socks, rate, seconds)
        _mark(pid, signal.SIGUSR2, ack)


def _client(port: int, workload: str, ack: int | None = None) -> None:
    kind, *args = workload.split(":")
    if kind in ("pingpong", "pacedmarked") and ack is None:
        raise SystemExit(f"echo_instructions: a counted {kind} needs the marks' pipe")
    if kind == "pingpong":
        socks = _connect(port, 1)
        _counted_pingpong(socks, int(args[0]), int(args[1]), int(args[2]), ack)
    elif kind == "pacedmarked":
        socks = _connect(port, int(args[0]))
        _counted_paced(socks, float(args[1]), float(args[2]), float(args[3]), ack)
    elif kind == "rounds":
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


MARKS = {signal.SIGUSR1: b"z", signal.SIGUSR2: b"d"}


def _install_marks(marks: Path, ack_w: int) -> None:
    """SIGUSR1 starts counting from zero, SIGUSR2 dumps; each then writes its byte to ``ack_w``.
    The library's allocator is installed first (:func:`bench.micro_count.load_marks`).

    Python runs signal handlers in the main thread, so the marks are the main thread's
    (callgrind zeroes and dumps the calling thread's counts with ``--separate-threads``).
    The signal wakes the poller through the wakeup fd the server has set (both servers
    set one), so the handler runs as soon as the idle main thread returns from epoll_wait.
    """
    lib = micro_count.load_marks(marks)

    def start(signum, frame) -> None:
        lib.marks_start()
        lib.marks_zero()
        os.write(ack_w, MARKS[signum])

    def dump(signum, frame) -> None:
        lib.marks_dump()
        os.write(ack_w, MARKS[signum])

    signal.signal(signal.SIGUSR1, start)
    signal.signal(signal.SIGUSR2, dump)


def _serve(name: str, workload: str, procs: int, marks: Path | None = None) -> None:
    """Child mode: run server `name` in this process against a client process."""
    from servers import STRATEGIES
    from servers.base import Config, listen

    extra, fds = [], ()
    if marks is not None:
        ack_r, ack_w = os.pipe()
        _install_marks(marks, ack_w)
        extra, fds = ["--ack-fd", str(ack_r)], (ack_r,)
    cfg = Config(procs=procs) if name == "goroutine" else Config()
    srv = STRATEGIES[name](cfg)
    sock = listen(cfg)
    # Not traced by valgrind (no --trace-children): the client runs at full speed.
    client = subprocess.Popen([sys.executable, "-m", "bench.echo_instructions", "--client-port",
                               str(sock.getsockname()[1]), "--workload", workload, *extra],
                              cwd=ROOT, pass_fds=fds)

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


def start_pingpong(root: Path, marks: Path, workdir: Path, name: str = "goroutine",
                   messages: tuple[int, int] = PINGPONG) -> micro_count.Counting:
    """Start counting ``name``'s ping-pong (procs 1) in the tree at ``root``; the caller closes it.

    ``result()`` is the main thread's instructions per message; ``marks`` is
    :func:`bench.micro_count.build_marks`'s library.
    """
    n1, n2 = messages
    assert 0 < n1 < n2, "the long window must have more messages than the short one"
    out = workdir / f"echo-{name}-{uuid.uuid4().hex[:8]}.cg"
    argv = side.argv_for(root, "bench.echo_instructions", "--serve", name, "--procs", "1",
                         "--workload", f"pingpong:{PINGPONG_WARMUP}:{n1}:{n2}",
                         "--marks", str(marks), counting=True)
    return micro_count.start_argv(argv, out, messages, main_thread_only=True)


def pingpong_per_message(root: Path, marks: Path, workdir: Path, name: str = "goroutine",
                         messages: tuple[int, int] = PINGPONG) -> float:
    """Main-thread instructions per ping-pong message; CountError with a one-line reason."""
    c = start_pingpong(root, marks, workdir, name, messages)
    try:
        return c.result()
    finally:
        c.close()


def paced_main_thread_per_message(root: Path, marks: Path, workdir: Path, name: str,
                                  conns: int, rate: float, s1: float, s2: float) -> float:
    """Main-thread instructions per message of the paced load (``--main-thread``)."""
    m1, m2 = round(rate * s1), round(rate * s2)
    if not 0 < m1 < m2:
        raise micro_count.CountError("the long window must have more messages than the short")
    out = workdir / f"paced-{name}-{uuid.uuid4().hex[:8]}.cg"
    argv = side.argv_for(root, "bench.echo_instructions", "--serve", name, "--procs", "1",
                         "--workload", f"pacedmarked:{conns}:{rate}:{s1}:{s2}",
                         "--marks", str(marks), counting=True)
    c = micro_count.start_argv(argv, out, (m1, m2), main_thread_only=True)
    try:
        return c.result()
    finally:
        c.close()


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
    ap.add_argument("--pingpong", action="store_true",
                    help="one connection in ping-pong, the main thread counted between marks")
    ap.add_argument("--main-thread", action="store_true",
                    help="--paced: count the main thread between marks, not whole runs")
    ap.add_argument("--workload", help=argparse.SUPPRESS)
    ap.add_argument("--marks", type=Path, help=argparse.SUPPRESS)
    ap.add_argument("--ack-fd", type=int, help=argparse.SUPPRESS)
    ap.add_argument("n", nargs="?", type=int, help=argparse.SUPPRESS)
    args = ap.parse_args(argv)
    if args.serve:
        _serve(args.serve, args.workload or f"rounds:{args.n}", args.procs, args.marks)
        return 0
    if args.client_port:
        _client(args.client_port, args.workload, args.ack_fd)
        return 0
    if args.pingpong:
        return _print_pingpong(args.servers.split(","))
    try:
        kind, params = _workload(args)
    except ValueError as e:
        print(f"echo_instructions: {e}", file=sys.stderr)
        return 2
    if shutil.which("valgrind") is None:
        print("echo_instructions: valgrind not found", file=sys.stderr)
        return 2
    if args.main_thread:
        if kind != "paced":
            print("echo_instructions: --main-thread goes with --paced", file=sys.stderr)
            return 2
        return _print_paced_main_thread(args.servers.split(","), *params)
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


def _print_marked(names: list[str], count, what: str) -> int:
    """Print ``count(marks, workdir, name)`` for each server, counted between the main
    thread's marks; exit status 2 without valgrind or a C compiler, 1 on a failed count."""
    with tempfile.TemporaryDirectory(prefix="echo-instructions-") as tmp:
        why, marks = micro_count.unavailable(Path(tmp))
        if why:
            print(f"echo_instructions: {why}", file=sys.stderr)
            return 2
        for name in names:
            try:
                v = count(marks, Path(tmp), name)
            except micro_count.CountError as e:
                print(f"echo_instructions: {name}: {e}", file=sys.stderr)
                return 1
            print(f"{name}: {v:.1f} main-thread instructions/message {what}", flush=True)
    return 0


def _print_paced_main_thread(names: list[str], conns: int, rate: float, s1: float,
                             s2: float) -> int:
    return _print_marked(
        names, lambda marks, tmp, name: paced_main_thread_per_message(
            ROOT, marks, tmp, name, conns, rate, s1, s2),
        f"at {rate:g} msg/s over {conns} connections")


def _print_pingpong(names: list[str]) -> int:
    return _print_marked(
        names, lambda marks, tmp, name: pingpong_per_message(ROOT, marks, tmp, name),
        "in ping-pong")


if __name__ == "__main__":
    sys.exit(main())
