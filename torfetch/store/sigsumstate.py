"""Remembered Sigsum tree heads on disk: one JSON file beside the Rekor state, locked, written atomically.

Per log (by keyhash), the cosigned tree heads this machine verified: size →
root, the largest always among them (torfetch.verify.sigsum.remember_tree_head
decides). Same care as store/logstate.py: an exclusive ``flock`` around each
read-modify-write, a temporary file fsynced and renamed, never opened through a
symlink, and a corrupt file is an error, never silently reset::

    {"version": 1, "logs": {"<log keyhash hex>": {"<size>": "<root hex>", ...}}}
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import json
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

import trio

from ..errors import MalformedInputError, StateError
from ..verify.jsondoc import loads_limited
from ..verify.sigsum import SigsumLogMemory, VerifiedTreeHead, remember_tree_head
from .output import fsync_directory

STATE_FILE = "sigsum-heads.json"
LOCK_FILE = "sigsum-heads.lock"
MAX_STATE_BYTES = 4 * 1024 * 1024
VERSION = 1
LOCK_RETRIES = 600  # × 50 ms: 30 s, as the Rekor state
_HEX = frozenset("0123456789abcdef")
_CORRUPT_HINT = "it is never reset silently: inspect it, and remove it only if you know why it broke"


class _Corrupt(ValueError):
    pass


def _hex32(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64 or not set(value) <= _HEX:
        raise _Corrupt(f"{what} is not 64 lowercase hex digits")
    return bytes.fromhex(value)


def _size(value: object) -> int:
    if not isinstance(value, str) or not value.isascii() or not value.isdigit() or len(value) > 19 or (
            len(value) > 1 and value[0] == "0") or int(value) == 0:
        raise _Corrupt(f"tree size {value!r:.40} is not a positive decimal")
    return int(value)


def _parse(doc: object) -> dict[bytes, SigsumLogMemory]:
    if not isinstance(doc, dict) or set(doc) != {"version", "logs"} or not isinstance(doc["logs"], dict):
        raise _Corrupt("unexpected structure")
    out: dict[bytes, SigsumLogMemory] = {}
    for lid, heads in doc["logs"].items():
        kh = _hex32(lid, "log keyhash")
        if not isinstance(heads, dict):
            raise _Corrupt(f"log {lid[:16]}: unexpected structure")
        out[kh] = SigsumLogMemory({_size(s): _hex32(r, f"root of size {s} of log {lid[:16]}") for s, r in heads.items()})
    return out


class SigsumStateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    def _open_nofollow(self, path: Path, flags: int) -> int:
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:
                raise StateError(f"{path} is a symbolic link: the Sigsum state is never opened through one",
                                 hint="replace it by the file itself, or use --state-dir") from exc
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StateError(f"{path} is not a regular file", hint="remove it, or use --state-dir")
        return fd

    def _read(self) -> dict[bytes, SigsumLogMemory]:
        try:
            fd = self._open_nofollow(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return {}
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "rb") as f:
                data = f.read(MAX_STATE_BYTES + 1)
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            doc = loads_limited(data, max_bytes=MAX_STATE_BYTES, what="Sigsum state file")
            version = doc.get("version") if isinstance(doc, dict) else None
            if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
                raise StateError(f"the remembered Sigsum state {self.path} is version {version}, newer than this "
                                 f"torfetch understands ({VERSION})", hint="upgrade torfetch, or use another --state-dir")
            if version != VERSION:
                raise _Corrupt(f"unknown version {version!r:.40}")
            return _parse(doc)
        except (_Corrupt, MalformedInputError) as exc:
            raise StateError(f"the remembered Sigsum state {self.path} is corrupt ({exc})", hint=_CORRUPT_HINT) from exc

    def _write(self, logs: dict[bytes, SigsumLogMemory]) -> None:
        doc = {"version": VERSION, "logs": {
            kh.hex(): {str(s): r.hex() for s, r in sorted(m.heads.items())} for kh, m in sorted(logs.items())}}
        data = json.dumps(doc, indent=1, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=".sigsum-heads.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)  # replaces a symlink itself, never writes through it
            fsync_directory(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StateError(f"cannot write {self.path}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def locked(self, *, wait: bool = True) -> Iterator[dict[bytes, SigsumLogMemory]]:
        """Exclusive access to the remembered heads; ``wait=False`` raises BlockingIOError when another run holds it."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = self._open_nofollow(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StateError(f"cannot open the Sigsum state in {self.directory}: {exc.strerror}",
                             hint="use --state-dir to choose a writable directory") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield self._read()
        finally:
            os.close(fd)

    def all_logs(self) -> dict[bytes, SigsumLogMemory]:
        return self._read()

    def remember(self, seen: VerifiedTreeHead, *, filename: str = "", wait: bool = True) -> SigsumLogMemory:
        """Check ``seen`` against what was remembered for its log and store the result (raises on a split view)."""
        with self.locked(wait=wait) as logs:
            new = remember_tree_head(logs.get(seen.log_keyhash, SigsumLogMemory({})), seen, filename=filename)
            if logs.get(seen.log_keyhash) != new:
                logs[seen.log_keyhash] = new
                self._write(logs)
            return new


async def remember_async(store: SigsumStateStore, seen: VerifiedTreeHead, *, filename: str = "") -> SigsumLogMemory:
    """``store.remember`` without blocking trio on another run's lock (retried every 50 ms for 30 s)."""
    for _ in range(LOCK_RETRIES):
        try:
            return store.remember(seen, filename=filename, wait=False)
        except BlockingIOError:
            await trio.sleep(0.05)
    raise StateError(f"the Sigsum state in {store.directory} stayed locked for 30 s")
