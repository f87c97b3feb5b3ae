"""Signal delivery to channels (``rt.signal``), after Go's os/signal.

``notify(ch, SIGTERM, ...)`` makes the runtime send each arriving signal (a
``signal.Signals``) on ``ch`` without blocking: if ``ch`` is full the signal is dropped, as
Go does, so give it a buffer. ``stop(ch)`` ends delivery to ``ch``; a signal that nobody is
notified of any more gets its previous disposition back.

How it reaches a G while every M sleeps in ``epoll_wait``: the C-level handler that CPython
installs for a signal with a Python handler writes the signal number to the wakeup fd
(``signal.set_wakeup_fd``), one end of a non-blocking socketpair whose other end is
registered with the netpoller. That wakes the poller; a runtime G (Go's ``signal.loop``)
reads the numbers and fans them out. The Python-level handler itself is a no-op, there only
so the default action (terminate) is not taken. Handlers and the wakeup fd are restored when
the run ends.

CPython lets only the main thread install signal handlers, so the first ``notify`` for a
given signal in a run must come from a G running on the main thread (the main G before it
first blocks is). Later calls for that signal, and ``stop``, work from any G.
"""

from __future__ import annotations

import signal as _signal
import socket
import threading
from typing import Any

from . import netpoll, proc
from .select import select, send

__all__ = ["notify", "stop"]

_lock = threading.Lock()
_state: _SigState | None = None


class _SigState:
    """Signal plumbing for one run (one Netpoller)."""

    def __init__(self, np: netpoll.Netpoller) -> None:
        self.np = np
        self.rsock, self.wsock = socket.socketpair()
        self.rsock.setblocking(False)
        self.wsock.setblocking(False)
        self.prev_wakeup = _signal.set_wakeup_fd(self.wsock.fileno(), warn_on_full_buffer=False)
        self.pd = np.open(self.rsock.fileno())
        self.chans: dict[int, list[Any]] = {}
        self.prev: dict[int, Any] = {}
        self.loop_started = False
        np.on_close.append(self.restore)

    def install(self, sig: int) -> None:
        if sig in self.prev:
            return
        self.prev[sig] = _signal.signal(sig, _handler)

    def restore(self) -> None:
        """Put back the previous handlers and wakeup fd (run's end; needs the main thread)."""
        global _state
        with _lock:
            if _state is self:
                _state = None
        try:
            for sig, h in self.prev.items():
                _signal.signal(sig, h if h is not None else _signal.SIG_DFL)
            _signal.set_wakeup_fd(self.prev_wakeup)
        except ValueError:  # not the main thread: the process is going away anyway
            pass
        self.prev.clear()
        self.chans.clear()
        # The run is over: drop the fd without waking the loop G (it is abandoned with the
        # other Gs, as in Go, rather than made runnable on a scheduler that has stopped).
        self.np.pds.pop(self.rsock.fileno(), None)
        self.rsock.close()
        self.wsock.close()

    async def loop(self) -> None:
        # Go's os/signal.loop: read signal numbers, send each to every notified channel
        # without blocking.
        rsock = self.rsock
        pd = self.pd
        while True:
            try:
                data = rsock.recv(256)
            except BlockingIOError:
                data = None
            except OSError:
                return
            if data is None:
                try:
                    await pd.wait("r")
                except netpoll.ErrNetClosing:
                    return
                continue
            for signum in data:
                chans = self.chans.get(signum)
                if not chans:
                    continue
                try:
                    sig: Any = _signal.Signals(signum)
                except ValueError:
                    sig = signum
                for ch in list(chans):
                    await select(send(ch, sig), default=True)


def _handler(signum: int, frame: Any) -> None:
    # Runs in the main thread, some time after the C handler already woke the poller.
    # If nobody is notified of signum any more, take the previous disposition and re-raise.
    st = _state
    if st is not None and st.chans.get(signum):
        return
    prev = st.prev.pop(signum, _signal.SIG_DFL) if st is not None else _signal.SIG_DFL
    if prev is None:
        prev = _signal.SIG_DFL
    _signal.signal(signum, prev)
    if callable(prev):
        prev(signum, frame)
    elif prev == _signal.SIG_DFL:
        _signal.raise_signal(signum)


def _getstate() -> _SigState:
    global _state
    np = netpoll.netpollGenericInit()
    with _lock:
        st = _state
        if st is None or st.np is not np:
            if threading.current_thread() is not threading.main_thread():
                raise RuntimeError(
                    "rt.signal.notify: the first call in a run must come from a goroutine on"
                    " the main thread (call it in main before it blocks)"
                )
            st = _state = _SigState(np)
        return st


def notify(ch: Any, *signals: int) -> None:
    """Relay ``signals`` (all of SIGINT, SIGTERM, SIGHUP, SIGQUIT if none given) to ``ch``.

    Sends never block: a signal arriving while ``ch`` is full is dropped for ``ch``. Calling
    it again for the same channel adds signals. Must be called inside ``rt.run``.
    """
    if ch is None:
        raise ValueError("rt.signal.notify: nil channel")
    if not signals:
        signals = (_signal.SIGINT, _signal.SIGTERM, _signal.SIGHUP, _signal.SIGQUIT)
    st = _getstate()
    main = threading.current_thread() is threading.main_thread()
    for sig in signals:
        sig = int(sig)
        if sig not in st.prev:
            if not main:
                raise RuntimeError(
                    f"rt.signal.notify: signal {sig} must first be notified from the main thread"
                )
            st.install(sig)
        chans = st.chans.setdefault(sig, [])
        if not any(c is ch for c in chans):
            chans.append(ch)
    if not st.loop_started:
        st.loop_started = True
        proc.go(st.loop)


def stop(ch: Any) -> None:
    """Stop relaying signals to ``ch``. Signals nobody is notified of any more get their
    previous handler back (at once on the main thread, else when the signal next arrives)."""
    st = _state
    if st is None:
        return
    main = threading.current_thread() is threading.main_thread()
    for sig, chans in list(st.chans.items()):
        chans[:] = [c for c in chans if c is not ch]
        if not chans:
            del st.chans[sig]
            if main and sig in st.prev:
                h = st.prev.pop(sig)
                _signal.signal(sig, h if h is not None else _signal.SIG_DFL)
