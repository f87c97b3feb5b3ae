"""The driver: one greenlet runs the messages of every connection of a worker.

A Locust user is the handle of one connection (:mod:`loadgen.user`); what the connection
does is done here, on raw non-blocking sockets registered on one real ``epoll`` (gevent's
patching hides ``select.epoll``; :func:`gevent.monkey.get_original` gives it back). A
*turn* serves the due sends, then the ready sockets, then the message deadlines, each
bounded (:data:`MAX_EVENTS`, :data:`MAX_SENDS`), and yields to gevent's hub so that
Locust's messages, heartbeats and reports go on between turns however busy the driver is;
with nothing ready it waits through the hub on the epoll's fd, or until the next due send.

One message of a connection (there is never more than one outstanding, no pipelining):
connect if it has no socket (non-blocking; ``per-message`` connections do so for every
message, and their latency includes the connect), send it (a partial send goes on when
the socket is writable, while the echo is read: a message above the socket buffer is sent
and read at once), read exactly its length back in as many pieces as come, each piece
compared byte for byte as it arrives (:mod:`loadgen.message`): a piece that differs is
``corrupt`` at once, an end of stream first is ``closed``. A message not verified within
``timeout`` of its send is a ``timeout`` (deadlines are swept every :data:`SWEEP_S`, or a
tenth of the timeout if less). Socket errors are ``refused``, ``reset`` or ``other``
(:func:`classify`). Any error closes the socket (its byte stream can no longer be
trusted); the next message reconnects. Bytes, or an end of stream, arriving on a
connection with no message outstanding break it: its next message is an error of that
kind (``corrupt``, ``closed``, ``reset``), the one after reconnects.

Pacing: closed loop sends the next message when the echo is verified (after an error,
:data:`ERROR_BACKOFF_S` later, so a dead server is not spun on); open loop keeps each
connection's fixed schedule (:mod:`loadgen.pacing`). Each connection first completes one
echo (the ramp, :meth:`Driver.ramp`; a failure is counted and the ramp tried again
after about :data:`RAMP_BACKOFF_S`), then waits for :meth:`Driver.go`.

The driver's own delay is measured (``Recorder.lag``): for a socket, from the end of the
poll before the one that reported it (or from waking up, if the driver waited for it) to
when it is read; for a timed send, how late it left. It is the part of a latency that is
the loadgen's, which the verdict must not blame on the server.
"""

from __future__ import annotations

import errno
import heapq
import math
import random
import socket
from collections.abc import Callable
from dataclasses import dataclass
from time import perf_counter

import gevent
from gevent import monkey
from gevent.hub import Waiter, get_hub

from loadgen.message import message
from loadgen.pacing import EARLY_S, Pacer
from loadgen.recorder import Recorder

_epoll = monkey.get_original("select", "epoll")
_socket = monkey.get_original("socket", "socket")
EPOLLIN = 0x001
EPOLLOUT = 0x004
EPOLLERR = 0x008
EPOLLHUP = 0x010

ERROR_BACKOFF_S = 0.1
RAMP_BACKOFF_S = 0.5  # a failed ramp is tried again after 0.5-1.5 times this
MAX_EVENTS = 64  # ready sockets served per turn
MAX_SENDS = 64  # due sends per turn
SWEEP_S = 0.1  # deadline sweep period (at most)
RECV_MAX = 256 * 1024  # one read of a large echo
YIELD_S = 0.002  # the longest the driver keeps the hub from Locust's greenlets
IDLE_WAIT_MAX_S = 0.25  # longest wait with nothing due (deadlines are swept after it)
BLOCKED_S = 0.0001  # a poll that took longer waited for its sockets

_ERRNO_KIND = {
    errno.ECONNREFUSED: "refused",
    errno.ECONNRESET: "reset",
    errno.EPIPE: "reset",
    errno.ECONNABORTED: "reset",
    errno.ETIMEDOUT: "timeout",
}


