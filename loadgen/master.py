"""The loadgen master: starts local workers, runs the phases, merges, writes the result.

Phases, all driven from here over Locust's master/worker channel:
ramp (`runner.start(N, ramp_rate)`; ends when every user has completed one echo, or at
the ramp timeout; served users then wait) → "lg_go" starts the load on every user →
warm-up (nothing counted) → measure ("lg_measure" tells each worker
to open its window of D seconds on its own clock) → drain (workers wait for in-flight
measured messages, then send "lg_final") → stop (`runner.quit()`, workers exit).
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from collections import defaultdict
from pathlib import Path
from time import perf_counter

import gevent
import locust.runners
from locust.env import Environment
from locust.event import Events
from locust.exception import RPCError

import loadgen
from common.files import atomic_write
from common.host import boot_id
from loadgen import result
from loadgen.config import Config, split_hostport
from loadgen.user import EchoUser
from loadgen.worker import quiet_logging

WORKER_CONNECT_TIMEOUT_S = 60.0
# A worker whose CPU is full can miss Locust's 1 s heartbeats for a while; the default
# (3 missed -> "missing", its users taken away) would cut a run short that should only be
# reported as loadgen-bound.
locust.runners.HEARTBEAT_LIVENESS = 10
FINAL_GRACE_S = 30.0  # an overloaded worker reports late; give up only after this


class Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class RunFailed(Exception):
    """The run cannot produce a result; str(e) is one line for the user."""


class Master:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.env = Environment(user_classes=[EchoUser], events=Events())
        host, port = split_hostport(cfg.master_bind, "--master-bind")
        self.bind_host = host
        try:
            self.runner = self.env.create_master_runner(host, port)
        except (SystemExit, RPCError):  # Locust may log "port busy" and exit
            raise RunFailed(f"cannot listen for workers on {cfg.master_bind} "
                            "(port in use?): choose another --master-bind") from None
        self.port = self.runner.server.port
        self.procs: list[subprocess.Popen] = []
        self.status: dict[str, dict] = {}
        self.finals: dict[str, dict] = {}
        self.buckets: dict[int, list[str]] = defaultdict(list)
        self.phase = "ramp"  # starting the workers counts as ramp
        self.t0 = perf_counter()
        self.next_progress = self.t0 + 1.0
        self.last_messages = (self.t0, 0)
        self.env.events.worker_report.add_listener(self._on_report)
        self.runner.register_message("lg_final", self._on_final, concurrent=True)
        self.runner.register_message("lg_ramp", self._on_ramp)

    # -- messages from workers

    def _on_report(self, client_id: str, data: dict, **_kw) -> None:
        lg = data.get("loadgen")
        if lg is None:
            return
        for i, enc in lg.pop("buckets", {}).items():
            self.buckets[int(i)].append(enc)
        self.status.setdefault(client_id, {}).update(lg)

    def _on_ramp(self, environment, msg, **_kw) -> None:
        self.status.setdefault(msg.node_id, {}).update(msg.data)

    def _on_final(self, environment, msg, **_kw) -> None:
        data = msg.data
        data["index"] = self.runner.get_worker_index(msg.node_id)
        for i, enc in data["buckets"].items():
            self.buckets[int(i)].append(enc)
        self.finals[msg.node_id] = data

    # -- helpers

    def total(self, key: str) -> int:
        return sum(s.get(key, 0) for s in self.status.values())

    def progress(self, now: float) -> None:
        t_prev, m_prev = self.last_messages
        messages = self.total("messages")
        rate = (messages - m_prev) / (now - t_prev) if now > t_prev else 0.0
        self.last_messages = (now, messages)
        line = {
            "event": "progress", "phase": self.phase, "elapsed": round(now - self.t0, 2),
            "connected": self.total("connected"), "messages": messages,
            "rate": round(rate, 1), "errors": self.total("errors"),
        }
        if self.cfg.progress == "json":
            print(json.dumps(line), file=sys.stderr, flush=True)
        else:
            print(f"loadgen: {line['phase']:7s} {line['elapsed']:6.1f}s connected "
                  f"{line['connected']}/{self.cfg.connections} messages {messages} "
                  f"rate {rate:.0f}/s errors {line['errors']}", file=sys.stderr, flush=True)

    def wait(self, seconds: float, done=None) -> bool:
        """Sleep up to `seconds`, printing progress and watching workers; True if done()."""
        deadline = perf_counter() + seconds
        while True:
            if done is not None and done():
                return True
            now = perf_counter()
            if now >= self.next_progress:
                self.progress(now)
                self.next_progress = max(self.next_progress + 1.0, now + 0.5)
            for i, p in enumerate(self.procs):
                if p.poll() is not None:
                    raise RunFailed(f"local worker {i} (pid {p.pid}) exited with code "
                                    f"{p.returncode} during {self.phase}")
            if now >= deadline:
                return False
            gevent.sleep(min(0.05, deadline - now))

    # -- the run

    def start_workers(self) -> None:
        host = "127.0.0.1" if self.bind_host in ("*", "0.0.0.0") else self.bind_host
        root = os.path.dirname(os.path.dirname(os.path.abspath(loadgen.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        for _ in range(self.cfg.workers):
            self.procs.append(subprocess.Popen(
                [sys.executable, "-m", "loadgen", "worker", "--master", f"{host}:{self.port}",
                 "--exit-with-parent"],
                env=env, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL,
                start_new_session=True,  # the master alone handles Ctrl-C and stops them
            ))
        if self.cfg.remote_workers:
            n = self.cfg.remote_workers
            if self.cfg.progress == "json":
                line = json.dumps({"event": "waiting_for_workers", "remote_workers": n,
                                   "host": self.bind_host, "port": self.port})
            else:
                line = (f"loadgen: waiting for {n} remote worker(s): "
                        f"python -m loadgen worker --master {self.bind_host}:{self.port}")
            print(line, file=sys.stderr, flush=True)

    def run(self) -> dict:
        cfg = self.cfg
        n_workers = cfg.workers + cfg.remote_workers
        self.start_workers()
        if not self.wait(WORKER_CONNECT_TIMEOUT_S, lambda: self.runner.worker_count >= n_workers):
            raise RunFailed(f"only {self.runner.worker_count} of {n_workers} workers connected "
                            f"within {WORKER_CONNECT_TIMEOUT_S:.0f} s")
        self.runner.send_message("lg_config", cfg.to_dict())

        self.phase = "ramp"
        ramp_t0 = perf_counter()
        gevent.spawn(self.runner.start, cfg.connections, cfg.ramp_rate)
        ramped = self.wait(cfg.ramp_timeout, lambda: self.total("served") >= cfg.connections)
        ramp = {"connected": self.total("connected"), "served": self.total("served"),
                "ramp_timed_out": not ramped, "ramp_s": perf_counter() - ramp_t0}

        self.runner.send_message("lg_go")

        self.phase = "warmup"
        self.wait(cfg.warmup)

        self.phase = "measure"
        window = {"boot_id": boot_id(), "start": time.monotonic()}
        self.runner.send_message("lg_measure", {"duration": cfg.duration})
        self.wait(cfg.duration)
        window["end"] = time.monotonic()
        self.phase = "drain"
        if not self.wait(cfg.timeout + FINAL_GRACE_S, lambda: len(self.finals) >= n_workers):
            raise RunFailed(f"only {len(self.finals)} of {n_workers} workers reported after "
                            "the measure phase")
        return result.assemble(cfg.to_dict(), ramp, list(self.finals.values()), self.buckets,
                               window)

    def stop(self, graceful: bool) -> None:
        """Make sure every local worker process is gone: Locust's quit message first (when
        graceful), then SIGTERM, then SIGKILL, each bounded in time."""
        try:
            self.runner.quit()
        except Exception:  # noqa: BLE001 - stopping must go on
            pass
        for sig, grace in (((None, 3.0),) if graceful else ()) + (
                (signal.SIGTERM, 2.0), (signal.SIGKILL, 5.0)):
            alive = [p for p in self.procs if p.poll() is None]
            if not alive:
                return
            for p in alive:
                if sig is not None:
                    p.send_signal(sig)
            deadline = perf_counter() + grace
            for p in alive:
                try:
                    p.wait(timeout=max(0.05, deadline - perf_counter()))
                except subprocess.TimeoutExpired:
                    pass


def write_json_atomic(path: str, data: dict) -> None:
    atomic_write((json.dumps(data, indent=1) + "\n").encode(), Path(path))


def run_master(cfg: Config) -> int:
    """Run the whole load test; return the process exit code."""
    quiet_logging()
    outcome: dict = {}

    def orchestrate() -> None:
        m = None
        try:
            m = Master(cfg)
            outcome["result"] = m.run()
        except BaseException as e:  # noqa: BLE001 - reported below in one line
            outcome["error"] = e  # caught here so gevent prints no traceback
        finally:
            if m is not None:
                m.stop(graceful="error" not in outcome)

    g = gevent.spawn(orchestrate)

    def on_signal(signum: int) -> None:
        if "signal" not in outcome:  # a second Ctrl-C must not break the cleanup
            outcome["signal"] = signum
            g.kill(Interrupted(signum), block=False)

    for s in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(s, on_signal, s)
    g.join()
    exc = outcome.get("error")
    if isinstance(exc, Interrupted):
        print(f"loadgen: interrupted by {signal.Signals(exc.signum).name}, no result",
              file=sys.stderr)
        return 128 + exc.signum
    if isinstance(exc, RunFailed):
        print(f"loadgen: error: {exc}", file=sys.stderr)
        return 1
    if exc is not None:
        print(f"loadgen: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return 1
    r = outcome["result"]
    if cfg.json_out:
        write_json_atomic(cfg.json_out, r)
    if cfg.json:
        print(json.dumps(r))
    else:
        print(result.human(r))
    return 0
