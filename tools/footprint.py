"""``python -m tools.footprint STRATEGY``: a server's memory at rest and under idle connections,
and how it shuts down.

Starts ``python -m servers STRATEGY --port 0``, then measures, with psutil over the
server's whole process tree (``bench.sampler.footprint``, the runner's own reading):

* memory idle, and with ``--connections`` idle connections open, each one having echoed
  one byte (fork: PSS summed over the tree -- the honest figure for copy-on-write
  children -- beside the RSS sum; others: RSS);
* with ``--term-connections`` connections open, the time from SIGTERM to exit, the exit
  code, and how many of the server's processes are left after it exited (must be 0).

The iterative server serves one connection at a time: the rest wait in its listen queue,
and ``served`` says so. Prints one ``name: value`` line per figure, or one JSON object
with ``--json``. Exit 0 when measured, 2 on bad arguments, 1 if the server failed.
"""

from __future__ import annotations

import argparse
import json
import resource
import selectors
import shlex
import signal
import socket
import sys
import tempfile
import time
from pathlib import Path

import psutil

from bench import UsageError
from bench.sampler import footprint
from bench.server_proc import Child, ServerStartError, wait_listening
from common.cli import Parser as _Parser

ROOT = Path(__file__).resolve().parents[1]
SETTLE_S = 1.0
STALL_S = 3.0


def parse_args(argv: list[str]) -> argparse.Namespace:
    p = _Parser(prog="python -m tools.footprint", description=__doc__.splitlines()[0])
    p.add_argument("strategy")
    p.add_argument("--connections", type=int, default=1000, help="idle connections (1000)")
    p.add_argument("--term-connections", type=int, default=100,
                   help="connections open at SIGTERM (100)")
    p.add_argument("--server-args", default="", help='extra server arguments, e.g. "--procs 2"')
    p.add_argument("--json", action="store_true", help="print one JSON object")
    args = p.parse_args(argv)
    if args.connections < 0 or args.term_connections < 0:
        raise UsageError("--connections and --term-connections must be >= 0")
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = max(args.connections, args.term_connections) + 64
    if need > hard:
        raise UsageError(f"{need} descriptors needed, the hard limit is {hard}: use fewer")
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    return args


def open_served(port: int, n: int) -> tuple[list[socket.socket], int]:
    """Open ``n`` connections, send one byte on each; return them and how many echoed it.

    Waits until every echo is back or none has come for ``STALL_S`` seconds (the
    iterative server answers only the first).
    """
    conns = []
    for _ in range(n):
        c = socket.create_connection(("127.0.0.1", port), timeout=10)
        c.sendall(b"x")
        c.setblocking(False)
        conns.append(c)
    sel = selectors.DefaultSelector()
    for c in conns:
        sel.register(c, selectors.EVENT_READ)
    served = 0
    while served < n:
        ready = sel.select(STALL_S)
        if not ready:
            break
        for key, _ in ready:
            if key.fileobj.recv(1) == b"x":
                served += 1
            sel.unregister(key.fileobj)
    sel.close()
    return conns, served


def close_all(conns: list[socket.socket]) -> None:
    for c in conns:
        c.close()


def measure(args: argparse.Namespace, workdir: Path) -> dict:
    argv = [sys.executable, "-m", "servers", args.strategy, "--port", "0",
            *shlex.split(args.server_args)]
    child = Child(argv, workdir, "server", cwd=ROOT)
    fork = args.strategy == "fork"
    out: dict = {"strategy": args.strategy, "server_args": args.server_args}
    try:
        port = wait_listening(child, 15)["port"]
        time.sleep(SETTLE_S)
        idle = footprint(child.pid)
        out["idle_rss_mib"] = idle["rss"] / 2**20
        if fork:
            out["idle_pss_mib"] = idle["pss"] / 2**20

        conns, served = open_served(port, args.connections)
        time.sleep(SETTLE_S)
        loaded = footprint(child.pid)
        close_all(conns)
        key = "pss" if fork else "rss"
        out.update({
            "connections": args.connections,
            "served": served,
            "conn_rss_mib": loaded["rss"] / 2**20,
            "conn_pss_mib": loaded["pss"] / 2**20 if fork else None,
            "per_conn_kib": ((loaded[key] - idle[key]) / 1024 / args.connections
                             if args.connections else None),
            "conn_processes": loaded["procs"],
            "conn_threads": loaded["threads"],
        })

        time.sleep(SETTLE_S)
        conns, served = open_served(port, args.term_connections)
        time.sleep(0.5)
        tree = child.tree()
        started = time.monotonic()
        child.proc.send_signal(signal.SIGTERM)
        try:
            rc = child.proc.wait(10)
        except Exception:
            rc = None
        took = time.monotonic() - started
        left = [p for p in tree[1:] if _alive(p)]
        close_all(conns)
        out.update({
            "term_connections": args.term_connections,
            "term_served": served,
            "term_processes": len(tree),
            "term_exit_s": took,
            "term_exit_code": rc,
            "left_after_exit": len(left),
        })
    finally:
        if child.poll() is None:
            child.kill()
    return out


def _alive(p: psutil.Process) -> bool:
    try:
        return p.is_running() and p.status() != psutil.STATUS_ZOMBIE
    except psutil.Error:
        return False


def render(out: dict) -> str:
    lines = []
    for name, value in out.items():
        if isinstance(value, float):
            value = f"{value:.3f}" if name.endswith("_s") else f"{value:.1f}"
        lines.append(f"{name}: {value}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
    except UsageError as err:
        print(f"footprint: {err}", file=sys.stderr)
        return 2
    with tempfile.TemporaryDirectory(prefix="footprint-") as tmp:
        try:
            out = measure(args, Path(tmp))
        except ServerStartError as err:
            code = 2 if "exited (code 2)" in str(err) else 1
            print(f"footprint: {err}", file=sys.stderr)
            return code
        except OSError as err:
            print(f"footprint: {err}", file=sys.stderr)
            return 1
    print(json.dumps(out) if args.json else render(out), flush=True)
    ok = out["term_exit_code"] == 0 and out["left_after_exit"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