def classify(code: int | None) -> str:
    """Error kind of an errno from connect (``SO_ERROR``), send or receive."""
    return _ERRNO_KIND.get(code, "other")


@dataclass(frozen=True)
class Load:
    """What every connection of a worker does (from the master's ``lg_config``)."""

    host: str
    port: int
    size: int
    timeout: float
    persistent: bool
    period: float | None  # open loop: seconds between one connection's sends; None: closed

    @classmethod
    def from_config(cls, cfg: dict) -> Load:
        open_loop = cfg["mode"] == "open"
        return cls(host=cfg["host"], port=cfg["port"], size=cfg["size"],
                   timeout=cfg["timeout"], persistent=cfg["conn_mode"] == "persistent",
                   period=cfg["connections"] / cfg["rate"] if open_loop else None)


# Connection states. A connection is in exactly one; the driver's sets follow from it:
# ``due`` is meaningful in IDLE (open loop: on the pacer's heap, or behind while BUSY).
NEW = 0  # made, not ramped yet
WAITGO = 1  # ramped: its first echo done, waiting for the load to start
IDLE = 2  # between messages
CONNECTING = 3  # a message waits for its non-blocking connect
BUSY = 4  # a message sent (or being sent) and its echo being read
BACKOFF = 5  # after a failed ramp, or an error in closed loop, until its back-off ends
DEAD = 6  # dropped by its user; its socket is closed


class Conn:
    """One connection's state (``__slots__``: 10,000 of them per worker)."""

    __slots__ = ("uid", "phase", "seq", "state", "sock", "fd", "msg", "got", "out",
                 "intended", "sent", "deadline", "measured", "due", "ever_connected",
                 "ramping", "ever_served", "broken", "wake")

    def __init__(self, uid: int, seq: int, phase: float) -> None:
        self.uid = uid
        self.phase = phase  # open loop: first send at go + phase * period
        self.seq = seq
        self.state = NEW
        self.sock: socket.socket | None = None
        self.fd = -1
        self.msg = b""
        self.got = 0
        self.out: memoryview | None = None  # the unsent rest of a partial send
        self.intended = self.sent = 0.0
        self.deadline = math.inf
        self.measured = False
        self.due = math.inf
        self.ever_connected = False
        self.ramping = False  # its messages are the ramp's until one is verified
        self.ever_served = False
        self.broken: str | None = None  # error kind its next message takes
        self.wake = math.inf  # BACKOFF: when it ends


