"""The TCP echo User: one Locust user is one TCP connection, on gevent sockets.

Why one user per connection (and not a user driving a group of connections): it keeps
Locust's model intact (spawn rate = connect rate, one greenlet per connection, users
stopped by the runner); a grouped user would trade Locust's per-user model for a
hand-made scheduler inside a user. What makes one user per connection cheap enough is
how the user runs: an open-loop message costs a worker about 3x the CPU of a closed-loop
one, as its send and its reply each wake the worker on their own where closed loop
batches them; a worker that cannot keep its schedule says so (``limit`` in the result).
A bare Locust user is slow through Locust's per-request machinery (a wait_time and a task
pick per request, `events.request` feeding its statistics) in one process; this user runs
one task that never returns and paces itself with one gevent timer per message.  It
fires no `events.request`: measured, that costs ~10 % of a worker's CPU per message and
feeds only Locust's millisecond statistics, which we do not use (latency goes straight
into HdrHistograms in µs).

Lifecycle of a user: connect and complete one echo (the ramp; retried with a back-off,
failures of the very first connect count as connect errors); wait, idle, until the
master ends the ramp ("lg_go": every user served, or the ramp timed out), so that users
already connected do not flood the server while the others are still connecting; then
loop:
closed loop sends the next message as soon as the echo is verified; open loop sends
message k at `phase + k * period` (period = connections / rate, phase uniform in
[0, period)) and never shifts that schedule: a late reply makes the next sends go out
at once until the schedule is caught up, each measured from its intended time.  In
`per-message` mode every message connects, echoes and closes, and its latency includes
the connect.  gevent's libev timers have 1 ms granularity (a wait is rounded up to the
next ms), which would make every open-loop send ~0.5 ms late and put that slack into the
corrected latency; so the user sleeps until 1 ms before the intended time and sends when
it wakes, never more than 1 ms early, and a send that leaves early is measured from when
it left (corrected = uncorrected for it).  The offered rate is unchanged.  Any error
closes the connection (its byte stream can no longer be trusted); the next message
reconnects.
"""

from __future__ import annotations

import errno
import random
import socket
from time import perf_counter

import gevent
from locust import User, constant, task

from loadgen.message import message

TIMER_SLACK_S = 0.001  # libev rounds timer waits up to the next ms: wake this much early
ERROR_BACKOFF_S = 0.1  # closed loop: pause after an error so a dead server is not spun on
RAMP_BACKOFF_S = 0.5
BIG_MESSAGE = 64 * 1024  # above this, send and receive concurrently (the server echoes
# 64 KiB chunks as they come and stops reading when we stop reading)


class Corrupt(Exception):
    pass


class Closed(Exception):
    pass


_ERRNO_KIND = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
    errno.ECONNABORTED: "reset",
    errno.ETIMEDOUT: "timeout",
}


def classify(exc: BaseException) -> str:
    """Error kind of an exception raised by connect or exchange."""
    if isinstance(exc, Corrupt):
        return "corrupt"
    if isinstance(exc, Closed):
        return "closed"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        return "timeout"
    if isinstance(exc, OSError) and exc.errno in _ERRNO_KIND:
        return _ERRNO_KIND[exc.errno]
    return "other"


def connect(addr: tuple[str, int], deadline: float) -> socket.socket:
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.settimeout(max(deadline - perf_counter(), 1e-3))
        s.connect(addr)
    except BaseException:
        s.close()
        raise
    return s


def exchange(sock: socket.socket, msg: bytes, buf: bytearray, deadline: float) -> None:
    """Send `msg`, read exactly len(msg) bytes back into `buf`, check them byte for byte.

    Raises Closed if the peer closes first, Corrupt if the bytes differ, socket.timeout
    when `deadline` passes, OSError for the rest.
    """
    n = len(msg)
    sock.settimeout(max(deadline - perf_counter(), 1e-3))
    sender = None
    if n > BIG_MESSAGE:
        sender = gevent.spawn(sock.sendall, msg)
    else:
        sock.sendall(msg)
    view = memoryview(buf)
    got = 0
    try:
        while got < n:
            if got:
                sock.settimeout(max(deadline - perf_counter(), 1e-3))
            k = sock.recv_into(view[got:], n - got)
            if not k:
                raise Closed
            got += k
    finally:
        view.release()
        if sender is not None:
            sender.kill(block=True)
    if sender is not None and sender.exception is not None:
        raise sender.exception
    if buf != msg:
        raise Corrupt


def close(sock: socket.socket | None) -> None:
    if sock is not None:
        try:
            sock.close()
        except OSError:
            pass


def run_connection(env) -> None:
    """Drive one connection until the user is killed (see the module docstring)."""
    rec = env.loadgen_recorder
    cfg = env.loadgen_config
    uid = rec.new_user()
    # A Random per user keeps its numbers reproducible; it is dropped after these two
    # draws (its state is ~2.5 KB, times 5,000 users).
    rng = random.Random(f"{cfg['seed']}/{env.runner.worker_index}/{uid}")
    seq = rng.getrandbits(64)
    phase = rng.random()
    del rng
    size = cfg["size"]
    timeout = cfg["timeout"]
    addr = (cfg["host"], cfg["port"])
    persistent = cfg["conn_mode"] == "persistent"
    open_loop = cfg["mode"] == "open"
    period = cfg["connections"] / cfg["rate"] if open_loop else 0.0
    buf = bytearray(size)
    sock = None
    try:
        # Ramp: the first connect and one echo.
        first_connect = True
        while True:
            t0 = perf_counter()
            try:
                if sock is None:
                    sock = connect(addr, t0 + timeout)
                    if first_connect:
                        first_connect = False
                        rec.connected += 1
                exchange(sock, message(seq, size), buf, t0 + timeout)
                seq += 1
                rec.served += 1
                break
            except Exception as e:
                close(sock)
                sock = None
                seq += 1
                if first_connect:
                    rec.connect_error(classify(e))
                else:
                    rec.error(classify(e), t0)
                gevent.sleep(RAMP_BACKOFF_S * (0.5 + random.random()))
        if not persistent:
            close(sock)
            sock = None
        env.loadgen_go.wait()  # the load starts when the ramp is over, for every user at once
        next_t = perf_counter() + phase * period
        while True:
            if open_loop:
                wait = next_t - perf_counter()
                if wait > TIMER_SLACK_S:
                    gevent.sleep(wait - TIMER_SLACK_S)
                sent = perf_counter()
                if wait > 0:
                    rec.late(next_t, sent)
                # Woken up to 1 ms early, a send counts from when it actually left.
                intended = min(next_t, sent)
                next_t += period
            else:
                intended = sent = perf_counter()
            measured = rec.start <= intended < rec.end
            if measured:
                rec.inflight += 1
            try:
                if sock is None:
                    sock = connect(addr, sent + timeout)
                msg = message(seq, size)
                seq += 1
                exchange(sock, msg, buf, sent + timeout)
                rec.sample(uid, intended, sent, perf_counter(), size)
                if not persistent:
                    sock.close()
                    sock = None
            except Exception as e:
                close(sock)
                sock = None
                rec.error(classify(e), intended)
                if not open_loop:
                    gevent.sleep(ERROR_BACKOFF_S)
            finally:
                if measured:
                    rec.inflight -= 1
    finally:
        close(sock)


class EchoUser(User):
    """One TCP echo connection; its single task runs for the user's whole life."""

    wait_time = constant(0)

    @task
    def echo(self) -> None:
        run_connection(self.environment)
