"""goroutine: Go's answer to C10K -- a goroutine per connection over an epoll netpoller.

One accept-loop G and one G per connection, each a plain blocking-style loop (read up to
64 KiB, write all of it back, until EOF), on the goruntime M:N scheduler (``--procs`` =
GOMAXPROCS; default $GOMAXPROCS if set, as Go, else DEFAULT_PROCS = 1). A G whose socket
is not ready parks in the netpoller; no thread per connection.

Accept errors back off as Go's net/http does (servers.base.AcceptBackoff). SIGTERM/SIGINT
arrive through ``rt.signal.notify`` as values on a channel; the main G then closes the
listener and every connection (waking their Gs), waits for the Gs to finish and returns,
which ends ``rt.run``. ``GODEBUG=schedtrace=1000`` prints the scheduler's SCHED lines.

Why one P by default, where Go would take every CPU: under CPython's GIL one M runs Python
at a time whatever procs is, so extra Ps buy no parallelism for the echo loop; they only
make Ms trade the GIL (and the CPU, past the CPUs the process may run on), which costs CPU
per message and tail latency. What else would need an M is served without one: a G
blocked in ``rt.syscall`` has its P handed to another M by sysmon, and waiting on sockets
takes no M at all (the netpoller).
"""

from __future__ import annotations

import signal
import socket

import goruntime as rt
from goruntime import net as rtnet
from goruntime import netpoll
from goruntime import signal as rtsignal
from goruntime.main import gomaxprocs_env
from servers.base import READ_SIZE, AcceptBackoff, Config, Server

DEFAULT_PROCS = 1


class GoroutineServer(Server):
    name = "goroutine"

    def __init__(self, config: Config) -> None:
        super().__init__(config)
        self.conns: set[rtnet.Conn] = set()

    def serve(self, sock: socket.socket) -> None:
        procs = self.config.procs or gomaxprocs_env() or DEFAULT_PROCS
        rt.run(self._main(sock), procs=procs)

    async def _main(self, sock: socket.socket) -> None:
        stop = rt.Chan(2)
        rtsignal.notify(stop, signal.SIGTERM, signal.SIGINT)
        wake = netpoll.poll_open(self.wake_fd)
        rt.go(self._watch_shutdown, wake, stop)
        ln = rtnet.Listener(sock)
        wg = rt.WaitGroup()
        if not self.stopping:
            rt.go(self._accept_loop, ln, wg)
            await stop.recv()
        rtsignal.stop(stop)
        ln.close()
        for c in list(self.conns):
            c.close()
        await wg.wait()
        wake.close()

    async def _watch_shutdown(self, wake: netpoll.pollDesc, stop: rt.Chan) -> None:
        # shutdown() from another thread, or a signal that arrived before notify took over,
        # writes to wake_fd (servers.base); turn that into a value on `stop`.
        while True:
            self.drain_wake()
            if self.stopping:
                await rt.select(rt.send(stop, None), default=True)
                return
            try:
                await wake.wait("r")
            except netpoll.ErrNetClosing:
                return

    async def _accept_loop(self, ln: rtnet.Listener, wg: rt.WaitGroup) -> None:
        backoff = AcceptBackoff()
        while True:
            try:
                c = await ln.accept()
            except rtnet.ErrNetClosing:
                return
            except OSError as err:
                await rt.sleep(backoff.failed(err))
                continue
            backoff.succeeded()
            self.conns.add(c)
            wg.add(1)
            rt.go(self._echo, c, wg)

    async def _echo(self, c: rtnet.Conn, wg: rt.WaitGroup) -> None:
        try:
            while data := await c.read(READ_SIZE):
                await c.write(data)
        except OSError:
            pass  # reset, broken pipe, or closed by shutdown
        finally:
            c.close()
            self.conns.discard(c)
            wg.done()
