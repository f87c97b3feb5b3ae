"""A loadgen worker: Locust WorkerRunners whose users are EchoUsers, one per case.

`python -m loadgen worker --master HOST:PORT` runs one on this machine or another. It
serves case after case: it joins the master at HOST:PORT (saying so, and giving up after
``--join-timeout`` seconds with no master), makes its share of the load, and when the
master ends the case (Locust's "quit") it joins the next master at the same address, so
the workers of a whole run are started once. It exits:

* when no master appears for ``--join-timeout`` seconds (0 after at least one case, else 1);
* within :data:`MASTER_LOST_AFTER_S` (+ one check) of the master going silent (killed, its
  host gone): the process ends at once, closing every connection, 1;
* when the master refuses it (its case had started with a fixed set of workers), 1;
* on SIGINT/SIGTERM, 128 + the signal.

Within a case it takes its settings from the master's "lg_config" (checking its share of
the connections fits its own fds and ports), opens its measure window when "lg_measure"
arrives and closes it early on "lg_cut" (a fellow worker was lost), streams counters and
finished interval histograms to the master in every Locust stats report (once a second),
and after the window and the drain sends everything else in one "lg_final" message. It
sends "lg_beat" every :data:`BEAT_S` so the master notices its loss within seconds.

A worker the master starts itself (``--local``) serves one case and says nothing.
"""

from __future__ import annotations

import gc
import logging
import math
import os
import signal
import socket
import sys
import time
from collections.abc import Callable
from time import perf_counter

import gevent
import gevent.event
import locust.runners
from locust import __version__ as locust_version
from locust.env import Environment
from locust.event import Events
from locust.rpc import Message
from locust.runners import WorkerRunner

from common.host import boot_id
from common.limits import raise_fd_limit
from loadgen import histogram
from loadgen.config import WorkerArgs, share_problem, worker_share
from loadgen.driver import Driver, Load
from loadgen.recorder import Recorder
from loadgen.user import EchoUser

REPORT_INTERVAL_S = 1.0
RAMP_STATUS_S = 0.1
BEAT_S = 0.25  # "lg_beat" to the master, and the master's to its workers
MASTER_LOST_AFTER_S = 3.0  # nothing from the master this long: it is gone
JOIN_RETRY_S = 1.0  # "client_ready" again (a master that was ending may have eaten it)
STALL_S = 0.5  # a check that woke this much late was itself held up: judge nothing
MIN_CPU_WINDOW_S = 0.1  # shorter windows (cut at once) give no CPU figure
locust.runners.WORKER_REPORT_INTERVAL = REPORT_INTERVAL_S


def quiet_logging() -> None:
    logging.basicConfig(level=logging.ERROR, format="loadgen %(name)s: %(message)s")
    logging.getLogger("locust").setLevel(logging.ERROR)


def source_address(host: str, port: int) -> str:
    """The address this host sends from to reach ``host:port`` ("" if it has no route)."""
    try:
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as s:
            s.connect((host, port))  # UDP: picks the route, sends nothing
            return s.getsockname()[0]
    except OSError:
        return ""


class CaseWorker(WorkerRunner):
    """Locust's worker runner for one case.

    Unlike Locust's, it registers its messages before it can hear the master (so nothing
    that follows the master's "ack" is missed), joins only when :meth:`join` is called and
    for a bounded time, and keeps ``heard``: when the master last said anything.
    """

    def __init__(self, env: Environment, host: str, port: int,
                 handlers: dict[str, Callable]) -> None:
        self.handlers = handlers
        self.heard = math.inf
        super().__init__(env, host, port)

    def connect_to_master(self) -> None:
        """Called by ``WorkerRunner.__init__`` once its receiving greenlet runs."""
        for name, handler in self.handlers.items():
            self.register_message(name, handler)

    def join(self, timeout: float) -> bool:
        """Say "client_ready" every :data:`JOIN_RETRY_S` until the master's "ack", or
        ``timeout`` s; True if joined."""
        deadline = perf_counter() + timeout
        while True:
            self.client.send(Message("client_ready", locust_version, self.client_id))
            left = deadline - perf_counter()
            if self.connection_event.wait(timeout=max(0.0, min(JOIN_RETRY_S, left))):
                self.connected = True
                self.heard = perf_counter()
                return True
            if perf_counter() >= deadline:
                return False

    def handle_message(self, msg: Message) -> None:
        self.heard = perf_counter()
        super().handle_message(msg)

    def close(self) -> None:
        """Stop every greenlet and user of this case and close the master connection."""
        self.greenlet.kill(block=True)
        self.user_greenlets.kill(block=True)
        sock = self.client.socket
        context = sock.context
        sock.close(linger=0)
        context.term()


