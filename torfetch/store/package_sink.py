"""The receiving end of a package download: write, sha256 and .PKGINFO, the hashing off the event loop's thread.

The problem: on a fast link the receiving task has more to do per MiB than
the network: SHA-256 (about 1 s per GiB on one core here), the write into the
page cache and, at commit, an fsync that waits for the whole file to reach
the disk. Done inline, these add up behind the socket reads.

So the bytes are handed, as they arrive, to one long-lived worker thread
(trio's thread cache) that hashes them and feeds ``PkgInfoReader``; hashlib
releases the GIL for buffers over 2 KiB, so it runs beside the socket reads.
A hand-off is a ``SimpleQueue.put`` of a reference to the immutable chunk (a
``trio.to_thread`` hop per chunk was slower). The write stays in the
receiving thread, as before: a second thread for it was measured slower on 2
cores (1 GiB: median 2.67 s vs 2.48 s, more CPU in GIL hand-offs). Every
``WRITEBACK_BYTES`` the hasher asks the kernel to start writing back what was
written (``sync_file_range(SYNC_FILE_RANGE_WRITE)`` where Linux has it, which
does not wait), so the commit's fsync has little left to wait for. The hasher
uses ``out``'s descriptor: leave the ``open`` block before ``out`` is
committed or discarded (the block waits for the thread).

Memory stays flat: at most ``max_pending`` bytes wait for the hasher; past
that ``__call__`` returns an awaitable that the stream awaits
(``Network.stream`` awaits what a sink returns), so the socket is not read
until the hasher caught up. Fail closed: a write error (a full disk, say)
raises at once; leaving the ``open`` block early stops the hasher before it
returns, and the caller's ``AtomicOutput`` then removes the temporary file.
Durability is unchanged: ``AtomicOutput.commit`` still fsyncs before the
rename.
"""

from __future__ import annotations

import ctypes
import functools
import hashlib
import os
import queue
import threading
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field

import trio

from ..pacman.pkginfo import PkgInfoReader
from .output import AtomicOutput

#: bytes queued for the hasher at most before the stream waits (reads are <= 512 KiB). Measured on the
#: 1 GiB fetch: 2, 4 and 16 MiB were as fast, and each MiB more is up to a MiB more of peak RSS.
MAX_PENDING = 2 * 1024 * 1024
#: writeback is started for every stretch of this many bytes once it is written. Measured on the 1 GiB fetch
#: (median of 5, wall): none 2.8 s (the commit's fsync then waits ~0.5 s), 8 MiB 2.27, 16 MiB 2.10, 32 MiB 2.05,
#: 64 MiB 2.47; 16 MiB leaves the fsync at most that much to wait for on a slow disk.
WRITEBACK_BYTES = 16 * 1024 * 1024

_SYNC_FILE_RANGE_WRITE = 2  # <linux/fs.h>: start writeback of the range's dirty pages, do not wait for it


@functools.cache
def _load_sync_file_range() -> Callable[[int, int, int, int], int] | None:
    """libc's sync_file_range, or None where there is none (then only the commit's fsync writes back)."""
    if os.uname().sysname != "Linux":
        return None
    try:
        libc = ctypes.CDLL(None, use_errno=True)  # the process's own symbols: libc is there (no ldconfig run)
        fn = libc.sync_file_range
    except (OSError, AttributeError):
        return None
    fn.argtypes = (ctypes.c_int, ctypes.c_int64, ctypes.c_int64, ctypes.c_uint)
    fn.restype = ctypes.c_int
    return fn


@dataclass
class Writeback:
    """Start the kernel's writeback of a file's written bytes every ``every`` bytes (best effort).

    The call queues the disk writes and returns; it does not wait for them
    (it may block briefly if the device's queue is full: in the hasher's
    thread, never the event loop's).

    It never changes the bytes and never replaces the fsync before the rename:
    it only moves the disk writes earlier, during the download. A failing call
    (a filesystem without it) just stops further calls.
    """

    fd: int
    every: int = WRITEBACK_BYTES
    started: int = 0  # writeback was started for [0, started)
    calls: int = 0
    _fn: Callable[[int, int, int, int], int] | None = field(default=None, init=False, repr=False)
    _off: bool = field(default=False, init=False)

    def __post_init__(self) -> None:
        self._fn = _load_sync_file_range()
        self._off = self._fn is None or self.every <= 0

    def written(self, upto: int) -> None:
        """``upto`` bytes of the file are written."""
        if self._off or upto - self.started < self.every:
            return
        assert self._fn is not None
        if self._fn(self.fd, self.started, upto - self.started, _SYNC_FILE_RANGE_WRITE) != 0:
            self._off = True  # e.g. EINVAL/ESPIPE: not worth a second try; the fsync still makes it durable
            return
        self.calls += 1
        self.started = upto


_STOP = None  # sentinel: no more chunks


