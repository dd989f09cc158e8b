"""PackageSink: the bytes written, hashed and read for .PKGINFO off the event loop, in order, bounded, fail closed."""

from __future__ import annotations

import errno
import hashlib
import os
import threading
from pathlib import Path

import pytest
import trio
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pkgbuild import build_package
from torfetch.errors import LocalStorageError
from torfetch.pacman.pkginfo import PkgInfoReader
from torfetch.store.output import AtomicOutput
from torfetch.store.package_sink import PackageSink, Writeback, _load_sync_file_range


async def _feed(sink: PackageSink, chunks: list[bytes]) -> None:
    # as Network.stream does: an awaitable from the sink is awaited before the next chunk
    for c in chunks:
        wait = sink(c)
        if wait is not None:
            await wait


def _temps(d: Path) -> list[str]:
    return [p.name for p in d.iterdir() if p.name.startswith(".torfetch-")]


@settings(max_examples=40, deadline=None)
@given(chunks=st.lists(st.binary(min_size=0, max_size=3000), max_size=40),
       max_pending=st.integers(min_value=0, max_value=8000), writeback=st.integers(min_value=1, max_value=5000))
def test_file_and_hash_are_the_stream_for_any_chunking(tmp_path_factory: pytest.TempPathFactory,
                                                       chunks: list[bytes], max_pending: int, writeback: int) -> None:
    d = tmp_path_factory.mktemp("sink")
    out_path = d / "p.pkg.tar.zst.part"
    seen: list[int] = []
    peak = 0

    async def main() -> str:
        nonlocal peak
        with AtomicOutput(out_path) as out:
            async with PackageSink.open(out, max_pending=max_pending, writeback_bytes=writeback,
                                        on_chunk=seen.append) as sink:
                for c in chunks:
                    wait = sink(c)
                    if wait is not None:
                        await wait
                    # bounded: after the sink let the stream go on, at most max_pending + one chunk is queued
                    peak = max(peak, sink.pending - len(c))
                    assert sink.pending <= max_pending + len(c) or wait is None
                digest = await sink.finish()
                assert sink.pending == 0
            out.commit()
        return digest

    digest = trio.run(main)
    whole = b"".join(chunks)
    assert digest == hashlib.sha256(whole).hexdigest()
    assert out_path.read_bytes() == whole  # the writeback hints never change the bytes
    assert seen == [len(c) for c in chunks]
    assert peak <= max_pending
    assert _temps(d) == []


async def test_pkginfo_is_read_in_the_worker(tmp_path: Path) -> None:
    pkg = build_package(tmp_path / "pkgs", "foo", "1.2-3", files={"usr/share/foo/blob": os.urandom(300_000)})
    data = pkg.read_bytes()
    reader = PkgInfoReader()
    with AtomicOutput(tmp_path / "out.part") as out:
        async with PackageSink.open(out, reader, max_pending=10_000) as sink:
            await _feed(sink, [data[i:i + 7000] for i in range(0, len(data), 7000)])
            digest = await sink.finish()
    assert digest == hashlib.sha256(data).hexdigest()
    info = reader.finish()
    assert (info.pkgname, info.pkgver) == ("foo", "1.2-3")


class _SlowReader:
    """A PkgInfoReader stand-in whose feed() (run in the hasher's thread) waits for the test, or raises."""

    def __init__(self, gate: threading.Event | None = None, fail: bool = False) -> None:
        self.result = None
        self.gate, self.fail = gate, fail
        self.fed: list[bytes] = []
        self.entered = threading.Event()

    def feed(self, chunk: bytes) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(60)
        if self.fail:
            raise MemoryError("feed broke")
        self.fed.append(chunk)


async def test_the_stream_waits_while_the_hasher_is_behind(tmp_path: Path) -> None:
    release = threading.Event()
    reader = _SlowReader(release)
    with AtomicOutput(tmp_path / "out.part") as out:
        async with PackageSink.open(out, reader, max_pending=4096) as sink:  # type: ignore[arg-type]
            accepted = 0
            wait = None
            while wait is None and accepted < 100:
                wait = sink(b"x" * 1024)
                accepted += 1
            # memory is bounded: the sink asked the stream to wait once 4 KiB (plus the last chunk) were queued
            assert wait is not None and accepted == 5 and sink.pending == 5 * 1024
            assert reader.fed == [] and out.size == 5 * 1024  # the writes are not held up by the hasher
            release.set()
            await wait
            assert sink.pending <= 2048  # it lets the stream go on once half the queue is hashed
            assert await sink.finish() == hashlib.sha256(b"x" * 5 * 1024).hexdigest()
            assert len(reader.fed) == 5
        out.commit()
    assert (tmp_path / "out.part").read_bytes() == b"x" * 5 * 1024


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO], ids=errno.errorcode.get)
async def test_a_failing_write_fails_the_fetch_closed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                      err: int) -> None:
    target = tmp_path / "out.part"
    calls = 0
    with pytest.raises(LocalStorageError) as info:
        with AtomicOutput(target) as out:
            real = os.write

            def write(fd: int, data: bytes) -> int:
                nonlocal calls
                if fd == out.fileno():
                    calls += 1
                    if calls == 3:
                        raise OSError(err, os.strerror(err))
                return real(fd, data)

            monkeypatch.setattr(os, "write", write)
            async with PackageSink.open(out, max_pending=1 << 20) as sink:
                await _feed(sink, [b"y" * 1000] * 10)
                await sink.finish()
            out.commit()  # not reached
    monkeypatch.undo()
    assert errno.errorcode[err] in info.value.one_line() and str(tmp_path) in info.value.one_line()
    assert not target.exists() and _temps(tmp_path) == []
    assert calls == 3  # nothing written after the failure


