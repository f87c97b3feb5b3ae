"""A loadgen worker: a Locust WorkerRunner whose users are EchoUsers.

It takes its settings from the master's "lg_config" message, opens its measure window
when "lg_measure" arrives, streams counters and finished interval histograms to the
master in every Locust stats report (`events.report_to_master`, once a second here), and
after the window and the drain sends everything else in one "lg_final" message.
`python -m loadgen worker --master HOST:PORT` runs one, on this machine or another.
"""

from __future__ import annotations

import ctypes
import logging
import os
import resource
import signal
import socket
import sys
import time
from time import perf_counter

import gevent
import gevent.event
import locust.runners
from locust.env import Environment
from locust.event import Events

from common.host import boot_id
from loadgen import histogram
from loadgen.recorder import Recorder
from loadgen.user import EchoUser

REPORT_INTERVAL_S = 1.0
RAMP_STATUS_S = 0.1
PR_SET_PDEATHSIG = 1
locust.runners.WORKER_REPORT_INTERVAL = REPORT_INTERVAL_S


def raise_fd_limit() -> int:
    """Raise the soft fd limit to the hard one (Locust itself stops at 10,000)."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft != hard:
        try:
            resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        except (ValueError, OSError):
            return soft
    return hard


def quiet_logging() -> None:
    logging.basicConfig(level=logging.ERROR, format="loadgen %(name)s: %(message)s")
    logging.getLogger("locust").setLevel(logging.ERROR)


class WorkerState:
    """What a worker adds to its Locust runner: config, recorder and the measure flow."""

    def __init__(self, env: Environment) -> None:
        self.env = env
        self.runner = env.runner
        env.loadgen_config = None
        env.loadgen_recorder = None
        env.loadgen_go = gevent.event.Event()

    def on_config(self, environment, msg, **_kw) -> None:
        cfg = msg.data
        self.env.loadgen_config = cfg
        self.env.loadgen_recorder = Recorder(cfg["timeout"])
        gevent.spawn(self._ramp_status)

    def _ramp_status(self) -> None:
        """Until measuring starts, tell the master within 0.1 s when users connect or are
        served, so the ramp ends when it is done rather than at the next 1 s report."""
        rec = self.env.loadgen_recorder
        last = None
        while rec.start == float("inf"):
            now = (len(rec.per_user), rec.connected, rec.served)
            if now != last:
                self.runner.send_message("lg_ramp", {"users": now[0], "connected": now[1],
                                                     "served": now[2]})
                last = now
            gevent.sleep(RAMP_STATUS_S)

    def on_go(self, environment, msg, **_kw) -> None:
        self.env.loadgen_go.set()

    def on_measure(self, environment, msg, **_kw) -> None:
        gevent.spawn(self._measure, float(msg.data["duration"]))

    def _measure(self, duration: float) -> None:
        rec = self.env.loadgen_recorder
        start, mono_start = perf_counter(), time.monotonic()
        cpu0 = _cpu_seconds()
        rec.open_window(start, duration)
        gevent.sleep(max(0.0, rec.end - perf_counter()))
        end = perf_counter()
        cpu1 = _cpu_seconds()
        deadline = end + rec.timeout + 1.0
        while rec.inflight > 0 and perf_counter() < deadline:
            gevent.sleep(0.02)
        self.runner.send_message("lg_final", {
            "index": self.runner.worker_index,
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "boot_id": boot_id(),
            "window": [mono_start, mono_start + duration],
            "connections": len(rec.per_user),
            "cpu_percent": round(100.0 * (cpu1 - cpu0) / max(end - start, 1e-9), 1),
            "measure_s": duration,  # the window, by intended send time
            "messages": rec.messages,
            "bytes": rec.bytes,
            "errors": rec.errors,
            "connect_errors": rec.connect_errors,
            "corrected": histogram.encode(rec.corrected),
            "uncorrected": histogram.encode(rec.uncorrected),
            "per_user": rec.per_user,
            "buckets": rec.take_buckets(perf_counter(), final=True),
            "drain_left": rec.inflight,
            "late_p50_us": rec.lateness.get_value_at_percentile(50.0)
            if rec.lateness.get_total_count() else 0,
            "late_p99_us": rec.lateness.get_value_at_percentile(99.0)
            if rec.lateness.get_total_count() else 0,
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


def _cpu_seconds() -> float:
    t = os.times()
    return t.user + t.system


def _exit_with_parent(ppid: int) -> None:
    """Die with the master even if it is SIGKILLed: at once through Linux's
    PR_SET_PDEATHSIG where available, else within a second by watching the parent pid."""
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(PR_SET_PDEATHSIG, signal.SIGKILL, 0, 0, 0)
    except (OSError, AttributeError):
        pass
    while os.getppid() == ppid:
        gevent.sleep(1.0)
    os._exit(1)


def run_worker(host: str, port: int, exit_with_parent: bool) -> int:
    """Run one worker until the master says quit (0) or a signal arrives (128 + signal)."""
    quiet_logging()
    raise_fd_limit()
    if exit_with_parent:
        gevent.spawn(_exit_with_parent, os.getppid())
    env = Environment(user_classes=[EchoUser], events=Events())
    def on_signal(signum: int) -> None:
        os._exit(128 + signum)  # users' sockets close with the process; nothing to keep

    for s in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(s, on_signal, s)
    try:
        runner = env.create_worker_runner(host, port)
    except Exception as e:  # noqa: BLE001 - reported in one line
        print(f"loadgen worker: cannot connect to master {host}:{port}: {e}", file=sys.stderr)
        return 1
    state = WorkerState(env)
    runner.register_message("lg_config", state.on_config)
    runner.register_message("lg_go", state.on_go)
    runner.register_message("lg_measure", state.on_measure)
    env.events.report_to_master.add_listener(state.on_report)
    runner.greenlet.join()
    return 0
