"""Channel semantics, ported from the behaviour of Go's chan_test.go."""


import pytest

import goruntime as rt
from goruntime.chan import MAX_CAP
from tests.goruntime.support import until

pytestmark = pytest.mark.timeout(60)


def test_buffered_channel_is_fifo_and_reports_len_and_cap(procs):
    async def main():
        c = rt.Chan(5)
        assert (c.len(), c.cap(), len(c)) == (0, 5, 0)
        for i in range(5):
            await c.send(i)
        assert c.len() == 5
        return [await c.recv() for _ in range(5)]

    assert rt.run(main(), procs=procs) == [0, 1, 2, 3, 4]


def test_unbuffered_send_completes_only_when_a_receiver_takes_the_value(procs):
    async def main():
        c = rt.Chan()
        events = []

        async def sender():
            events.append("send start")
            await c.send(42)
            events.append("send done")

        rt.go(sender)
        await until(lambda: len(c._sendq) == 1)  # the sender is blocked
        await rt.sleep(0.01)
        events.append("recv")
        v = await c.recv()
        await rt.sleep(0.01)
        return v, events

    v, events = rt.run(main(), procs=procs)
    assert v == 42
    assert events == ["send start", "recv", "send done"]


def test_unbuffered_value_is_handed_directly_to_a_waiting_receiver(procs):
    async def main():
        c = rt.Chan()
        out = rt.Chan(1)

        async def receiver():
            await out.send(await c.recv())

        rt.go(receiver)
        await until(lambda: len(c._recvq) == 1)  # receiver parked in c.recvq
        await c.send("x")  # does not block: a receiver is waiting
        assert len(c._recvq) == 0 and c.len() == 0
        return await out.recv()

    assert rt.run(main(), procs=procs) == "x"


def test_recv_from_full_buffer_moves_waiting_senders_value_to_the_tail(procs):
    async def main():
        c = rt.Chan(2)
        await c.send(1)
        await c.send(2)

        async def sender(v):
            await c.send(v)

        rt.go(sender, 3)
        await until(lambda: len(c._sendq) == 1)
        rt.go(sender, 4)
        await until(lambda: len(c._sendq) == 2)
        got = [await c.recv() for _ in range(4)]
        return got

    assert rt.run(main(), procs=procs) == [1, 2, 3, 4]


def test_close_wakes_every_waiting_receiver_with_zero_value_and_not_ok(procs):
    async def main():
        c = rt.Chan()
        res = rt.Chan(10)

        async def receiver():
            await res.send(await c.recv2())

        for _ in range(5):
            rt.go(receiver)
        await until(lambda: len(c._recvq) == 5)
        c.close()
        return [await res.recv() for _ in range(5)]

    assert rt.run(main(), procs=procs) == [(None, False)] * 5


def test_close_wakes_every_waiting_sender_with_a_panic(procs):
    async def main():
        c = rt.Chan()
        res = rt.Chan(10)

        async def sender(i):
            try:
                await c.send(i)
                await res.send("sent")
            except rt.Panic as e:
                await res.send(str(e))

        for i in range(3):
            rt.go(sender, i)
        await until(lambda: len(c._sendq) == 3)
        c.close()
        return [await res.recv() for _ in range(3)]

    assert rt.run(main(), procs=procs) == ["send on closed channel"] * 3


def test_closed_buffered_channel_drains_before_reporting_not_ok(procs):
    async def main():
        c = rt.Chan(3)
        await c.send(1)
        await c.send(2)
        c.close()
        return [await c.recv2() for _ in range(3)] + [await c.recv()]

    assert rt.run(main(), procs=procs) == [(1, True), (2, True), (None, False), None]


@pytest.mark.parametrize(
    "op, msg",
    [
        ("send", "send on closed channel"),
        ("close", "close of closed channel"),
        ("close_nil", "close of nil channel"),
    ],
)
def test_panics_carry_gos_exact_messages_and_can_be_recovered(procs, op, msg):
    async def main():
        c = rt.Chan(1)
        c.close()
        try:
            if op == "send":
                await c.send(1)
            elif op == "close":
                c.close()
            else:
                rt.close(None)
        except rt.Panic as e:
            return str(e)
        return "no panic"

    assert rt.run(main(), procs=procs) == msg


def test_unrecovered_panic_ends_run(procs):
    async def main():
        c = rt.Chan()
        c.close()
        c.close()

    with pytest.raises(rt.Panic, match="^close of closed channel$"):
        rt.run(main(), procs=procs)


def test_async_for_ranges_until_close(procs):
    async def main():
        c = rt.Chan(2)

        async def producer():
            for i in range(20):
                await c.send(i)
            c.close()

        rt.go(producer)
        return [v async for v in c]

    assert rt.run(main(), procs=procs) == list(range(20))


@pytest.mark.parametrize("cap", [0, 1, 10])
def test_multi_consumer_no_value_lost_or_duplicated(procs, cap):
    """As Go's TestMultiConsumer: many producers and consumers through one channel."""
    nwork, nitems = 10, 2000

    async def main():
        q = rt.Chan(cap)
        r = rt.Chan(nwork)
        wg = rt.WaitGroup()

        async def worker():
            n = s = 0
            async for v in q:
                n += 1
                s += v
            await r.send((n, s))
            wg.done()

        for _ in range(nwork):
            wg.add(1)
            rt.go(worker)
        expect = 0
        for i in range(nitems):
            v = i * 7919 % 1000
            expect += v
            await q.send(v)
        q.close()
        await wg.wait()
        n = s = 0
        for _ in range(nwork):
            a, b = await r.recv()
            n += a
            s += b
        return n, s, expect

    n, s, expect = rt.run(main(), procs=procs)
    assert n == nitems
    assert s == expect


