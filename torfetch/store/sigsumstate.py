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
import json
import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import trio

from ..errors import MalformedInputError, SigsumSplitViewError, StateError
from ..verify.jsondoc import loads_limited
from ..verify.sigsum import SigsumLogMemory, VerifiedTreeHead, remember_tree_head
from .output import fsync_directory
from .statefile import StateFile

STATE_FILE = "sigsum-heads.json"
LOCK_FILE = "sigsum-heads.lock"
MAX_STATE_BYTES = 4 * 1024 * 1024
VERSION = 1
LOCK_RETRIES = 600  # × 50 ms: 30 s, as the Rekor state
_HEX = frozenset("0123456789abcdef")
SPLIT_VIEW_PREFIX = "sigsum-split-view-"
MAX_SPLIT_VIEW_FILES = 16  # rejected proofs kept for a report; the oldest go first
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
        self._file = StateFile(self.directory, STATE_FILE, LOCK_FILE, "Sigsum state")

    @property
    def path(self) -> Path:
        return self._file.path

    def _read(self) -> dict[bytes, SigsumLogMemory]:
        data = self._file.read(MAX_STATE_BYTES)
        if data is None:
            return {}
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
        self._file.write(json.dumps(doc, indent=1, sort_keys=True).encode())

    @contextlib.contextmanager
    def locked(self, *, wait: bool = True) -> Iterator[dict[bytes, SigsumLogMemory]]:
        """Exclusive access to the remembered heads; ``wait=False`` raises BlockingIOError when another run holds it."""
        with self._file.locked(wait=wait):
            yield self._read()

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


async def remember_async(store: SigsumStateStore, seen: VerifiedTreeHead, *, filename: str = "",
                         evidence: SplitViewEvidence | None = None) -> SigsumLogMemory:
    """``store.remember`` without blocking trio on another run's lock (retried every 50 ms for 30 s).

    On a split view with ``evidence``: the proof is saved for the report and the error says where."""
    for _ in range(LOCK_RETRIES):
        try:
            return store.remember(seen, filename=filename, wait=False)
        except BlockingIOError:
            await trio.sleep(0.05)
        except SigsumSplitViewError as exc:
            if evidence is None:
                raise
            raise await _split_view(store, exc, seen, evidence) from exc
    raise StateError(f"the Sigsum state in {store.directory} stayed locked for 30 s")


# --- a split view: the evidence kept for the report --------------------------------------------------------------


@dataclass(frozen=True)
class SplitViewEvidence:
    """What the fetch path had when a proof showed a split view: its bytes, where it came from, who signed it."""

    proof: bytes
    url: str
    signers: str  # verify.sigsum.split_view_signers


def save_split_view_proof(directory: Path, data: bytes, log_keyhash: bytes, *, now: int | None = None) -> Path:
    """``<directory>/sigsum-split-view-<unix time>-<log keyhash prefix>.proof``, written whole or not at all
    (a fsynced temporary file hard-linked to a name not yet taken); at most MAX_SPLIT_VIEW_FILES kept."""
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    base = f"{SPLIT_VIEW_PREFIX}{int(time.time()) if now is None else now}-{log_keyhash.hex()[:16]}"
    fd, tmp = tempfile.mkstemp(prefix=".sigsum-split-view.", suffix=".tmp", dir=directory)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        for i in range(MAX_SPLIT_VIEW_FILES * 4):  # the same second and log: the next free name
            path = directory / (base + (f"-{i}" if i else "") + ".proof")
            try:
                os.link(tmp, path)  # fails on an existing name (never replaces earlier evidence)
                break
            except FileExistsError:
                continue
        else:
            raise FileExistsError(errno.EEXIST, "no free name", str(directory / base))
    finally:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
    fsync_directory(directory)
    _prune_split_views(directory, keep=path)
    return path


def _prune_split_views(directory: Path, *, keep: Path) -> None:
    found: list[tuple[float, str, Path]] = []
    with os.scandir(directory) as it:
        for i, e in enumerate(it):
            if i > 100_000:  # bounded: a directory of junk is not walked for ever
                break
            if e.name.startswith(SPLIT_VIEW_PREFIX) and e.name.endswith(".proof") and e.is_file(follow_symlinks=False):
                with contextlib.suppress(OSError):
                    found.append((e.stat(follow_symlinks=False).st_mtime, e.name, Path(e.path)))
    found.sort()
    for _, _, p in found[:max(0, len(found) - MAX_SPLIT_VIEW_FILES)]:
        if p != keep:
            with contextlib.suppress(OSError):
                p.unlink()


async def _split_view(store: SigsumStateStore, exc: SigsumSplitViewError, seen: VerifiedTreeHead,
                      evidence: SplitViewEvidence) -> SigsumSplitViewError:
    try:
        path = await trio.to_thread.run_sync(save_split_view_proof, store.directory, evidence.proof, seen.log_keyhash)
        kept = f"the rejected proof ({evidence.url}) is saved as {path}"
    except OSError as oerr:
        kept = f"the rejected proof ({evidence.url}) could not be saved in {store.directory} ({oerr.strerror})"
    out = SigsumSplitViewError(f"{exc.message}; {evidence.signers}; {kept}: report it to the repository's and the "
                               "log's operators", hint="keep that file and the remembered heads "
                               f"({store.path}): together they show the two histories")
    out.__cause__ = exc
    return out
