"""The book's programs (seeds/001, chapters 6-8, and Go Concurrency Patterns), with outputs."""

import time

import pytest

import goruntime as rt

pytestmark = pytest.mark.timeout(60)

PRIMES_100 = [
    2, 3, 5, 7, 11, 13, 17, 19, 23, 29, 31, 37, 41, 43, 47, 53, 59, 61, 67, 71, 73, 79, 83, 89,
    97, 101, 103, 107, 109, 113, 127, 131, 137, 139, 149, 151, 157, 163, 167, 173, 179, 181,
    191, 193, 197, 199, 211, 223, 227, 229, 233, 239, 241, 251, 257, 263, 269, 271, 277, 281,
    283, 293, 307, 311, 313, 317, 331, 337, 347, 349, 353, 359, 367, 373, 379, 383, 389, 397,
    401, 409, 419, 421, 431, 433, 439, 443, 449, 457, 461, 463, 467, 479, 487, 491, 499, 503,
    509, 521, 523, 541,
]


def test_concurrent_prime_sieve_first_100_primes(procs):
    async def generate(ch):
        i = 2
        while True:
            await ch.send(i)
            i += 1

    async def filter_(inp, out, prime):
        while True:
            i = await inp.recv()
            if i % prime != 0:
                await out.send(i)

    async def main():
        ch = rt.Chan()
        rt.go(generate, ch)
        primes = []
        for _ in range(100):
            prime = await ch.recv()
            primes.append(prime)
            ch1 = rt.Chan()
            rt.go(filter_, ch, ch1, prime)
            ch = ch1
        return primes

    assert rt.run(main(), procs=procs) == PRIMES_100


def test_fan_in_with_done_channel(procs):
    async def boring(name, done):
        c = rt.Chan()

        async def loop():
            i = 0
            while True:
                idx, _, _ = await rt.select(rt.send(c, f"{name} {i}"), rt.recv(done))
                if idx == 1:
                    return
                i += 1

        rt.go(loop)
        return c

    async def fan_in(done, *inputs):
        out = rt.Chan()

        async def forward(c):
            while True:
                idx, v, _ = await rt.select(rt.recv(c), rt.recv(done))
                if idx == 1:
                    return
                idx, _, _ = await rt.select(rt.send(out, v), rt.recv(done))
                if idx == 1:
                    return

        for c in inputs:
            rt.go(forward, c)
        return out

    async def main():
        done = rt.Chan()
        c = await fan_in(done, await boring("Joe", done), await boring("Ann", done))
        msgs = [await c.recv() for _ in range(20)]
        done.close()
        await rt.sleep(0.02)
        return msgs, rt.num_goroutine()

    msgs, ngo = rt.run(main(), procs=procs)
    joe = [m for m in msgs if m.startswith("Joe")]
    ann = [m for m in msgs if m.startswith("Ann")]
    assert len(joe) + len(ann) == 20
    assert joe == [f"Joe {i}" for i in range(len(joe))]  # each source stays in order
    assert ann == [f"Ann {i}" for i in range(len(ann))]
    assert ngo == 1  # every G saw done and returned


def test_semaphore_pattern_never_more_than_n_at_once(procs):
    n, jobs = 3, 30

    async def main():
        sem = rt.Chan(n)
        wg = rt.WaitGroup()
        st = {"now": 0, "max": 0}

        async def job():
            await sem.send(None)  # acquire
            st["now"] += 1
            st["max"] = max(st["max"], st["now"])
            await rt.sleep(0.002)
            st["now"] -= 1
            await sem.recv()  # release
            wg.done()

        for _ in range(jobs):
            wg.add(1)
            rt.go(job)
        await wg.wait()
        return st["max"]

    assert rt.run(main(), procs=procs) == n


def test_timeout_per_message_with_after(procs):
    async def main():
        c = rt.Chan()

        async def talker():
            for d in (0.0, 0.01, 0.6):  # the third is too slow
                await rt.sleep(d)
                await c.send(f"msg after {d}")

        rt.go(talker)
        got = []
        while True:
            i, v, _ = await rt.select(rt.recv(c), rt.recv(rt.after(0.2)))
            if i == 1:
                got.append("You're too slow.")
                return got
            got.append(v)

    assert rt.run(main(), procs=procs) == ["msg after 0.0", "msg after 0.01", "You're too slow."]


def test_timeout_for_whole_conversation_with_after(procs):
    async def main():
        c = rt.Chan()

        async def talker():
            i = 0
            while True:
                await rt.sleep(0.01)
                await c.send(i)
                i += 1

        rt.go(talker)
        t0 = time.monotonic()
        timeout = rt.after(0.1)
        got = []
        while True:
            i, v, _ = await rt.select(rt.recv(c), rt.recv(timeout))
            if i == 1:
                return got, time.monotonic() - t0
            got.append(v)

    got, dt = rt.run(main(), procs=procs)
    assert dt >= 0.1
    assert 1 <= len(got) <= 10
    assert got == list(range(len(got)))


def test_ticker_with_done_after_five_ticks(procs):
    async def main():
        tk = rt.Ticker(0.01)
        done = rt.Chan()

        async def stopper():
            await rt.sleep(0.055)
            await done.send(True)

        rt.go(stopper)
        ticks = 0
        while True:
            i, _, _ = await rt.select(rt.recv(done), rt.recv(tk.C))
            if i == 0:
                tk.stop()
                return ticks
            ticks += 1

    assert 2 <= rt.run(main(), procs=procs) <= 6


def test_book_fanin1_with_default_and_drain_until_closed(procs):
    """fanIn1 from the book: select over done/c1/c2 with a spinning default; main takes 5
    values, closes done, then drains result until fanIn1 closes it."""

    async def generator(done, v):
        out = rt.Chan()

        async def loop():
            while True:
                i, _, _ = await rt.select(rt.recv(done), rt.send(out, v))
                if i == 0:
                    return

        rt.go(loop)
        return out

    async def fan_in1(done, c1, c2, log):
        result = rt.Chan()

        async def loop():
            try:
                while True:
                    i, num, _ = await rt.select(
                        rt.recv(done), rt.recv(c1), rt.recv(c2), default=True)
                    if i == 0:
                        log.append("done")
                        return
                    if i == -1:
                        continue  # "continue": spin until something is ready
                    await result.send(num)
            finally:
                result.close()
                log.append("closed fanin")

        rt.go(loop)
        return result

    async def main():
        log = []
        done = rt.Chan()
        result = await fan_in1(done, await generator(done, 1), await generator(done, 2), log)
        first = [await result.recv() for _ in range(5)]
        done.close()
        drained = 0
        while True:
            _, ok = await result.recv2()
            if not ok:
                break
            drained += 1
        return first, drained, log

    first, drained, log = rt.run(main(), procs=procs)
    assert len(first) == 5 and set(first) <= {1, 2}
    assert drained < 100  # values in flight when done closed; then result is closed
    assert log == ["done", "closed fanin"]


def test_book_first_result_wins_query(procs):
    """"Moving on": every conn answers into a buffered channel with a non-blocking send;
    the first answer is used and no goroutine is left blocked."""

    async def main():
        conns = [0.03, 0.001, 0.02, 0.05]
        ch = rt.Chan(len(conns))

        async def do_query(delay):
            await rt.sleep(delay)
            await rt.select(rt.send(ch, f"answer after {delay}"), default=True)

        for d in conns:
            rt.go(do_query, d)
        first = await ch.recv()
        await rt.sleep(0.08)
        return first, rt.num_goroutine()

    first, ngo = rt.run(main(), procs=procs)
    assert first == "answer after 0.001"
    assert ngo == 1
