"""select semantics, ported from the behaviour of Go's select_test.go / chan_test.go."""


import pytest
from scipy.stats import chisquare

import goruntime as rt
from tests.goruntime.support import until

pytestmark = pytest.mark.timeout(60)


def test_default_is_taken_only_when_nothing_is_ready(procs):
    async def main():
        c = rt.Chan(1)
        first = await rt.select(rt.recv(c), default=True)
        await c.send(7)
        second = await rt.select(rt.recv(c), default=True)
        return first, second

    assert rt.run(main(), procs=procs) == ((-1, None, False), (0, 7, True))


def test_nil_channel_is_never_ready(procs):
    async def main():
        c = rt.Chan(1)
        await c.send(1)
        got = [await rt.select(rt.recv(None), rt.send(None, 1), rt.recv(c)) for _ in range(1)]
        got.append(await rt.select(rt.recv(None), rt.send(None, 2), default=True))
        return got

    assert rt.run(main(), procs=procs) == [(2, 1, True), (-1, None, False)]


def test_select_on_only_nil_channels_blocks_forever(procs):
    async def main():
        await rt.select(rt.recv(None))

    with pytest.raises(rt.Deadlock):
        rt.run(main(), procs=procs)


def test_select_with_no_cases_blocks_forever(procs):
    async def main():
        await rt.select()

    with pytest.raises(rt.Deadlock, match="all goroutines are asleep - deadlock!"):
        rt.run(main(), procs=procs)


def test_recv_case_on_closed_channel_reports_not_ok(procs):
    async def main():
        c = rt.Chan()
        c.close()
        return await rt.select(rt.recv(c))

    assert rt.run(main(), procs=procs) == (0, None, False)


def test_send_case_on_closed_channel_panics(procs):
    async def main():
        c = rt.Chan()
        c.close()
        try:
            await rt.select(rt.send(c, 1), default=True)
        except rt.Panic as e:
            return str(e)

    assert rt.run(main(), procs=procs) == "send on closed channel"


def test_blocked_select_send_case_panics_when_channel_is_closed(procs):
    async def main():
        c, d = rt.Chan(), rt.Chan()
        res = rt.Chan(1)

        async def g():
            try:
                await rt.select(rt.send(c, 1), rt.recv(d))
            except rt.Panic as e:
                await res.send(str(e))

        rt.go(g)
        await until(lambda: len(c._sendq) == 1)
        c.close()
        msg = await res.recv()
        return msg, len(d._recvq)

    assert rt.run(main(), procs=procs) == ("send on closed channel", 0)


def test_woken_select_leaves_no_sudog_on_the_other_channels(procs):
    async def main():
        a, b, c = rt.Chan(), rt.Chan(), rt.Chan()
        res = rt.Chan(1)

        async def g():
            await res.send(await rt.select(rt.recv(a), rt.recv(b), rt.send(c, 5)))

        rt.go(g)
        await until(lambda: (len(a._recvq), len(b._recvq), len(c._sendq)) == (1, 1, 1))
        await b.send("b")
        r = await res.recv()
        return r, (len(a._recvq), len(b._recvq), len(c._sendq))

    assert rt.run(main(), procs=procs) == ((1, "b", True), (0, 0, 0))


def test_nonblock_select_race_default_never_wins_while_a_case_is_ready(procs):
    """As Go's TestNonblockSelectRace."""

    async def main():
        done = rt.Chan(1)
        for _ in range(2000):
            c1, c2 = rt.Chan(1), rt.Chan(1)
            await c1.send(1)

            async def g(c1=c1, c2=c2):
                i, _, _ = await rt.select(rt.recv(c1), rt.recv(c2), default=True)
                await done.send(i != -1)

            rt.go(g)
            await c2.send(1)
            await rt.select(rt.recv(c1), default=True)
            if not await done.recv():
                return False
        return True

    assert rt.run(main(), procs=procs) is True


def test_pseudo_random_send_uses_both_arms(procs):
    """As Go's TestPseudoRandomSend: select sending 0 or 1 to one receiver."""
    n = 200

    async def main():
        c = rt.Chan()
        got = []
        done = rt.Chan()

        async def receiver():
            for _ in range(n):
                got.append(await c.recv())
            await done.send(True)

        rt.go(receiver)
        for _ in range(n):
            await rt.select(rt.send(c, 0), rt.send(c, 1))
        await done.recv()
        return got

    got = rt.run(main(), procs=procs)
    n1 = sum(got)
    n0 = n - n1
    assert n0 > n // 10 and n1 > n // 10, (n0, n1)


