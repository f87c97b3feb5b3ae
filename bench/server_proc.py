"""Child processes of the runner (servers and the loadgen): start, watch, stop, clean up.

Every child runs in its own session (so its process group is its own and the terminal's
Ctrl-C reaches only the runner, which then stops the children itself), with stdout and
stderr going to files (no pipe can fill up and stall a child the runner is not reading).
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import time
from pathlib import Path

import psutil


class Child:
    """One subprocess in its own process group, its output captured in ``workdir``."""

    def __init__(
        self,
        argv: list[str],
        workdir: Path,
        name: str,
        cpus: list[int] | None = None,
        cwd: str | Path | None = None,
    ):
        self.argv = argv
        self.name = name
        self.stdout_path = workdir / f"{name}.out"
        self.stderr_path = workdir / f"{name}.err"
        with open(self.stdout_path, "wb") as out, open(self.stderr_path, "wb") as err:
            self.proc = subprocess.Popen(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=out,
                stderr=err,
                cwd=cwd,
                start_new_session=True,
            )
        self.pid = self.proc.pid
        # Applied before the interpreter in the child has started any thread or child:
        # both inherit it from here on.
        if cpus:
            try:
                os.sched_setaffinity(self.pid, cpus)
            except OSError:
                pass
        try:
            self.create_time = psutil.Process(self.pid).create_time()
        except psutil.Error:
            self.create_time = 0.0

    def poll(self) -> int | None:
        return self.proc.poll()

    def exit_info(self) -> dict:
        """``{"code", "signal"}`` of an exited child (one of them ``None``)."""
        rc = self.proc.returncode
        if rc is None:
            return {"code": None, "signal": None}
        return {"code": rc, "signal": None} if rc >= 0 else {"code": None, "signal": -rc}

    def describe_exit(self) -> str:
        info = self.exit_info()
        if info["signal"] is not None:
            return f"signal {signal.Signals(info['signal']).name}"
        return f"code {info['code']}"

    def stderr_tail(self, n: int = 1) -> str:
        """The last ``n`` non-empty lines of stderr, joined by `` | `` (one line)."""
        try:
            lines = self.stderr_path.read_text(errors="replace").splitlines()
        except OSError:
            return ""
        lines = [ln.strip() for ln in lines if ln.strip()]
        return " | ".join(lines[-n:])

    def tree(self) -> list[psutil.Process]:
        """The child and all its live descendants."""
        try:
            root = psutil.Process(self.pid)
            return [root, *root.children(recursive=True)]
        except psutil.Error:
            return []

    def stop(self, grace: float = 5.0) -> list[str]:
        """SIGTERM the child, wait ``grace`` s, then SIGKILL whatever of it is left.

        Returns the defects found: the child ignoring SIGTERM, and every process of its
        tree or process group still alive after it exited (each is killed).
        """
        defects: list[str] = []
        snapshot = self.tree()
        if self.proc.poll() is None:
            try:
                self.proc.send_signal(signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.proc.wait(grace)
            except subprocess.TimeoutExpired:
                defects.append(f"{self.name} still running {grace:g} s after SIGTERM: killed")
                self._killpg(signal.SIGKILL)
                self.proc.wait()
        left = _alive([p for p in snapshot if p.pid != self.pid]) + _group_members(self.pid)
        seen = set()
        left = [p for p in left if not (p.pid in seen or seen.add(p.pid))]
        if left:
            pids = ", ".join(str(p.pid) for p in left[:10])
            more = f" (+{len(left) - 10} more)" if len(left) > 10 else ""
            defects.append(
                f"{len(left)} process(es) of the {self.name} left after it exited: "
                f"{pids}{more}: killed"
            )
            for p in left:
                try:
                    p.kill()
                except psutil.Error:
                    pass
            psutil.wait_procs(left, timeout=5)
        return defects

    def kill(self) -> None:
        """SIGTERM the whole process group, then SIGKILL it after 5 s; reap the child."""
        snapshot = self.tree()
        self._killpg(signal.SIGTERM)
        try:
            self.proc.wait(5)
        except subprocess.TimeoutExpired:
            pass
        self._killpg(signal.SIGKILL)
        for p in _alive(snapshot):
            try:
                p.kill()
            except psutil.Error:
                pass
        self.proc.wait()

    def _killpg(self, sig: int) -> None:
        try:
            os.killpg(self.pid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def _alive(procs: list[psutil.Process]) -> list[psutil.Process]:
    out = []
    for p in procs:
        try:
            if p.is_running() and p.status() != psutil.STATUS_ZOMBIE:
                out.append(p)
        except psutil.Error:
            pass
    return out


def _group_members(pgid: int) -> list[psutil.Process]:
    members = []
    for p in psutil.process_iter():
        try:
            if p.pid != pgid and os.getpgid(p.pid) == pgid:
                members.append(p)
        except (ProcessLookupError, psutil.Error, OSError):
            pass
    return _alive(members)


class ServerStartError(Exception):
    """The server did not print its ``listening`` line; ``str(e)`` says why (one line)."""


def _accepts(port: int, host: str = "127.0.0.1") -> bool:
    try:
        with socket.create_connection((host, port), timeout=0.2):
            return True
    except OSError:
        return False


def wait_listening(child: Child, timeout: float, port: int | None = None) -> dict:
    """Wait for the server to be ready and return its ``listening`` event.

    Ready is the ``{"event": "listening", ...}`` line on stdout; with ``port`` (a server
    told its port, which may print nothing), also the first connection it accepts there,
    for which an event is made up. Raises :class:`ServerStartError` if the server exits
    first, prints something else as its first line (without ``port``), or is not ready
    within ``timeout`` seconds.
    """
    deadline = time.monotonic() + timeout
    while True:
        try:
            text = child.stdout_path.read_text(errors="replace")
        except OSError:
            text = ""
        if port is not None:
            first = text.split("\n", 1)[0] if "\n" in text else ""
            if '"listening"' not in first and _accepts(port):
                return {"event": "listening", "host": "127.0.0.1", "port": port,
                        "pid": child.pid, "strategy": child.name, "by": "connect"}
        if "\n" in text and (port is None or '"listening"' in text.split("\n", 1)[0]):
            line = text.split("\n", 1)[0]
            try:
                event = json.loads(line)
            except json.JSONDecodeError:
                event = None
            if not isinstance(event, dict) or event.get("event") != "listening":
                raise ServerStartError(f"first line is not a listening event: {line[:120]!r}")
            if not isinstance(event.get("port"), int):
                raise ServerStartError(f"listening event without a port: {line[:120]!r}")
            return event
        if child.poll() is not None:
            tail = child.stderr_tail()
            raise ServerStartError(
                f"server exited ({child.describe_exit()}) before listening"
                + (f": {tail}" if tail else "")
            )
        if time.monotonic() > deadline:
            if port is not None:
                raise ServerStartError(f"server neither printed a listening line nor accepted "
                                       f"a connection on port {port} within {timeout:g} s")
            raise ServerStartError(f"server printed no listening line within {timeout:g} s")
        time.sleep(0.02)
