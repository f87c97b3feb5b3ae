"""rt.net: listen/accept/dial, read/write/close_write, errors, deadlines, closing."""

from __future__ import annotations

import errno
import socket
import time

import pytest

import goruntime as rt
from goruntime.net import Conn, ErrNetClosing, Listener, Timeout

pytestmark = pytest.mark.timeout(60)


async def _echo(c: Conn) -> None:
    try:
        while data := await c.read(65536):
            await c.write(data)
    finally:
        c.close()


async def _serve(ln: Listener) -> None:
    while True:
        try:
            c = await ln.accept()
        except ErrNetClosing:
            return
        rt.go(_echo, c)


def test_listen_accept_dial_echo_many_connections(procs):
    n = 300

    async def main():
        ln = rt.net.listen("127.0.0.1", 0)
        host, port = ln.addr
        assert host == "127.0.0.1" and port > 0
        rt.go(_serve, ln)
        done = rt.Chan(n)

        async def client(i: int) -> None:
            c = await rt.net.dial(host, port)
            msg = f"message {i} ".encode() * (1 + i % 50)
            await c.write(msg)
            got = b""
            while len(got) < len(msg):
                got += await c.read(65536)
            c.close_write()
            assert await c.read(10) == b""  # the server closed after our half-close
            c.close()
            await done.send(got == msg)

        for i in range(n):
            rt.go(client, i)
        ok = [await done.recv() for _ in range(n)]
        ln.close()
        return ok

    assert rt.run(main(), procs=procs) == [True] * 300


