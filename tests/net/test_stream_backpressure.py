"""Network.stream awaits what a sink returns before it reads on (PackageSink's backpressure)."""

from __future__ import annotations

from pathlib import Path

import trio

from tests.servers.files import FileServer
from torfetch.config import Timeouts
from torfetch.net.http import READ_BYTES, Network


async def _stream(url: str) -> tuple[list[int], bytes]:
    order: list[int] = []  # +n: a chunk of n bytes handed over; -n: the sink's wait for it ended
    got = bytearray()

    async def wait_for(n: int) -> None:
        await trio.lowlevel.checkpoint()
        order.append(-n)

    def sink(chunk: bytes) -> object:
        order.append(len(chunk))
        got.extend(chunk)
        return wait_for(len(chunk))

    async with Network(proxy=None, timeouts=Timeouts()) as net:
        await net.stream("package", "GET", url, sink, max_bytes=10**8, timeout=30)
    return order, bytes(got)


async def test_http_stream_awaits_the_sink_before_the_next_read(tmp_path: Path) -> None:
    body = bytes(range(256)) * (3 * READ_BYTES // 256 + 7)
    (tmp_path / "p.pkg.tar.zst").write_bytes(body)
    with FileServer(tmp_path) as server:
        order, got = await _stream(f"{server.url}/p.pkg.tar.zst")
    assert got == body and len(order) >= 2 * 3
    # every chunk's wait ended before the next chunk came
    assert all(order[i] > 0 and order[i + 1] == -order[i] for i in range(0, len(order), 2))


async def test_file_stream_awaits_the_sink_too(tmp_path: Path) -> None:
    body = b"q" * 3_000_000
    (tmp_path / "p.pkg.tar.zst").write_bytes(body)
    order, got = await _stream((tmp_path / "p.pkg.tar.zst").as_uri())
    assert got == body and len(order) >= 2 * 2
    assert all(order[i] > 0 and order[i + 1] == -order[i] for i in range(0, len(order), 2))