def test_choice_among_ready_cases_is_uniform_chi_square(procs):
    """Every arm of a select with several ready cases is chosen equally often."""
    k, rounds = 4, 4000

    async def main():
        cs = [rt.Chan(1) for _ in range(k)]
        counts = [0] * k
        for c in cs:
            await c.send(0)
        for _ in range(rounds):
            i, _, _ = await rt.select(*[rt.recv(c) for c in cs])
            counts[i] += 1
            await cs[i].send(0)
        return counts

    counts = rt.run(main(), procs=procs)
    assert sum(counts) == rounds
    assert chisquare(counts).pvalue > 1e-4, counts


def test_select_duplicate_channel(procs):
    """As Go's TestSelectDuplicateChannel: the same channel in two cases."""

    async def main():
        c, d, e = rt.Chan(), rt.Chan(), rt.Chan()

        async def a():
            await rt.select(rt.recv(c), rt.recv(c), rt.recv(d))
            await e.send(9)

        rt.go(a)
        await until(lambda: len(c._recvq) == 2)  # A is queued on c first (twice)
        got_b = rt.Chan(1)

        async def b():
            await got_b.send(await c.recv())

        rt.go(b)
        await until(lambda: len(c._recvq) == 3)  # B queued on c behind A
        await d.send(7)  # wakes A, which dequeues itself from c
        await e.recv()
        await c.send(8)  # must wake B, not the already-running A
        return await got_b.recv(), len(c._recvq)

    assert rt.run(main(), procs=procs) == (8, 0)


@pytest.mark.parametrize("cap", [0, 10])
def test_self_select_send_and_receive_on_same_channel(procs, cap):
    """As Go's TestSelfSelect: no crash, no deadlock, and no G receives its own send."""

    async def main():
        wg = rt.WaitGroup()
        wg.add(2)
        c = rt.Chan(cap)
        errors = []

        async def g(p):
            for i in range(1000):
                if p == 0 or i % 2 == 0:
                    idx, v, _ = await rt.select(rt.send(c, p), rt.recv(c))
                    if idx == 1 and cap == 0 and v == p:
                        errors.append("self receive")
                else:
                    idx, v, _ = await rt.select(rt.recv(c), rt.send(c, p))
                    if idx == 0 and cap == 0 and v == p:
                        errors.append("self receive")
            wg.done()

        rt.go(g, 0)
        rt.go(g, 1)
        await wg.wait()
        return errors

    assert rt.run(main(), procs=procs) == []


def test_select_stress(procs):
    """As Go's TestSelectStress: plain and selecting senders/receivers on 4 channels."""
    n = 1000

    async def main():
        cs = [rt.Chan(0), rt.Chan(0), rt.Chan(2), rt.Chan(3)]
        wg = rt.WaitGroup()
        received = [[] for _ in cs]

        async def plain_sender(k):
            for i in range(n):
                await cs[k].send((0, i))
            wg.done()

        async def plain_receiver(k):
            for _ in range(n):
                received[k].append(await cs[k].recv())
            wg.done()

        async def select_sender():
            left = [n] * 4
            while any(left):
                cases = [
                    rt.send(c if left[k] else None, (1, n - left[k])) for k, c in enumerate(cs)
                ]
                k, _, _ = await rt.select(*cases)
                left[k] -= 1
            wg.done()

        async def select_receiver():
            left = [n] * 4
            while any(left):
                cases = [rt.recv(c if left[k] else None) for k, c in enumerate(cs)]
                k, v, ok = await rt.select(*cases)
                assert ok
                received[k].append(v)
                left[k] -= 1
            wg.done()

        for k in range(4):
            wg.add(2)
            rt.go(plain_sender, k)
            rt.go(plain_receiver, k)
        wg.add(2)
        rt.go(select_sender)
        rt.go(select_receiver)
        await wg.wait()
        return received

    received = rt.run(main(), procs=procs)
    for k in range(4):
        expect = [(0, i) for i in range(n)] + [(1, i) for i in range(n)]
        assert sorted(received[k]) == sorted(expect)