@pytest.mark.parametrize("cap", [-1, 1 << 59, (1 << 63) - 1, MAX_CAP + 1],
                         ids=["negative", "over-maxAlloc", "mul-overflow", "limit+1"])
def test_capacity_go_rejects_panics(cap):
    """Go's chancap.go: make(chan int, n) panics for these n on a 64-bit machine."""
    with pytest.raises(rt.Panic, match="^makechan: size out of range$"):
        rt.Chan(cap)


def test_capacity_at_go_limit_is_accepted():
    """(maxAlloc - hchanSize) / 8 = 2**45 - 12 is the largest capacity Go's makechan allows."""
    assert MAX_CAP == 2**45 - 12
    assert rt.Chan(MAX_CAP).cap() == MAX_CAP


def test_send_skips_a_finished_selects_waiter_and_hands_the_value_to_the_next_receiver():
    """recvq holds a select's sudog whose select already won elsewhere, then a plain G:
    the value goes to the plain G (Go's dequeue skips a select that is done)."""

    async def main():
        c, d = rt.Chan(), rt.Chan()
        got = []

        async def selector():
            i, v, _ = await rt.select(rt.recv(c), rt.recv(d))
            got.append(("select", i, v))

        async def plain():
            got.append(("plain", await c.recv()))

        rt.go(selector)
        await until(lambda: len(c._recvq) == 1)
        rt.go(plain)
        await until(lambda: len(c._recvq) == 2)
        await d.send("d")  # the select wins on d; its sudog stays on c until it runs
        await c.send("c")
        await until(lambda: len(got) == 2)
        return sorted(got)

    assert rt.run(main(), procs=1) == [("plain", "c"), ("select", 1, "d")]


# Chan.send and Chan.recv inline the common cases of chansend/chanrecv (and of proc.ready);
# select with one case goes through chansend/chanrecv themselves. The same scenario through
# either must give the same values and the same order of running Gs afterwards.


async def _send_direct(c, v):
    await c.send(v)


async def _send_ref(c, v):
    await rt.select(rt.send(c, v))


async def _recv_direct(c):
    return await c.recv()


async def _recv_ref(c):
    return (await rt.select(rt.recv(c)))[1]


async def _handoff_to_parked_receiver(send, recv, log):
    c = rt.Chan()

    async def receiver():
        log.append(("got", await recv(c)))

    async def bystander():
        log.append("bystander")

    rt.go(receiver)
    await until(lambda: len(c._recvq) == 1)
    rt.go(bystander)  # in runnext: the receiver displaces it to the local queue
    await send(c, 1)
    log.append("sent")
    await rt.gosched()


async def _run_from_the_local_queue(g, log):
    """Run g from the local queue with runnext empty and another G queued behind it."""
    done = rt.Chan()

    async def other():
        log.append("other")

    async def late():
        log.append("late")
        await done.send(None)

    for f in (g, late, other):  # runnext: other; local queue: g, late
        rt.go(f)
    await done.recv()


async def _handoff_with_runnext_empty(send, recv, log):
    c = rt.Chan()

    async def receiver():
        log.append(("got", await recv(c)))

    async def sender():
        await send(c, 1)  # runnext is empty: the receiver goes there, ahead of "late"
        log.append("sent")

    rt.go(receiver)
    await until(lambda: len(c._recvq) == 1)
    await _run_from_the_local_queue(sender, log)


async def _take_from_parked_sender(send, recv, log):
    c = rt.Chan()

    async def sender():
        await send(c, 2)
        log.append("sender resumed")

    async def receiver():
        log.append(("got", await recv(c)))  # runnext is empty: the sender goes there

    rt.go(sender)
    await until(lambda: len(c._sendq) == 1)
    await _run_from_the_local_queue(receiver, log)


async def _buffered_then_full(send, recv, log):
    c = rt.Chan(1)
    await send(c, 3)  # room in the buffer

    async def sender():
        await send(c, 4)  # full: waits
        log.append("sender resumed")

    rt.go(sender)
    await until(lambda: len(c._sendq) == 1)
    log.append(("got", await recv(c)))  # takes 3, moves 4 into the buffer
    log.append(("got", await recv(c)))
    await rt.gosched()


async def _receiver_waits_for_sender(send, recv, log):
    c = rt.Chan()

    async def sender():
        log.append("sending")
        await send(c, 5)
        log.append("sender resumed")

    rt.go(sender)
    log.append(("got", await recv(c)))
    await rt.gosched()


@pytest.mark.parametrize("scenario", [_handoff_to_parked_receiver, _handoff_with_runnext_empty,
                                      _take_from_parked_sender,
                                      _buffered_then_full, _receiver_waits_for_sender])
def test_inlined_send_and_recv_behave_as_chansend_and_chanrecv(scenario):
    def trace(send, recv):
        log = []

        async def main():
            await scenario(send, recv, log)
            await rt.sleep(0.01)
            return log

        return rt.run(main(), procs=1)

    reference = trace(_send_ref, _recv_ref)
    assert trace(_send_direct, _recv_direct) == reference
    assert trace(_send_direct, _recv_ref) == reference
    assert trace(_send_ref, _recv_direct) == reference