class WorkerState:
    """One case on one worker: its config, recorder and measure flow, and its liveness."""

    def __init__(self, env: Environment, args: WorkerArgs, say: Callable[[str], None]) -> None:
        self.env = env
        self.args = args
        self.say = say
        self.runner: CaseWorker | None = None
        self.address = ""
        self.cut = gevent.event.Event()
        env.loadgen_config = None
        env.loadgen_recorder = None
        env.loadgen_driver = None

    def handlers(self) -> dict[str, Callable]:
        return {"lg_config": self.on_config, "lg_go": self.on_go, "lg_measure": self.on_measure,
                "lg_cut": self.on_cut, "lg_refused": self.on_refused, "lg_beat": _ignore}

    def hello(self) -> dict:
        """Who this worker is, for the master's records (pids repeat across hosts)."""
        return {"host": socket.gethostname(), "pid": os.getpid(), "boot_id": boot_id(),
                "local": self.args.local}

    # -- messages from the master

    def on_config(self, environment, msg, **_kw) -> None:
        cfg = msg.data
        self.address = source_address(cfg["host"], cfg["port"])
        if not self.args.local:  # the master checked its local workers' shares itself
            share = worker_share(cfg["connections"], cfg["workers"] + cfg["remote_workers"])
            problem = share_problem(share, share, f"on {socket.gethostname()}")
            if problem:
                self.runner.send_message("lg_unfit", {"reason": problem})
                return
        self.env.loadgen_config = cfg
        rec = self.env.loadgen_recorder = Recorder(cfg["timeout"])
        driver = self.env.loadgen_driver = Driver(Load.from_config(cfg), rec)
        self.runner.greenlet.spawn(driver.run)
        self.runner.greenlet.spawn(self._ramp_status)

    def _ramp_status(self) -> None:
        """Until measuring starts, tell the master within 0.1 s when users connect or are
        served, so the ramp ends when it is done rather than at the next 1 s report."""
        rec = self.env.loadgen_recorder
        last = None
        while rec.start == math.inf:
            now = (len(rec.per_user), rec.connected, rec.served)
            if now != last:
                self.runner.send_message("lg_ramp", {"users": now[0], "connected": now[1],
                                                     "served": now[2],
                                                     "address": self.address})
                last = now
            gevent.sleep(RAMP_STATUS_S)

    def on_go(self, environment, msg, **_kw) -> None:
        # Every connection is made: what exists now lives as long as the case. Out of the
        # collector's sight, a full collection no longer walks 10,000 connections' objects
        # (tens of ms in which no socket is served).
        gc.collect()
        gc.freeze()
        self.env.loadgen_driver.go()

    def on_measure(self, environment, msg, **_kw) -> None:
        self.runner.greenlet.spawn(self._measure, float(msg.data["duration"]))

    def on_cut(self, environment, msg, **_kw) -> None:
        """End the window now (a fellow worker was lost); open and close it at once if the
        measure phase had not begun."""
        rec = self.env.loadgen_recorder
        if rec is None:
            return
        if rec.start == math.inf:
            self.runner.greenlet.spawn(self._measure, 0.0)
        else:
            rec.end = min(rec.end, perf_counter())
            self.cut.set()

    def on_refused(self, environment, msg, **_kw) -> None:
        self.say(f"refused by the master at {self.args.host}:{self.args.port}: "
                 f"{msg.data['reason']}; exiting")
        os._exit(1)  # it was given no users: nothing to stop

    # -- the measure window

    def _measure(self, duration: float) -> None:
        rec = self.env.loadgen_recorder
        start, mono_start = perf_counter(), time.monotonic()
        cpu0 = _cpu_seconds()
        rec.open_window(start, duration)
        self.cut.wait(timeout=max(0.0, rec.end - perf_counter()))
        end = perf_counter()
        cpu1 = _cpu_seconds()
        measured = rec.end - rec.start
        deadline = end + rec.timeout + 1.0
        while rec.inflight > 0 and perf_counter() < deadline:
            gevent.sleep(0.02)
        self.runner.send_message("lg_final", {
            "index": self.runner.worker_index,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "address": self.address,
            "boot_id": boot_id(),
            "window": [mono_start, mono_start + measured],
            "connections": len(rec.per_user),
            "cpu_percent": round(100.0 * (cpu1 - cpu0) / (end - start), 1)
            if end - start >= MIN_CPU_WINDOW_S else None,
            "measure_s": measured,  # the window, by intended send time
            "messages": rec.messages,
            "bytes": rec.bytes,
            "errors": rec.errors,
            "connect_errors": rec.connect_errors,
            "corrected": histogram.encode(rec.corrected),
            "uncorrected": histogram.encode(rec.uncorrected),
            "per_user": rec.per_user,
            "buckets": rec.take_buckets(perf_counter(), final=True),
            "drain_left": rec.inflight,
            "late_p50_us": rec.lateness.percentile(50.0),
            "late_p99_us": rec.lateness.percentile(99.0),
            "lag_p50_us": rec.lag.percentile(50.0),
            "lag_p99_us": rec.lag.percentile(99.0),
        })

    def on_report(self, client_id, data, **_kw) -> None:
        rec = self.env.loadgen_recorder
        if rec is None:
            return
        data["loadgen"] = {
            "users": len(rec.per_user),
            "connected": rec.connected,
            "served": rec.served,
            "messages": rec.total_messages,
            "errors": rec.total_errors,
            "buckets": rec.take_buckets(perf_counter(), final=False)
            if rec.start < perf_counter() < rec.end else {},
        }

    # -- liveness

    def beat(self) -> None:
        while True:
            self.runner.send_message("lg_beat")
            gevent.sleep(BEAT_S)

    def watch_master(self) -> None:
        """Exit, closing every connection, once the master has been silent for
        :data:`MASTER_LOST_AFTER_S` (not counting a stall of this worker itself)."""
        last = perf_counter()
        while True:
            gevent.sleep(BEAT_S)
            now = perf_counter()
            stalled = now - last > BEAT_S + STALL_S
            last = now
            if not stalled and now - self.runner.heard > MASTER_LOST_AFTER_S:
                self.say(f"lost the master at {self.args.host}:{self.args.port} (silent for "
                         f"{now - self.runner.heard:.1f} s): stopping the load and exiting")
                os._exit(1)