class PackageSink:
    """Feed a package's bytes in order (``sink(chunk)``); ``await finish()`` gives the sha256 once all is hashed.

    Use ``async with PackageSink.open(out, pkginfo) as sink``. ``sink`` is
    the callable ``Network.stream`` wants: it returns None, or an awaitable
    when the hasher is ``max_pending`` bytes behind (the stream awaits it
    before reading on).
    """

    def __init__(self, out: AtomicOutput, pkginfo: PkgInfoReader | None = None, *,
                 max_pending: int = MAX_PENDING, writeback_bytes: int = WRITEBACK_BYTES,
                 on_chunk: Callable[[int], None] | None = None) -> None:
        self.out = out
        self.pkginfo = pkginfo
        self.max_pending = max_pending
        self.on_chunk = on_chunk
        self.received = 0
        self.hashed = 0  # bytes the hasher is done with (written by its thread only)
        self._hasher = hashlib.sha256()
        self._writeback = Writeback(out.fileno(), writeback_bytes)
        self._q: queue.SimpleQueue[bytes | None] = queue.SimpleQueue()
        self._lock = threading.Lock()
        self._error: BaseException | None = None
        self.aborted = threading.Event()  # set when the block is left early: the hasher drops what is queued
        self._room: trio.Event | None = None  # set (from the hasher, via the trio token) when there is room again
        self._token: trio.lowlevel.TrioToken | None = None
        self._finished = False

    @classmethod
    @asynccontextmanager
    async def open(cls, out: AtomicOutput, pkginfo: PkgInfoReader | None = None,
                   **kwargs: object) -> AsyncIterator["PackageSink"]:
        sink = cls(out, pkginfo, **kwargs)  # type: ignore[arg-type]
        token = sink._token = trio.lowlevel.current_trio_token()
        stopped = trio.Event()
        # a thread of trio's own cache, without a nursery (which would wrap the caller's errors in a group)
        trio.lowlevel.start_thread_soon(sink._run, functools.partial(sink._thread_ended, token, stopped))
        try:
            yield sink
        finally:
            if not sink._finished:
                sink.aborted.set()  # left early (an error, a cancellation): the hasher drops what is queued
            sink._q.put(_STOP)
            # the block is left only once the thread is done with the chunks and PkgInfoReader (one chunk's work)
            with trio.CancelScope(shield=True):
                await stopped.wait()

    def _thread_ended(self, token: trio.lowlevel.TrioToken, ev: trio.Event, result: object) -> None:
        error = getattr(result, "error", None)  # an outcome.Error; _run itself catches what hashing raises
        if error is not None:  # pragma: no cover
            with self._lock:
                self._error = self._error or error
        token.run_sync_soon(ev.set)

    # -- the receiving side (the event loop's thread) ---------------------------------------

    def __call__(self, chunk: bytes) -> Awaitable[None] | None:
        if self._error is not None:
            raise self._error
        if self._finished:
            raise RuntimeError("PackageSink fed after finish()")
        chunk = bytes(chunk)  # the hasher keeps a reference: it must not change (a no-op for bytes)
        self.out.write(chunk)  # a disk error (LocalStorageError) fails the fetch here and now
        self.received += len(chunk)
        self._q.put(chunk)
        if self.on_chunk is not None:
            self.on_chunk(len(chunk))
        if self.pending > self.max_pending:
            return self._wait_for_room()
        return None

    @property
    def pending(self) -> int:
        """Bytes received that the hasher has not taken in yet (what its queue holds)."""
        return self.received - self.hashed

    async def _wait_for_room(self) -> None:
        await self._wait_until(lambda: self.pending <= self.max_pending // 2)

    async def _wait_until(self, ready: Callable[[], bool]) -> None:
        while True:
            with self._lock:
                if self._error is not None:
                    raise self._error
                if ready():
                    return
                self._room = room = trio.Event()
            await room.wait()

    async def finish(self) -> str:
        """Wait until every byte is hashed; the lowercase hex sha256 (the bytes are all written by then)."""
        self._finished = True
        self._q.put(_STOP)
        await self._wait_until(lambda: self.hashed == self.received)
        return self._hasher.hexdigest()

    # -- the hasher's thread ------------------------------------------------------------------

    def _run(self) -> None:
        while True:
            chunk = self._q.get()
            if chunk is _STOP:
                return
            if self.aborted.is_set() or self._error is not None:
                continue  # drain: nothing more is hashed or parsed once the fetch failed or was left
            try:
                self._hasher.update(chunk)
                if self.pkginfo is not None and self.pkginfo.result is None:
                    self.pkginfo.feed(chunk)  # never raises: a bad package is reported by pkginfo.finish()
                # every byte up to here is written (a chunk is queued after its write): its writeback can start,
                # here and not in the receiving thread, which has more to do (~1 ms per 16 MiB)
                self._writeback.written(self.hashed + len(chunk))
            except BaseException as exc:  # pragma: no cover - hashlib and feed() do not raise; fail closed if so
                with self._lock:
                    self._error = self._error or exc
                self._wake()
                continue
            with self._lock:
                self.hashed += len(chunk)
                wake = self._room is not None and (self._finished or self.pending <= self.max_pending // 2)
            if wake:
                self._wake()

    def _wake(self) -> None:
        with self._lock:
            room, self._room = self._room, None
        if room is not None and self._token is not None:
            try:
                self._token.run_sync_soon(room.set)
            except trio.RunFinishedError:  # pragma: no cover - the run ended under us
                pass
