"""Remembered log trees on disk: one JSON file, locked, written atomically.

Concurrent torfetch runs (pacman plus a prefetch, two pacmans) must never lose
or corrupt an update: every read-modify-write happens under an exclusive
``fcntl.flock`` on a lock file, and the new state is written to a temporary
file, fsynced and renamed. Neither the lock nor the state is opened through a
symbolic link. A corrupt file is an error, never silently reset.

Version 2 (per log key: the pinned origin name and every tree seen)::

    {"version": 2, "logs": {"<logID hex>": {"origin": "rekor.sigstore.dev",
        "trees": {"<decimal tree id>": {"size": 123, "root": "<hex>", "frozen": false}}}}}

A version 1 file (``{"heads": {"<logID>/<tree id>": {"size", "root", "origin"}}}``)
is read as version 2 (each head becomes its tree's, the origin name comes from
the stored origin) and written back as version 2 on the next update.
"""

from __future__ import annotations

import contextlib
import json
from pathlib import Path
from typing import Iterator

from ..errors import MalformedInputError, StateError
from ..verify.checkpoint import ascii_decimal, safe_text
from ..verify.jsondoc import loads_limited
from ..verify.logstate import LogState, TreeHead, TreeRecord
from .statefile import StateFile

STATE_FILE = "log-heads.json"
LOCK_FILE = "log-heads.lock"
MAX_STATE_BYTES = 1024 * 1024
VERSION = 2
_HEX = frozenset("0123456789abcdef")
_CORRUPT_HINT = "it is never reset silently: inspect it, and remove it only if you know why it broke"


class _Corrupt(ValueError):
    pass


def _log_id(key: object) -> str:
    if not isinstance(key, str) or len(key) != 64 or not set(key) <= _HEX:
        raise _Corrupt(f"log id {safe_text(str(key))} is not 64 lowercase hex digits")
    return key


def _tree_id(key: object) -> int:
    tree = ascii_decimal(key, max_digits=19) if isinstance(key, str) else None
    if tree is None or tree == 0:
        raise _Corrupt(f"tree id {safe_text(str(key))} is not a decimal tree id")
    return tree


def _origin_name(value: object, where: str) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value or len(value) > 512 or not value.isprintable():
        raise _Corrupt(f"{where}: origin name {safe_text(str(value))} is not a printable name")
    return value


def _head(v: object, where: str) -> TreeHead:
    if not isinstance(v, dict):
        raise _Corrupt(f"{where} is not an object")
    size = v.get("size")
    # bool is an int to Python; a remembered tree holds at least the entry it was seen with
    if isinstance(size, bool) or not isinstance(size, int) or not 0 < size < 2**64:
        raise _Corrupt(f"{where}: remembered size {safe_text(repr(size))} is not a positive integer")
    root = v.get("root")
    if not isinstance(root, str) or len(root) != 64 or not set(root) <= _HEX:
        raise _Corrupt(f"{where}: root is not 64 lowercase hex digits")
    return TreeHead(size, bytes.fromhex(root))


def _parse_v2(doc: dict) -> dict[str, LogState]:
    logs = doc.get("logs")
    if not isinstance(logs, dict) or set(doc) != {"version", "logs"}:
        raise _Corrupt("unexpected structure")
    out: dict[str, LogState] = {}
    for lid, entry in logs.items():
        lid = _log_id(lid)
        if not isinstance(entry, dict) or not isinstance(entry.get("trees"), dict):
            raise _Corrupt(f"log {lid[:16]}: unexpected structure")
        trees: dict[int, TreeRecord] = {}
        for tid, rec in entry["trees"].items():
            tree = _tree_id(tid)
            where = f"tree {tree} of log {lid[:16]}"
            frozen = rec.get("frozen", False) if isinstance(rec, dict) else None
            if not isinstance(frozen, bool):
                raise _Corrupt(f"{where}: frozen is not true or false")
            trees[tree] = TreeRecord(_head(rec, where), frozen)
        out[lid] = LogState(_origin_name(entry.get("origin"), f"log {lid[:16]}"), trees)
    return out


