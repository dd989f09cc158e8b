"""Remembered tree heads on disk: one JSON file, locked, written atomically.

Concurrent torfetch runs (pacman plus a prefetch, two pacmans) must never lose
or corrupt an update: every read-modify-write happens under an exclusive
``fcntl.flock`` on a lock file, and the new state is written to a temporary
file, fsynced and renamed. A corrupt file is an error, never silently reset.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import StateError
from ..verify.logstate import TreeHead
from .output import fsync_directory

STATE_FILE = "log-heads.json"
LOCK_FILE = "log-heads.lock"
MAX_STATE_BYTES = 1024 * 1024
VERSION = 1


def _key(log_id: str, tree: str) -> str:
    return f"{log_id}/{tree}"


class LogStateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)

    @property
    def path(self) -> Path:
        return self.directory / STATE_FILE

    def _read(self) -> dict:
        try:
            with open(self.path, "rb") as f:
                data = f.read(MAX_STATE_BYTES + 1)
        except FileNotFoundError:
            return {"version": VERSION, "heads": {}}
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            if len(data) > MAX_STATE_BYTES:
                raise ValueError("too large")
            doc = json.loads(data)
            if not isinstance(doc, dict) or doc.get("version") != VERSION or not isinstance(doc.get("heads"), dict):
                raise ValueError("unexpected structure")
            for k, v in doc["heads"].items():
                if not isinstance(v, dict) or not isinstance(v.get("size"), int) or len(bytes.fromhex(v["root"])) != 32:
                    raise ValueError(f"bad head {k}")
        except (ValueError, TypeError, KeyError, UnicodeDecodeError) as exc:
            raise StateError(
                f"the remembered log state {self.path} is corrupt ({exc})",
                hint="it is never reset silently: inspect it, and remove it only if you know why it broke",
            ) from exc
        return doc

    def _write(self, doc: dict) -> None:
        data = json.dumps(doc, indent=1, sort_keys=True).encode()
        fd, tmp = tempfile.mkstemp(prefix=".log-heads.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
            fsync_directory(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StateError(f"cannot write {self.path}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def locked(self, *, wait: bool = True) -> Iterator["LockedState"]:
        """Exclusive access. With ``wait=False`` raise BlockingIOError if another
        process holds the lock (the async caller then sleeps and retries)."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = os.open(self.directory / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
        except OSError as exc:
            raise StateError(f"cannot open the log state in {self.directory}: {exc.strerror}",
                             hint="use --state-dir to choose a writable directory") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield LockedState(self, self._read())
        finally:
            os.close(fd)  # releases the lock

    def all_heads(self) -> dict[str, TreeHead]:
        doc = self._read()
        return {k: TreeHead(v["size"], bytes.fromhex(v["root"])) for k, v in doc["heads"].items()}


class LockedState:
    def __init__(self, store: LogStateStore, doc: dict) -> None:
        self._store = store
        self._doc = doc

    def get(self, log_id: str, tree: str) -> TreeHead | None:
        v = self._doc["heads"].get(_key(log_id, tree))
        return None if v is None else TreeHead(v["size"], bytes.fromhex(v["root"]))

    def put(self, log_id: str, tree: str, head: TreeHead, origin: str) -> None:
        self._doc["heads"][_key(log_id, tree)] = {"size": head.size, "root": head.root_hash.hex(), "origin": origin}
        self._store._write(self._doc)
