"""Stalls cost a bounded time: a silent SOCKS proxy, a trickling mirror, a huge Content-Length, a FIFO.

The servers here are trio tasks on real 127.0.0.1 sockets in the test's own
run, so the tests run on trio's autojump clock: the 30-second low-speed
window and the 60-second connect bound pass in virtual time.
"""

from __future__ import annotations

import functools
import os
import subprocess
import sys
import threading
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import pytest
import trio

from tests.servers.socks import SocksProxy
from torfetch.config import Timeouts
from torfetch.errors import DownloadTooLarge, FetchTimeout
from torfetch.net.http import Network

TORFETCH = [sys.executable, "-m", "torfetch"]


async def serve(nursery: trio.Nursery, handler: Callable[[trio.SocketStream], Awaitable[None]]) -> int:
    listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
    return listeners[0].socket.getsockname()[1]


async def read_request(stream: trio.SocketStream) -> None:
    buf = b""
    while b"\r\n\r\n" not in buf:
        data = await stream.receive_some(4096)
        if not data:
            return
        buf += data


def headers(length: int) -> bytes:
    return f"HTTP/1.1 200 OK\r\nContent-Length: {length}\r\nContent-Type: application/octet-stream\r\n\r\n".encode()


async def test_silent_socks_proxy_is_bounded_by_connect_timeout(autojump_clock: trio.abc.Clock) -> None:
    async def silent(stream: trio.SocketStream) -> None:
        await trio.sleep_forever()  # accepts the TCP connection, never answers the SOCKS greeting

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, silent)
        t0 = trio.current_time()
        async with Network(proxy=f"socks5h://127.0.0.1:{port}", timeouts=Timeouts(connect=60)) as net:
            with pytest.raises(FetchTimeout, match="no connection within 60 s.*SOCKS proxy did not complete"):
                await net.get_ok("database", "http://mirror.test/core.db", max_bytes=10**6, timeout=3600)
        assert trio.current_time() - t0 == pytest.approx(60)  # not the hour-long deadline
        nursery.cancel_scope.cancel()


async def trickle_server(nursery: trio.Nursery, *, length: int, chunk: int, every: float) -> int:
    async def handler(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await stream.send_all(headers(length))
        sent = 0
        while sent < length:
            part = min(chunk, length - sent)
            await stream.send_all(b"x" * part)
            sent += part
            await trio.sleep(every)

    return await serve(nursery, handler)


async def test_trickling_mirror_hits_the_low_speed_rule(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        port = await trickle_server(nursery, length=10_000, chunk=1, every=5)  # 1 byte every 5 s
        got: list[bytes] = []
        t0 = trio.current_time()
        async with Network(proxy=None, timeouts=Timeouts(low_speed_limit=1024, low_speed_time=30)) as net:
            with pytest.raises(FetchTimeout, match="slower than 1024 bytes/s over 30 s"):
                await net.stream("package", "GET", f"http://127.0.0.1:{port}/p", got.append, max_bytes=10**6,
                                 timeout=3600)
        assert trio.current_time() - t0 == pytest.approx(30)
        assert 0 < len(b"".join(got)) < 30 * 1024
        nursery.cancel_scope.cancel()


async def test_slow_but_steady_transfer_passes_the_low_speed_rule(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        # 40 KiB every 25 s: below 1 KiB/s for a while after each burst, but never for a whole 30 s window
        port = await trickle_server(nursery, length=5 * 40 * 1024, chunk=40 * 1024, every=25)
        got: list[bytes] = []
        async with Network(proxy=None, timeouts=Timeouts(low_speed_limit=1024, low_speed_time=30)) as net:
            await net.stream("package", "GET", f"http://127.0.0.1:{port}/p", got.append, max_bytes=10**6,
                             timeout=3600)
        assert len(b"".join(got)) == 5 * 40 * 1024
        nursery.cancel_scope.cancel()


async def test_low_speed_limit_zero_turns_the_rule_off(autojump_clock: trio.abc.Clock) -> None:
    async with trio.open_nursery() as nursery:
        port = await trickle_server(nursery, length=20, chunk=1, every=5)
        got: list[bytes] = []
        async with Network(proxy=None, timeouts=Timeouts(low_speed_limit=0)) as net:
            await net.stream("package", "GET", f"http://127.0.0.1:{port}/p", got.append, max_bytes=10**6,
                             timeout=3600)
        assert b"".join(got) == b"x" * 20
        nursery.cancel_scope.cancel()


async def test_content_length_over_the_cap_is_refused_before_the_body(autojump_clock: trio.abc.Clock) -> None:
    async def handler(stream: trio.SocketStream) -> None:
        await read_request(stream)
        await stream.send_all(headers(10**9) + b"0123456789")
        await trio.sleep_forever()

    async with trio.open_nursery() as nursery:
        port = await serve(nursery, handler)
        got: list[bytes] = []
        t0 = trio.current_time()
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            with pytest.raises(DownloadTooLarge, match="limit of 1000 bytes.*Content-Length 1000000000"):
                await net.stream("database", "GET", f"http://127.0.0.1:{port}/x", got.append, max_bytes=1000,
                                 timeout=3600)
        assert got == [] and trio.current_time() == t0  # no body byte read, no wait
        nursery.cancel_scope.cancel()


def _unblock_later(fifo: Path, after: float) -> None:
    """Open the FIFO's write end later, so a reader stuck on it (a blocked event loop) cannot hang the suite."""

    def run() -> None:
        time.sleep(after)
        try:
            fd = os.open(fifo, os.O_WRONLY | os.O_NONBLOCK)
        except OSError:
            return  # no reader left
        try:
            os.write(fd, b"written late\n")
        except OSError:
            pass  # the abandoned reader is gone already
        finally:
            os.close(fd)

    threading.Thread(target=run, daemon=True).start()


async def test_fifo_without_writer_hits_the_deadline(tmp_path: Path, autojump_clock: trio.abc.Clock) -> None:
    fifo = tmp_path / "core.db"
    os.mkfifo(fifo)
    _unblock_later(fifo, 3)  # only matters if open() blocked the event loop: then the read would succeed
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        with pytest.raises(FetchTimeout, match="longer than 5 s"):
            await net.get_ok("database", f"file://{fifo}", max_bytes=100, timeout=5)


def test_cli_fifo_leaves_nothing(tmp_path: Path) -> None:
    fifo = tmp_path / "core.db"
    os.mkfifo(fifo)
    out = tmp_path / "out" / "sync" / "core.db.part"
    out.parent.mkdir(parents=True)
    r = subprocess.run([*TORFETCH, "--deadline", "1", "-O", str(out), f"file://{fifo}"], capture_output=True,
                       text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert "took longer than 1 s" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(out.parent.iterdir()) == []


def test_cli_silent_proxy_fails_at_connect_timeout_not_the_deadline(tmp_path: Path) -> None:
    out = tmp_path / "sync" / "core.db.part"
    out.parent.mkdir()
    with SocksProxy(mode="silent") as proxy:
        r = subprocess.run([*TORFETCH, "--proxy", proxy.url, "--connect-timeout", "1", "-O", str(out),
                            "http://mirror.test/core.db"], capture_output=True, text=True, timeout=60)
        assert proxy.accepted >= 1 and proxy.connects == []
    assert r.returncode == 3, r.stderr
    assert "no connection within 1 s" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert list(out.parent.iterdir()) == []