def _parse_v1(doc: dict) -> dict[str, LogState]:
    """Version 1 kept one head per ``<logID>/<tree>`` key, with the checkpoint's origin."""
    heads = doc.get("heads")
    if not isinstance(heads, dict):
        raise _Corrupt("unexpected structure")
    names: dict[str, str | None] = {}
    trees: dict[str, dict[int, TreeRecord]] = {}
    for key, v in heads.items():
        lid_s, _, tid_s = str(key).partition("/")
        lid = _log_id(lid_s)
        tree = _tree_id(tid_s)
        where = f"tree {tree} of log {lid[:16]}"
        head = _head(v, where)
        origin = v.get("origin")
        name, sep, _ = origin.rpartition(" - ") if isinstance(origin, str) else ("", "", "")
        name = _origin_name(name if sep else None, where)
        if lid in names and names[lid] != name:
            raise _Corrupt(f"log {lid[:16]} was seen under two origin names, {safe_text(str(names[lid]))} and "
                           f"{safe_text(str(name))}: this machine cannot tell which to pin")
        names[lid] = name
        trees.setdefault(lid, {})[tree] = TreeRecord(head)
    return {lid: LogState(names[lid], trees[lid]) for lid in trees}


class LogStateStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self._file = StateFile(self.directory, STATE_FILE, LOCK_FILE, "log state")

    @property
    def path(self) -> Path:
        return self._file.path

    def _read(self) -> dict[str, LogState]:
        data = self._file.read(MAX_STATE_BYTES)
        if data is None:
            return {}
        try:
            # size and nesting depth checked before json: a deep file is corrupt, not a RecursionError
            doc = loads_limited(data, max_bytes=MAX_STATE_BYTES, what="state file")
            if not isinstance(doc, dict):
                raise _Corrupt("unexpected structure")
            version = doc.get("version")
            if version == 1:
                try:
                    return _parse_v1(doc)
                except _Corrupt as exc:
                    raise _Corrupt(f"version 1, cannot be migrated to version {VERSION}: {exc}") from exc
            if version == VERSION:
                return _parse_v2(doc)
            if isinstance(version, int) and not isinstance(version, bool) and version > VERSION:
                raise StateError(f"the remembered log state {self.path} is version {version}, newer than this "
                                 f"torfetch understands ({VERSION})", hint="upgrade torfetch, or use another --state-dir")
            raise _Corrupt(f"unknown version {safe_text(repr(version))}")
        except (_Corrupt, MalformedInputError) as exc:
            raise StateError(f"the remembered log state {self.path} is corrupt ({exc})", hint=_CORRUPT_HINT) from exc

    def _write(self, logs: dict[str, LogState]) -> None:
        doc = {"version": VERSION, "logs": {
            lid: {"origin": st.origin_name, "trees": {
                str(t): {"size": r.head.size, "root": r.head.root_hash.hex(), "frozen": r.frozen}
                for t, r in sorted(st.trees.items())}}
            for lid, st in logs.items()}}
        self._file.write(json.dumps(doc, indent=1, sort_keys=True).encode())

    @contextlib.contextmanager
    def locked(self, *, wait: bool = True) -> Iterator["LockedState"]:
        """Exclusive access. With ``wait=False`` raise BlockingIOError if another
        process holds the lock (the async caller then sleeps and retries)."""
        with self._file.locked(wait=wait):
            yield LockedState(self, self._read())

    def all_logs(self) -> dict[str, LogState]:
        return self._read()


class LockedState:
    def __init__(self, store: LogStateStore, logs: dict[str, LogState]) -> None:
        self._store = store
        self._logs = logs

    def get(self, log_id: str) -> LogState:
        """What is remembered for this log key (empty if nothing)."""
        return self._logs.get(log_id, LogState())

    def put(self, log_id: str, state: LogState) -> None:
        self._logs[log_id] = state
        self._store._write(self._logs)