def test_read_returns_empty_bytes_at_eof_and_write_all_of_a_large_buffer(procs):
    size = 8 << 20

    async def main():
        a, b = socket.socketpair()
        ca, cb = Conn(a), Conn(b)
        data = bytes(range(256)) * (size // 256)

        async def writer():
            n = await ca.write(data)  # parks many times: the reader is slower
            ca.close_write()
            await res.send(n)

        res = rt.Chan(1)
        rt.go(writer)
        got = bytearray()
        while chunk := await cb.read(4096):
            got += chunk
            if len(got) % (1 << 20) < 4096:
                await rt.sleep(0.001)
        n = await res.recv()
        ca.close()
        cb.close()
        return n, bytes(got) == data

    assert rt.run(main(), procs=procs) == (size, True)


def test_dial_refused(procs):
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now

    async def main():
        with pytest.raises(ConnectionRefusedError):
            await rt.net.dial("127.0.0.1", port)
        return True

    assert rt.run(main(), procs=procs)


def test_dial_timeout_when_the_backlog_is_full(procs):
    # A listener that never accepts, with a tiny backlog: once its queue is full the kernel
    # drops further SYNs, so a connect neither succeeds nor fails until our timeout.
    lsock = socket.socket()
    lsock.bind(("127.0.0.1", 0))
    lsock.listen(0)
    port = lsock.getsockname()[1]
    fillers = []
    try:
        for _ in range(8):
            f = socket.socket()
            f.setblocking(False)
            f.connect_ex(("127.0.0.1", port))
            fillers.append(f)
        time.sleep(0.05)

        async def main():
            t0 = time.monotonic()
            with pytest.raises(Timeout):
                await rt.net.dial("127.0.0.1", port, timeout=0.2)
            return time.monotonic() - t0

        took = rt.run(main(), procs=procs)
        assert 0.15 <= took < 5
    finally:
        for f in fillers:
            f.close()
        lsock.close()


def test_read_on_closed_conn_raises_and_close_is_idempotent(procs):
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        c.close()
        c.close()
        with pytest.raises(ErrNetClosing, match="use of closed network connection"):
            await c.read(1)
        with pytest.raises(ErrNetClosing):
            await c.write(b"x")
        b.close()
        return True

    assert rt.run(main(), procs=procs)


def test_a_second_reader_of_a_conn_gets_an_error_and_the_first_reads_on(procs):
    async def main():
        a, b = socket.socketpair()
        c = Conn(a)
        first, second = rt.Chan(1), rt.Chan(1)

        async def reader(out: rt.Chan) -> None:
            try:
                await out.send(await c.read(16))
            except RuntimeError as e:
                await out.send(e)

        rt.go(reader, first)
        await rt.sleep(0.01)  # the first reader is parked on the fd
        rt.go(reader, second)
        err = await second.recv()
        b.send(b"x")
        got = await first.recv()
        c.close()
        b.close()
        return err, got

    err, got = rt.run(main(), procs=procs)
    assert isinstance(err, RuntimeError) and "two Gs waiting on fd" in str(err)
    assert got == b"x"


def test_listener_close_wakes_accept(procs):
    async def main():
        ln = rt.net.listen("127.0.0.1", 0)
        res = rt.Chan(1)

        async def acceptor():
            try:
                await ln.accept()
                await res.send("accepted")
            except ErrNetClosing:
                await res.send("closed")

        rt.go(acceptor)
        await rt.sleep(0.05)
        ln.close()
        ln.close()
        return await res.recv()

    assert rt.run(main(), procs=procs) == "closed"


def test_conn_deadline_covers_read_and_write(procs):
    async def main():
        ln = rt.net.listen("127.0.0.1", 0)
        c = await rt.net.dial(*ln.addr)
        s = await ln.accept()
        c.set_deadline(time.monotonic() + 0.05)
        with pytest.raises(Timeout):
            await c.read(1)
        with pytest.raises(Timeout):
            await c.write(b"x")  # expired: even a write that would not block fails
        c.set_deadline(None)
        await c.write(b"ok")
        assert await s.read(2) == b"ok"
        assert c.remote_addr() == ln.addr and s.local_addr() == ln.addr
        for x in (c, s, ln):
            x.close()
        return True

    assert rt.run(main(), procs=procs)


def test_reset_by_peer_is_reported(procs):
    async def main():
        ln = rt.net.listen("127.0.0.1", 0)
        c = await rt.net.dial(*ln.addr)
        s = await ln.accept()
        # RST instead of FIN: SO_LINGER with a zero timeout.
        c.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\x01\x00\x00\x00\x00\x00\x00\x00")
        c.close()
        with pytest.raises(OSError) as ei:
            while True:
                await s.write(b"x" * 65536)
                await s.read(1)
        s.close()
        ln.close()
        return ei.value.errno

    assert rt.run(main(), procs=procs) in (errno.ECONNRESET, errno.EPIPE)


def test_eof_that_arrives_with_the_data_is_seen_after_a_short_read(procs):
    # A read that returns fewer bytes than asked lets the next read park without an EAGAIN
    # read first; a FIN that came in the same epoll event must still end the stream.
    async def main():
        out = []
        for k in range(50):
            a, b = socket.socketpair()
            c = Conn(a)
            parked = rt.Chan(1)

            async def reader(c: Conn, parked: rt.Chan, res: rt.Chan) -> None:
                await parked.send(None)
                got = [await c.read(65536)]  # parks: nothing sent yet
                got.append(await c.read(65536))  # short read before: must see EOF, not hang
                await res.send(got)

            res = rt.Chan(1)
            rt.go(reader, c, parked, res)
            await parked.recv()
            if k % 2:
                await rt.sleep(0.001)
            b.sendall(b"data %d" % k)
            b.close()
            i, got, _ = await rt.select(rt.recv(res), rt.recv(rt.after(5)))
            assert i == 0, "reader hung after a short read at EOF"
            out.append(got == [b"data %d" % k, b""])
            c.close()
        return out

    assert all(rt.run(main(), procs=procs))


def test_read_size_grows_with_bulk_data_and_shrinks_back_for_small_messages(procs):
    """A read asks for MIN_READ bytes at first, doubles while reads fill it, and halves
    after reads that use under a quarter of it: 1 MiB waiting takes a few dozen reads of
    ``read(1 MiB)``, not 1 MiB / MIN_READ; small messages bring it back to MIN_READ."""
    from goruntime.net import MIN_READ

    size = 1 << 20

    async def main():
        a, b = socket.socketpair()
        a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4 << 20)
        b.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4 << 20)
        a.sendall(bytes(size))  # all of it waits in the socket buffers
        cb = Conn(b)
        reads, got = 0, 0
        while got < size:
            chunk = await cb.read(size)
            reads += 1
            got += len(chunk)
        grown = cb._rsize
        for _ in range(12):
            a.sendall(b"m" * 64)
            assert await cb.read(size) == b"m" * 64
        a.close()
        cb.close()
        return reads, grown, cb._rsize

    reads, grown, small = rt.run(main(), procs=procs)
    assert reads <= 40, f"{reads} reads for 1 MiB: the read size did not grow"
    assert grown >= 64 * MIN_READ
    assert small == MIN_READ
