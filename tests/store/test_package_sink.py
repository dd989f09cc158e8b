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


async def test_the_stream_waits_while_the_writer_is_behind(tmp_path: Path) -> None:
    release = threading.Event()
    writes: list[int] = []
    with AtomicOutput(tmp_path / "out.part") as out:
        real_write = out.write

        def slow_write(chunk: bytes) -> None:
            release.wait(60)  # the disk is stuck until the test lets it go
            writes.append(len(chunk))
            real_write(chunk)

        out.write = slow_write  # type: ignore[method-assign]
        async with PackageSink.open(out, max_pending=4096) as sink:
            accepted = 0
            wait = None
            while wait is None and accepted < 100:
                wait = sink(b"x" * 1024)
                accepted += 1
            # memory is bounded: the sink asked the stream to wait once 4 KiB (plus the last chunk) were queued
            assert wait is not None and accepted == 5 and sink.pending == 5 * 1024
            assert writes == []
            release.set()
            await wait
            assert sink.pending <= 2048  # it lets the stream go on once half the queue is written
            assert await sink.finish() == hashlib.sha256(b"x" * 5 * 1024).hexdigest()
        out.commit()
    assert (tmp_path / "out.part").read_bytes() == b"x" * 5 * 1024


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EIO], ids=errno.errorcode.get)
async def test_a_failing_write_in_the_worker_fails_the_fetch_closed(tmp_path: Path, err: int) -> None:
    target = tmp_path / "out.part"
    calls = 0
    with pytest.raises(LocalStorageError) as info:
        with AtomicOutput(target) as out:
            real = os.write

            def write(fd: int, data: object) -> int:
                nonlocal calls
                if fd == out.fileno():
                    calls += 1
                    if calls == 3:
                        raise OSError(err, os.strerror(err))
                return real(fd, data)  # type: ignore[arg-type]

            os_write = os.write
            os.write = write  # type: ignore[assignment]
            try:
                async with PackageSink.open(out, max_pending=1 << 20) as sink:
                    await _feed(sink, [b"y" * 1000] * 10)
                    await sink.finish()
            finally:
                os.write = os_write  # type: ignore[assignment]
            out.commit()  # not reached
    assert errno.errorcode[err] in info.value.one_line() and str(tmp_path) in info.value.one_line()
    assert not target.exists() and _temps(tmp_path) == []
    assert calls == 3  # nothing written after the failure


async def test_the_sink_raises_the_workers_error_on_the_next_chunk(tmp_path: Path) -> None:
    with AtomicOutput(tmp_path / "out.part") as out:
        failed = threading.Event()

        def broken(chunk: bytes) -> None:
            failed.set()
            raise LocalStorageError("cannot write out.part in /x: disk gone")

        out.write = broken  # type: ignore[method-assign]
        with pytest.raises(LocalStorageError, match="disk gone"):
            async with PackageSink.open(out, max_pending=0) as sink:
                # max_pending 0: each chunk waits until it is written, so the error comes back at once
                await _feed(sink, [b"a" * 10, b"b" * 10, b"c" * 10])
        assert failed.is_set()


async def test_nothing_is_written_after_the_block_is_left_early(tmp_path: Path) -> None:
    # a check failed or the fetch was cancelled while chunks were still queued
    written: list[bytes] = []
    with AtomicOutput(tmp_path / "out.part") as out:
        sink_ref: list[PackageSink] = []
        writing = threading.Event()

        def write(chunk: bytes) -> None:
            writing.set()
            sink_ref[0].aborted.wait(60)  # the first chunk is held until the block is left
            written.append(chunk)

        out.write = write  # type: ignore[method-assign]
        with pytest.raises(RuntimeError, match="a check failed"):
            async with PackageSink.open(out, max_pending=1 << 20) as sink:
                sink_ref.append(sink)
                await _feed(sink, [b"1" * 10, b"2" * 10, b"3" * 10])
                await trio.to_thread.run_sync(writing.wait, 60)  # the writer is inside the first chunk
                raise RuntimeError("a check failed")
        # the block returned only after the writer stopped: it finished the chunk it had, dropped the rest
        assert written == [b"1" * 10]
    assert _temps(tmp_path) == []


async def test_cancellation_stops_the_workers(tmp_path: Path) -> None:
    with AtomicOutput(tmp_path / "out.part") as out:
        with trio.CancelScope() as scope:
            async with PackageSink.open(out, max_pending=1 << 20) as sink:
                await _feed(sink, [b"z" * 100] * 5)
                scope.cancel()
                await trio.sleep(10)  # cancelled here
        assert scope.cancelled_caught and sink.aborted.is_set()
        size = out.size
        await trio.sleep(0.05)
        assert out.size == size <= 500  # both threads are gone: nothing more is written
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