def _ignore(environment, msg, **_kw) -> None:
    """The master's beat: hearing it is all it is for (``CaseWorker.heard``)."""


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def serve_case(args: WorkerArgs, say: Callable[[str], None]) -> bool:
    """Join the master and serve its case until it says quit; False if none came."""
    env = Environment(user_classes=[EchoUser], events=Events())
    state = WorkerState(env, args, say)
    runner = state.runner = CaseWorker(env, args.host, args.port, state.handlers())
    env.runner = runner
    try:
        if not runner.join(args.join_timeout):
            return False
        runner.send_message("lg_hello", state.hello())
        runner.greenlet.spawn(state.beat)
        runner.greenlet.spawn(state.watch_master)
        env.events.report_to_master.add_listener(state.on_report)
        runner.greenlet.join()
        return True
    finally:
        runner.close()


def run_worker(args: WorkerArgs) -> int:
    """Serve cases until no master comes (see the module docstring for the exit codes)."""
    quiet_logging()
    raise_fd_limit()

    def on_signal(signum: int) -> None:
        os._exit(128 + signum)  # users' sockets close with the process; nothing to keep

    for s in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(s, on_signal, s)

    def say(line: str) -> None:
        print(f"loadgen worker: {line}", file=sys.stderr, flush=True)

    chatter = (lambda line: None) if args.local else say
    where = f"{args.host}:{args.port}"
    chatter(f"waiting for the master at {where} (up to {args.join_timeout:g} s)")
    cases = 0
    while True:
        try:
            served = serve_case(args, say)
        except Exception as e:  # noqa: BLE001 - one line, e.g. an address zmq cannot use
            say(f"cannot connect to the master at {where}: {e}")
            return 1
        if not served:
            break
        cases += 1
        if args.local:
            return 0
        chatter(f"case {cases} done; waiting for the next master at {where} "
                f"(up to {args.join_timeout:g} s)")
    if cases:
        chatter(f"no master at {where} for {args.join_timeout:g} s after {cases} case(s): "
                "exiting")
        return 0
    say(f"no master at {where} within {args.join_timeout:g} s: giving up")
    return 1