class Driver:
    """Every connection of one worker on one epoll (see the module docstring).

    Invariants: ``by_fd`` holds exactly the connections with a socket, under its fd; a
    connection is on the pacer's heap or ``backoff`` only while IDLE or BACKOFF (stale
    entries of DEAD connections are skipped); ``rec.inflight`` counts the BUSY or
    CONNECTING connections whose message is in the measure window.
    """

    def __init__(self, load: Load, rec: Recorder, clock: Callable[[], float] = perf_counter
                 ) -> None:
        self.load = load
        self.rec = rec
        self.clock = clock
        self.ep = _epoll()
        self.by_fd: dict[int, Conn] = {}
        self.conns: set[Conn] = set()
        self.pacer = Pacer(load.period) if load.period else None
        self.backoff: list[tuple[float, int, Conn]] = []  # heap of (wake, tie, conn)
        self._ties = 0
        self.catchup: list[Conn] = []  # open loop: behind their schedule, to send at once
        self.going = False
        self.waiting_go: list[Conn] = []
        self.addr = (load.host, load.port)
        self.sweep_s = min(SWEEP_S, load.timeout / 10)
        self._next_sweep = 0.0
        self._prev_poll = 0.0  # when the previous poll returned (or the driver woke)

    # -- what users ask (from their own greenlets)

    def attach(self, uid: int, seq: int, phase: float) -> Conn:
        c = Conn(uid, seq, phase)
        self.conns.add(c)
        return c

    def ramp(self, c: Conn) -> None:
        """Start ``c``'s ramp: connect and complete one echo, tried again after a back-off
        until it succeeds; then ``c`` waits for :meth:`go` (or starts, if it has come)."""
        assert c.state == NEW, "ramp is a connection's first step"
        c.ramping = True
        self._begin(c, self.clock())

    def drop(self, c: Conn) -> None:
        """The user is stopped: close the connection and forget it."""
        if c.state in (BUSY, CONNECTING) and c.measured:
            self.rec.inflight -= 1
        c.state = DEAD
        c.deadline = math.inf
        self._close(c)
        self.conns.discard(c)

    def go(self) -> None:
        """Start the load on every ramped connection (the master's "lg_go")."""
        self.going = True
        now = self.clock()
        for c in self.waiting_go:
            if c.state == WAITGO:
                self._start(c, now)
        self.waiting_go = []

    # -- the loop

    def run(self) -> None:
        """The driver's greenlet: turns until it is killed (with the case's greenlets).

        With nothing ready, a wait shorter than what is left of :data:`YIELD_S` since the
        hub last ran is spent in the driver's own ``epoll_wait`` (one syscall, no switch);
        a longer one through the hub, which serves Locust meanwhile.
        """
        hub = get_hub()
        watcher = hub.loop.io(self.ep.fileno(), 1)
        self._prev_poll = yielded = self.clock()
        timeout = 0.0
        try:
            while True:
                busy = self.turn(timeout)
                timeout = 0.0
                now = self._prev_poll
                if busy:
                    if now - yielded >= YIELD_S:
                        gevent.sleep(0)
                        yielded = self.clock()
                    continue
                wait = self._wait_for(now)
                if now + wait < yielded + YIELD_S:
                    timeout = wait
                else:
                    self._idle(hub, watcher, wait)
                    yielded = self._prev_poll
        finally:
            watcher.close()
            self.ep.close()

    def turn(self, timeout: float = 0.0) -> bool:
        """One bounded turn, its poll waiting up to ``timeout`` s for a ready socket; True
        if it found work (more may be waiting)."""
        now = self.clock()
        sends = self._end_backoffs(now)
        if self.pacer is not None:
            sends += self._send_due(now)
        if sends:
            timeout = 0.0
        events = self.ep.poll(timeout, MAX_EVENTS)
        polled = self.clock()
        # A socket reported at once was ready since the last poll at the latest; one
        # that woke a blocked poll, since it woke it.
        since = self._prev_poll if polled - now < BLOCKED_S else polled
        for fd, ev in events:
            c = self.by_fd.get(fd)
            if c is None:
                continue
            if c.state == CONNECTING:
                self._connected(c, polled)
                continue
            if ev & EPOLLOUT and c.out is not None:
                self._send_rest(c, polled)
            if ev & (EPOLLIN | EPOLLERR | EPOLLHUP) and c.sock is not None:
                self._readable(c, since)
        self._prev_poll = polled
        if polled >= self._next_sweep:
            self._sweep(polled)
        return bool(events) or sends > 0 or bool(self.catchup)

    def _wait_for(self, now: float) -> float:
        """How long the driver may wait for a socket: until the next due send (less
        :data:`EARLY_S`, which a wait may overshoot), back-off end or deadline sweep."""
        wake = min(self._next_sweep, now + IDLE_WAIT_MAX_S)
        nd = self.pacer.next_due() if self.pacer is not None else None
        if nd is not None:
            wake = min(wake, nd - EARLY_S)
        if self.backoff:
            wake = min(wake, self.backoff[0][0])
        return max(0.0, wake - now)

    def _idle(self, hub, watcher, wait: float) -> None:
        """Wait through the hub until a socket is ready or ``wait`` s have passed."""
        w = Waiter(hub)
        timer = hub.loop.timer(wait)
        watcher.start(w.switch, None)
        timer.start(w.switch, None)
        try:
            w.get()
        finally:
            watcher.stop()
            timer.close()
        self._prev_poll = self.clock()

    # -- pacing

    def _ramped(self, c: Conn, now: float) -> None:
        """``c`` completed its first echo: it waits for the load, or starts it."""
        c.ramping = False
        if not self.load.persistent:
            self._close(c)
        c.state = WAITGO
        if self.going:
            self._start(c, now)
        else:
            self.waiting_go.append(c)

    def _start(self, c: Conn, now: float) -> None:
        """The load starts for ``c``: closed loop sends now, open loop at its phase."""
        c.state = IDLE
        if self.pacer is not None:
            self.pacer.start(c, now + c.phase * self.pacer.period)
        else:
            self._begin(c, now)

    def _send_due(self, now: float) -> int:
        """Open loop: the catch-up sends, then the timed sends due now (at most
        MAX_SENDS)."""
        pacer, rec, n = self.pacer, self.rec, 0
        if self.catchup:
            behind = self.catchup[:MAX_SENDS]
            del self.catchup[:MAX_SENDS]
            for c in behind:
                if c.state == IDLE:
                    n += 1
                    self._begin(c, pacer.sent(c, now), now)
        while n < MAX_SENDS:
            c = pacer.pop_due(now)
            if c is None:
                break
            if c.state != IDLE:
                continue  # dropped meanwhile
            n += 1
            t = self.clock()
            rec.late(c.due, t)
            self._begin(c, pacer.sent(c, t), t)
        return n

    def _end_backoffs(self, now: float) -> int:
        """Connections whose back-off has ended try again (a ramp, or closed loop's next
        message after an error); at most MAX_SENDS."""
        n = 0
        while self.backoff and self.backoff[0][0] <= now and n < MAX_SENDS:
            c = heapq.heappop(self.backoff)[2]
            if c.state == BACKOFF:
                n += 1
                c.state = IDLE
                self._begin(c, now)
        return n

    def _back_off(self, c: Conn, until: float) -> None:
        c.state = BACKOFF
        c.wake = until
        self._ties += 1
        heapq.heappush(self.backoff, (until, self._ties, c))

    def _next(self, c: Conn, now: float) -> None:
        """``c`` finished a message (or failed one) at ``now``: its next one."""
        if c.ramping:
            if c.ever_served:
                self._ramped(c, now)
            else:
                self._back_off(c, now + RAMP_BACKOFF_S * (0.5 + random.random()))
            return
        if self.pacer is None:
            self._begin(c, now)
        else:
            c.state = IDLE
            if self.pacer.free(c, now):  # behind its schedule: a catch-up send this turn
                self.catchup.append(c)

    # -- one message

    def _begin(self, c: Conn, intended: float, now: float | None = None) -> None:
        """Send ``c``'s next message, intended at ``intended`` (connecting first if it
        has no socket)."""
        if now is None:
            now = intended
        rec = self.rec
        c.intended, c.sent = intended, now
        c.deadline = now + self.load.timeout
        c.measured = rec.start <= intended < rec.end
        if c.measured:
            rec.inflight += 1
        if c.broken is not None:
            kind, c.broken = c.broken, None
            self._fail(c, kind, now)
            return
        c.msg = message(c.seq, self.load.size)
        c.seq += 1
        c.got = 0
        if c.sock is None:
            self._connect(c, now)
        else:
            c.state = BUSY
            self._send(c, now)

    def _connect(self, c: Conn, now: float) -> None:
        s = _socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        err = s.connect_ex(self.addr)
        if err not in (0, errno.EINPROGRESS):
            s.close()
            self._fail(c, classify(err), now)
            return
        c.sock, c.fd = s, s.fileno()
        self.by_fd[c.fd] = c
        c.state = CONNECTING
        self.ep.register(c.fd, EPOLLOUT)

    def _connected(self, c: Conn, now: float) -> None:
        err = c.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ERROR)
        if err:
            self._fail(c, classify(err), now)
            return
        if not c.ever_connected:
            c.ever_connected = True
            self.rec.connected += 1
        self.ep.modify(c.fd, EPOLLIN)
        c.state = BUSY
        self._send(c, now)

    def _send(self, c: Conn, now: float) -> None:
        msg = c.msg
        try:
            k = c.sock.send(msg)
        except BlockingIOError:
            k = 0
        except OSError as e:
            self._fail(c, classify(e.errno), now)
            return
        if k < len(msg):
            c.out = memoryview(msg)[k:]
            self.ep.modify(c.fd, EPOLLIN | EPOLLOUT)

    def _send_rest(self, c: Conn, now: float) -> None:
        try:
            k = c.sock.send(c.out)
        except BlockingIOError:
            return
        except OSError as e:
            self._fail(c, classify(e.errno), now)
            return
        if k < len(c.out):
            c.out = c.out[k:]
        else:
            c.out.release()
            c.out = None
            self.ep.modify(c.fd, EPOLLIN)

    def _readable(self, c: Conn, since: float) -> None:
        """Read what is ready on ``c``; ``since``: when the driver could last have seen
        it ready (the lag of a completed echo is counted from there)."""
        now = self.clock()
        if c.state != BUSY:
            self._unsolicited(c)
            return
        msg, got = c.msg, c.got
        n = len(msg)
        try:
            data = c.sock.recv(min(n - got, RECV_MAX))
        except BlockingIOError:
            return
        except OSError as e:
            self._fail(c, classify(e.errno), now)
            return
        k = len(data)
        if not k:
            self._fail(c, "closed", now)
            return
        if (data != msg) if k == n else (data != msg[got:got + k]):
            self._fail(c, "corrupt", now)
            return
        got += k
        if got < n:
            c.got = got
            return
        rec = self.rec
        rec.sample(c.uid, c.intended, c.sent, now, n, since)
        if c.measured:
            rec.inflight -= 1
        c.deadline = math.inf
        if c.ramping:
            c.ever_served = True
            rec.served += 1
        if not self.load.persistent:
            self._close(c)
        self._next(c, now)

    def _unsolicited(self, c: Conn) -> None:
        """Bytes or an end of stream on a connection with nothing outstanding: it is
        broken; its next message takes the error."""
        try:
            data = c.sock.recv(4096)
            kind = "corrupt" if data else "closed"
        except BlockingIOError:
            return
        except OSError as e:
            kind = classify(e.errno)
        c.broken = kind
        self._close(c)

    def _fail(self, c: Conn, kind: str, now: float) -> None:
        """``c``'s message failed with ``kind``: counted, the socket closed."""
        rec = self.rec
        self._close(c)
        c.deadline = math.inf
        if c.ramping and not c.ever_connected:
            rec.connect_error(kind)
        else:
            rec.error(kind, c.intended)
        if c.measured:
            rec.inflight -= 1
            c.measured = False
        if self.pacer is None and not c.ramping:
            self._back_off(c, now + ERROR_BACKOFF_S)
            return
        self._next(c, now)

    def _close(self, c: Conn) -> None:
        if c.sock is None:
            return
        self.by_fd.pop(c.fd, None)
        try:
            self.ep.unregister(c.fd)
        except (OSError, ValueError):
            pass  # never registered (a connect that failed at once)
        c.sock.close()
        c.sock, c.fd = None, -1
        if c.out is not None:
            c.out.release()
            c.out = None

    def _sweep(self, now: float) -> None:
        """Messages past their deadline are ``timeout``s."""
        self._next_sweep = now + self.sweep_s
        for c in [c for c in self.conns if c.deadline <= now]:
            if c.state in (BUSY, CONNECTING):
                self._fail(c, "timeout", now)
