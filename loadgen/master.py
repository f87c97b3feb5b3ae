"""The loadgen master: starts local workers, admits remote ones, runs the phases, merges.

Phases, all driven from here over Locust's master/worker channel:
join (local workers started here, remote ones connect; the set is fixed once all have
said hello, see :mod:`loadgen.crew`) → ramp (`runner.start(N, ramp_rate)`; ends when every
user has completed one echo, or at the ramp timeout; served users then wait) → "lg_go"
starts the load on every user → warm-up (nothing counted) → measure ("lg_measure" tells
each worker to open its window of D seconds on its own clock) → drain (workers wait for
in-flight measured messages, then send "lg_final") → stop (Locust's quit: local workers
exit, remote ones go back to waiting for the next master).

While the case runs the master beats ("lg_beat", every :data:`loadgen.worker.BEAT_S`) so
its workers know it is alive, and watches theirs. A worker joining a fixed set is refused
("lg_refused") and noted in the result's ``late_workers``. A member lost (silent, or a
local worker process gone) ends the phase at once: the survivors close their windows
("lg_cut"), their figures are kept, the loss goes into ``lost_workers``, and the master
exits :data:`loadgen.config.EXIT_WORKER_LOST`.
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
import zmq.green as zmq
from locust.env import Environment
from locust.event import Events
from locust.exception import RPCError
from locust.rpc import Message
from locust.runners import MasterRunner
from zmq.utils.monitor import recv_monitor_message

import loadgen
from common.files import atomic_write
from common.host import boot_id
from common.proc import with_parent_death
from loadgen import result
from loadgen.config import EXIT_FAILED, EXIT_WORKER_LOST, Config, split_hostport
from loadgen.crew import Crew, Member
from loadgen.user import EchoUser
from loadgen.worker import BEAT_S, STALL_S, quiet_logging

# Locust's own heartbeat check would take a busy worker's users away after 3 missed
# beats; losses are the crew's to judge (lg_beat, 4 a second), so Locust's is made lax.
locust.runners.HEARTBEAT_LIVENESS = 10
FINAL_GRACE_S = 30.0  # an overloaded worker reports late; give up only after this
WATCH_S = 0.05


class Interrupted(BaseException):
    def __init__(self, signum: int) -> None:
        super().__init__(signum)
        self.signum = signum


class RunFailed(Exception):
    """The run cannot produce a result; str(e) is one line for the user."""


class WorkerLost(Exception):
    """A member of the crew was lost; the phase ends."""


class AdmittingMaster(MasterRunner):
    """Locust's master runner, with admission by the crew: every message stamps its
    sender's liveness; once the set is fixed, a newcomer's "client_ready" is refused and
    nothing else from a non-member reaches Locust (a refused worker's last heartbeats and
    reports); while the master is ending, no worker is admitted (the next master will)."""

    def __init__(self, env: Environment, host: str, port: int, owner: Master) -> None:
        self.owner = owner
        super().__init__(env, host, port)

    def handle_message(self, client_id: str, msg: Message) -> None:
        o = self.owner
        o.crew.heard(client_id, perf_counter())
        if msg.type == "client_ready":
            if o.closing:
                return
            if o.crew.fixed:
                if o.crew.is_member(client_id):
                    self.send_message("ack", client_id=client_id,
                                      data={"index": self.get_worker_index(client_id)})
                else:
                    o.refuse(client_id)
                return
        elif o.crew.fixed and not o.crew.is_member(client_id):
            return
        super().handle_message(client_id, msg)


class Master:
    def __init__(self, cfg: Config) -> None:
        self.cfg = cfg
        self.env = Environment(user_classes=[EchoUser], events=Events())
        host, port = split_hostport(cfg.master_bind, "--master-bind")
        self.bind_host = host
        self.crew = Crew(local=cfg.workers, remote=cfg.remote_workers)
        self.closing = False
        try:
            self.runner = self.env.runner = AdmittingMaster(self.env, host, port, self)
        except (SystemExit, RPCError):  # Locust may log "port busy" and exit
            raise RunFailed(f"cannot listen for workers on {cfg.master_bind} "
                            "(port in use?): choose another --master-bind") from None
        self.port = self.runner.server.port
        self.procs: list[subprocess.Popen] = []
        self.status: dict[str, dict] = {}
        self.finals: dict[str, dict] = {}
        self.buckets: dict[int, list[str]] = defaultdict(list)
        self.unfit: list[str] = []
        self.phase = "join"
        self.t0 = perf_counter()
        self.next_progress = self.t0 + 1.0
        self.last_messages = (self.t0, 0)
        self.last_watch = self.t0
        self.env.events.worker_report.add_listener(self._on_report)
        self.runner.register_message("lg_final", self._on_final, concurrent=True)
        self.runner.register_message("lg_ramp", self._on_ramp)
        self.runner.register_message("lg_hello", self._on_hello)
        self.runner.register_message("lg_unfit", self._on_unfit)
        self.runner.register_message("lg_beat", lambda **_kw: None)
        self.runner.greenlet.spawn(self._watch_connections)

    # -- messages from workers

    def _on_hello(self, environment, msg, **_kw) -> None:
        d = msg.data
        now = perf_counter()
        local = d["local"] and d["boot_id"] == boot_id() and d["pid"] in {
            p.pid for p in self.procs}
        m = Member(client_id=msg.node_id, index=self.runner.get_worker_index(msg.node_id),
                   host=d["host"], pid=d["pid"], boot_id=d["boot_id"], local=local,
                   joined=now, heard=now)
        for cid in self.crew.join(m):
            self.runner.clients.pop(cid, None)
            self._send(cid, "lg_refused", {"reason": f"{self.cfg.remote_workers} remote "
                                           "worker(s) had joined already"})
            self.crew.refuse(cid.rsplit("_", 1)[0], self.phase, time.monotonic())

    def _on_report(self, client_id: str, data: dict, **_kw) -> None:
        lg = data.get("loadgen")
        if lg is None or not self.crew.is_member(client_id):
            return
        for i, enc in lg.pop("buckets", {}).items():
            self.buckets[int(i)].append(enc)
        self.status.setdefault(client_id, {}).update(lg)

    def _on_ramp(self, environment, msg, **_kw) -> None:
        self.status.setdefault(msg.node_id, {}).update(msg.data)
        m = self.crew.joined.get(msg.node_id)
        if m is not None:
            m.address = msg.data.get("address", "")

    def _on_final(self, environment, msg, **_kw) -> None:
        data = msg.data
        data["index"] = self.runner.get_worker_index(msg.node_id)
        for i, enc in data["buckets"].items():
            self.buckets[int(i)].append(enc)
        self.finals[msg.node_id] = data

    def _on_unfit(self, environment, msg, **_kw) -> None:
        m = self.crew.joined[msg.node_id]
        self.unfit.append(f"worker {m.index} on {m.host}: {msg.data['reason']}")

    def refuse(self, client_id: str) -> None:
        """A worker joined a fixed set: tell it to go, note it in the case."""
        self._send(client_id, "lg_refused", {"reason": "the case had started with its "
                                             "workers fixed"})
        self.crew.refuse(client_id.rsplit("_", 1)[0], self.phase, time.monotonic())

    def _send(self, client_id: str, kind: str, data: dict | None = None) -> None:
        self.runner.server.send_to_client(Message(kind, data, client_id))

    # -- liveness

    def _watch_connections(self) -> None:
        """Note when any worker's connection closes: a killed worker's does at once."""
        monitor = self.runner.server.socket.get_monitor_socket(zmq.EVENT_DISCONNECTED)
        while True:
            event = recv_monitor_message(monitor)
            if event["event"] == zmq.EVENT_DISCONNECTED:
                self.crew.closed_at = perf_counter()

    def _beat(self) -> None:
        while not self.closing:
            for m in self.crew.alive():
                self._send(m.client_id, "lg_beat")
            gevent.sleep(BEAT_S)

    def watch(self, now: float) -> None:
        """Mark members lost: local worker processes gone, remote members silent too long.
        A local worker is judged by its process alone: at 10,000 connections its CPU can be
        full for seconds, silent but working. A check that ran late (this process was held
        up) judges no silence."""
        stalled = now - self.last_watch > WATCH_S + STALL_S
        self.last_watch = now
        procs = {p.pid: p for p in self.procs}
        for m in self.crew.alive():
            p = procs.get(m.pid) if m.local else None
            if p is not None and p.poll() is not None:
                self._lose(m, f"process exited with code {p.returncode}")
        if not stalled:
            for m, quiet in self.crew.silent(now):
                if not m.local:
                    self._lose(m, f"silent for {quiet:.1f} s")

    def _lose(self, m: Member, why: str) -> None:
        self.crew.lose(m, why, self.phase, time.monotonic())
        print(f"loadgen: worker {m.index} lost ({m.host} {m.address or ''} pid {m.pid}, "
              f"{why}) during {self.phase}", file=sys.stderr, flush=True)

    # -- helpers

    def total(self, key: str) -> int:
        live = {m.client_id for m in self.crew.alive()}
        return sum(s.get(key, 0) for cid, s in self.status.items() if cid in live)

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

    def wait(self, seconds: float, done=None, losses_end_it: bool = True) -> bool:
        """Sleep up to `seconds`, printing progress and watching the workers; True if
        done(). Raises WorkerLost when a member is lost (if `losses_end_it`)."""
        deadline = perf_counter() + seconds
        while True:
            if self.unfit:
                raise RunFailed(self.unfit[0])
            if done is not None and done():
                return True
            now = perf_counter()
            if now >= self.next_progress:
                self.progress(now)
                self.next_progress = max(self.next_progress + 1.0, now + 0.5)
            lost = len(self.crew.lost)
            if self.crew.fixed:
                self.watch(now)
            if losses_end_it and len(self.crew.lost) > lost:
                raise WorkerLost
            if now >= deadline:
                return False
            gevent.sleep(min(WATCH_S, deadline - now))

    # -- the run

    def start_workers(self) -> None:
        host = "127.0.0.1" if self.bind_host in ("*", "0.0.0.0") else self.bind_host
        root = os.path.dirname(os.path.dirname(os.path.abspath(loadgen.__file__)))
        env = dict(os.environ)
        env["PYTHONPATH"] = root + os.pathsep + env.get("PYTHONPATH", "")
        for _ in range(self.cfg.workers):
            self.procs.append(subprocess.Popen(
                with_parent_death([sys.executable, "-m", "loadgen", "worker", "--master",
                                   f"{host}:{self.port}", "--local", "--join-timeout",
                                   f"{self.cfg.join_timeout:g}"]),
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

    def join(self) -> None:
        cfg = self.cfg
        self.start_workers()
        if not self.wait(cfg.join_timeout, lambda: self.crew.fixed):
            local = sum(m.local for m in self.crew.joined.values())
            raise RunFailed(f"{local} of {cfg.workers} local and "
                            f"{len(self.crew.joined) - local} of {cfg.remote_workers} remote "
                            f"workers joined within {cfg.join_timeout:g} s")
        self.runner.greenlet.spawn(self._beat)

    def run(self) -> dict:
        cfg = self.cfg
        self.join()
        self.runner.send_message("lg_config", cfg.to_dict())
        window: dict = {"boot_id": boot_id()}
        ramp: dict = {"ramp_timed_out": False}
        spawner = None
        ramp_t0 = perf_counter()
        try:
            self.phase = "ramp"
            spawner = gevent.spawn(self.runner.start, cfg.connections, cfg.ramp_rate)
            ramped = self.wait(cfg.ramp_timeout,
                               lambda: self.total("served") >= cfg.connections)
            ramp["ramp_timed_out"] = not ramped
            self._end_ramp(ramp, ramp_t0)
            self.runner.send_message("lg_go")

            self.phase = "warmup"
            self.wait(cfg.warmup)

            self.phase = "measure"
            window["start"] = time.monotonic()
            self.runner.send_message("lg_measure", {"duration": cfg.duration})
            self.wait(cfg.duration)
            window["end"] = time.monotonic()
        except WorkerLost:
            if spawner is not None:
                spawner.kill(block=False)
            if "connected" not in ramp:
                self._end_ramp(ramp, ramp_t0)
            now = time.monotonic()
            window.setdefault("start", now)
            window["end"] = now
            for m in self.crew.alive():
                self._send(m.client_id, "lg_cut")
        self.phase = "drain"
        grace = cfg.timeout + (1.0 + BEAT_S if self.crew.lost else FINAL_GRACE_S)
        if not self.wait(grace, self._all_final, losses_end_it=False):
            missing = [m.index for m in self.crew.alive() if m.client_id not in self.finals]
            raise RunFailed(f"worker(s) {missing} sent no figures after the measure phase")
        live = {m.client_id for m in self.crew.alive()}
        finals = [f for cid, f in self.finals.items() if cid in live]
        return result.assemble(cfg.to_dict(), ramp, finals, self.buckets, window,
                               lost=self.crew.lost, late=self.crew.late)

    def _end_ramp(self, ramp: dict, t0: float) -> None:
        ramp.update(connected=self.total("connected"), served=self.total("served"),
                    ramp_s=perf_counter() - t0)

    def _all_final(self) -> bool:
        return all(m.client_id in self.finals for m in self.crew.alive())

    def stop(self, graceful: bool) -> None:
        """Make sure every local worker process is gone: Locust's quit message first (when
        graceful), then SIGTERM, then SIGKILL, each bounded in time. Remote workers get the
        quit too (they go back to waiting for a master)."""
        self.closing = True
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


def verdict_line(r: dict) -> tuple[int, str | None]:
    """The exit code of a finished run and the one line that explains a non-zero one."""
    if r["lost_workers"]:
        lost = "; ".join(f"worker {w['index']} ({w['host']} {w['address']} pid {w['pid']}, "
                         f"{w['why']}) during {w['phase']}" for w in r["lost_workers"])
        return EXIT_WORKER_LOST, (f"worker lost: {lost}; the result holds the "
                                  f"{len(r['workers'])} survivor(s)' figures")
    c = r["connections"]
    if c["connected"] == 0:
        errs = ", ".join(f"{k} {v}" for k, v in r["connect_errors"].items() if v) or "none"
        return EXIT_FAILED, (f"0 of {c['target']} connections established to "
                             f"{r['config']['host']}:{r['config']['port']} "
                             f"(connect errors: {errs})")
    return 0, None


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
        return EXIT_FAILED
    if exc is not None:
        print(f"loadgen: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        return EXIT_FAILED
    r = outcome["result"]
    if cfg.json_out:
        write_json_atomic(cfg.json_out, r)
    if cfg.json:
        print(json.dumps(r))
    else:
        print(result.human(r))
    code, why = verdict_line(r)
    if why:
        print(f"loadgen: error: {why}", file=sys.stderr)
    return code
