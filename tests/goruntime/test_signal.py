"""rt.signal: signals delivered to channels while every M sleeps in epoll; state restored."""

from __future__ import annotations

import os
import signal
import threading

import pytest

import goruntime as rt

pytestmark = pytest.mark.timeout(60)


def _kill_later(sig: int, delay: float, times: int = 1) -> threading.Timer:
    def fire() -> None:
        for _ in range(times):
            os.kill(os.getpid(), sig)

    t = threading.Timer(delay, fire)
    t.start()
    return t


def test_signal_reaches_a_channel_while_ms_are_idle_in_epoll(procs):
    before = signal.getsignal(signal.SIGUSR1)

    async def main():
        ch = rt.Chan(1)
        rt.signal.notify(ch, signal.SIGUSR1)
        # Nothing else to do: every M sleeps (one in epoll_wait) until the signal arrives.
        _kill_later(signal.SIGUSR1, 0.2)
        return await ch.recv()

    assert rt.run(main(), procs=procs) == signal.SIGUSR1
    # Handlers and the wakeup fd are back as they were.
    assert signal.getsignal(signal.SIGUSR1) == before
    assert signal.set_wakeup_fd(-1) == -1


def test_full_channel_drops_instead_of_blocking(procs):
    """A full channel loses the signal; the relay does not wait on it, so another channel
    notified of the same signal still gets every one. Each signal is sent only after the
    previous one was relayed, so the kernel cannot merge them."""

    async def main():
        full, live = rt.Chan(1), rt.Chan(1)
        rt.signal.notify(full, signal.SIGUSR2)
        rt.signal.notify(live, signal.SIGUSR2)
        got = []
        for _ in range(3):
            os.kill(os.getpid(), signal.SIGUSR2)
            i, v, _ok = await rt.select(rt.recv(live), rt.recv(rt.after(10.0)))
            if i == 1:
                break  # the relay is stuck on the full channel
            got.append(v)
        return got, full.len()

    got, left = rt.run(main(), procs=procs)
    assert got == [signal.SIGUSR2] * 3, f"live channel got {len(got)} of 3 signals"
    assert left == 1


def test_one_signal_fans_out_to_every_notified_channel(procs):
    async def main():
        a, b = rt.Chan(1), rt.Chan(1)
        rt.signal.notify(a, signal.SIGUSR1, signal.SIGUSR2)
        rt.signal.notify(b, signal.SIGUSR2)
        _kill_later(signal.SIGUSR2, 0.05)
        return await a.recv(), await b.recv()

    assert rt.run(main(), procs=procs) == (signal.SIGUSR2, signal.SIGUSR2)


def test_stop_gives_the_signal_back_to_its_previous_handler(procs):
    seen = []
    prev = signal.signal(signal.SIGUSR1, lambda s, f: seen.append(s))
    try:

        async def main():
            ch = rt.Chan(1)
            rt.signal.notify(ch, signal.SIGUSR1)
            rt.signal.stop(ch)
            os.kill(os.getpid(), signal.SIGUSR1)
            await rt.sleep(0.2)
            return ch.len()

        assert rt.run(main(), procs=procs) == 0
        assert seen == [signal.SIGUSR1]
    finally:
        signal.signal(signal.SIGUSR1, prev)


def test_notify_needs_a_channel():
    async def main():
        with pytest.raises(ValueError):
            rt.signal.notify(None, signal.SIGUSR1)
        return True

    assert rt.run(main(), procs=1)