async def test_an_error_in_the_hasher_thread_fails_the_fetch(tmp_path: Path) -> None:
    # feed() never raises by contract; if the thread ever fails, the fetch must not go on as if it had hashed
    with AtomicOutput(tmp_path / "out.part") as out:
        with pytest.raises(MemoryError, match="feed broke"):
            async with PackageSink.open(out, _SlowReader(fail=True)) as sink:  # type: ignore[arg-type]
                await _feed(sink, [b"a" * 10, b"b" * 10])
                await sink.finish()
    assert _temps(tmp_path) == []


async def test_nothing_is_hashed_after_the_block_is_left_early(tmp_path: Path) -> None:
    # a check failed or the fetch was cancelled while chunks were still queued
    reader = _SlowReader()
    with AtomicOutput(tmp_path / "out.part") as out:
        with pytest.raises(RuntimeError, match="a check failed"):
            async with PackageSink.open(out, reader, max_pending=1 << 20) as sink:  # type: ignore[arg-type]
                reader.gate = sink.aborted  # the first chunk is held until the block is left
                await _feed(sink, [b"1" * 10, b"2" * 10, b"3" * 10])
                await trio.to_thread.run_sync(reader.entered.wait, 60)  # the hasher is inside the first chunk
                raise RuntimeError("a check failed")
        # the block returned only after the hasher stopped: it finished the chunk it had, dropped the rest
        assert reader.fed == [b"1" * 10] and sink.hashed == 10
    assert _temps(tmp_path) == []


async def test_cancellation_stops_the_hasher(tmp_path: Path) -> None:
    reader = _SlowReader()
    with AtomicOutput(tmp_path / "out.part") as out:
        with trio.CancelScope() as scope:
            async with PackageSink.open(out, reader, max_pending=1 << 20) as sink:  # type: ignore[arg-type]
                await _feed(sink, [b"z" * 100] * 5)
                scope.cancel()
                await trio.sleep(10)  # cancelled here
        assert scope.cancelled_caught and sink.aborted.is_set()
        fed = len(reader.fed)
        sink._q.put(b"late")  # the thread is gone: nobody takes this
        await trio.sleep(0.05)
        assert len(reader.fed) == fed <= 5 and sink._q.qsize() == 1
    assert _temps(tmp_path) == []


def test_sync_file_range_is_there_on_linux() -> None:
    # on Linux the writeback hint is real, not a silent no-op
    assert (_load_sync_file_range() is not None) == (os.uname().sysname == "Linux")


def test_writeback_starts_every_stretch_and_keeps_the_bytes(tmp_path: Path) -> None:
    path = tmp_path / "f"
    data = os.urandom(4 * 65536)
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        wb = Writeback(fd, every=65536)
        written = 0
        for i in range(0, len(data), 10_000):
            written += os.write(fd, data[i:i + 10_000])
            wb.written(written)
        # a stretch ends at the first write past 64 KiB: 70 000, 140 000, 210 000 (262 144 written)
        assert wb.calls == 3 and wb.started == 210_000
    finally:
        os.close(fd)
    assert path.read_bytes() == data


def test_writeback_on_a_pipe_gives_up_quietly() -> None:
    r, w = os.pipe()
    try:
        wb = Writeback(w, every=1)
        os.write(w, b"abc")
        wb.written(3)  # sync_file_range on a pipe fails (ESPIPE): no error, no further calls
        wb.written(6)
        assert wb.calls == 0
    finally:
        os.close(r)
        os.close(w)


async def test_an_error_in_the_hasher_while_the_stream_waits_for_room_fails_it(tmp_path: Path) -> None:
    # the stream is parked (queue full) when the hasher fails: it must be woken with the error, not left waiting
    release = threading.Event()
    reader = _SlowReader(release, fail=True)
    with AtomicOutput(tmp_path / "out.part") as out:
        with pytest.raises(MemoryError, match="feed broke"):
            async with PackageSink.open(out, reader, max_pending=1024) as sink:  # type: ignore[arg-type]
                wait = None
                for _ in range(100):
                    wait = sink(b"q" * 512)
                    if wait is not None:
                        break
                assert wait is not None
                await trio.to_thread.run_sync(reader.entered.wait, 60)
                release.set()
                with trio.fail_after(60):  # a bound, not a timing: a lost wake-up fails here instead of hanging
                    await wait
    assert _temps(tmp_path) == []
