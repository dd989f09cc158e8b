"""The signer's record of what it signed and proved: one sqlite file under the state dir.

Table ``pkgs`` as pacman-bintrans-sign keeps it (``sha256sum``, ``filename``,
``signature``, ``uuid``, unique on (sha256sum, filename)) plus ``log_index``,
``state`` and the last error. Each change is one transaction (sqlite's
journal makes it all-or-nothing), so an interrupted run leaves every row
either as it was or fully updated, and a rerun picks up what is not yet
``verified``. The monitor reads the same file (read-only) to name entries.

States: ``signed`` (.t written, not yet proven in the log), ``verified``
(fetched back from the log and verified, log index and uuid known),
``failed`` (the last attempt failed; ``error`` says why).

Table ``sigsum`` (added beside ``pkgs``; ``CREATE TABLE IF NOT EXISTS`` adds it to an older file on its first
writable open) holds the Sigsum path: per (sha256sum, filename) the log, leaf index and tree size of the
``.proof`` written, its state (``submitted``: add-leaf accepted, no proof yet; ``verified``: the proof was
verified and written; ``failed``) and the last error.
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import StateError

DB_FILE = "signatures.sqlite"
SIGNED, VERIFIED, FAILED = "signed", "verified", "failed"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS pkgs (
    sha256sum TEXT NOT NULL,
    filename TEXT NOT NULL,
    signature TEXT,
    log_index INTEGER,
    uuid TEXT,
    state TEXT NOT NULL,
    error TEXT,
    updated INTEGER NOT NULL,
    UNIQUE (sha256sum, filename)
);
CREATE INDEX IF NOT EXISTS pkgs_uuid ON pkgs (uuid);
CREATE TABLE IF NOT EXISTS sigsum (
    sha256sum TEXT NOT NULL,
    filename TEXT NOT NULL,
    log_keyhash TEXT,
    leaf_index INTEGER,
    tree_size INTEGER,
    state TEXT NOT NULL,
    error TEXT,
    updated INTEGER NOT NULL,
    UNIQUE (sha256sum, filename)
);
"""
SUBMITTED = "submitted"


@dataclass(frozen=True)
class SignatureRecord:
    sha256: str
    filename: str
    signature: str | None
    log_index: int | None
    uuid: str | None
    state: str
    error: str | None = None


@dataclass(frozen=True)
class SigsumRecord:
    sha256: str
    filename: str
    log_keyhash: str | None
    leaf_index: int | None
    tree_size: int | None
    state: str
    error: str | None = None


class SignatureStore:
    """Thread-safe (one connection, one lock): the async signer calls it through trio.to_thread."""

    def __init__(self, directory: Path, *, readonly: bool = False) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_FILE
        self._lock = threading.Lock()
        try:
            if readonly:
                self._db = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, check_same_thread=False)
            else:
                self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
                self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
                self._db.execute("PRAGMA journal_mode=WAL")
                self._db.execute("PRAGMA synchronous=FULL")
                self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the signer's records {self.path}: {exc}",
                             hint="use --state-dir to choose a writable directory") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def __enter__(self) -> "SignatureStore":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _exec(self, sql: str, args: tuple = ()) -> list[tuple]:
        with self._lock:
            try:
                return self._db.execute(sql, args).fetchall()
            except sqlite3.Error as exc:
                raise StateError(f"the signer's records {self.path}: {exc}") from exc

    def get(self, sha256: str, filename: str) -> SignatureRecord | None:
        rows = self._exec("SELECT sha256sum, filename, signature, log_index, uuid, state, error FROM pkgs "
                          "WHERE sha256sum = ? AND filename = ?", (sha256, filename))
        return SignatureRecord(*rows[0]) if rows else None

    def record_signed(self, sha256: str, filename: str, signature: str) -> None:
        """The .t is on disk: remember its signature (keeps a verified row's log data only if the signature is the same)."""
        self._exec(
            "INSERT INTO pkgs (sha256sum, filename, signature, state, updated) VALUES (?, ?, ?, ?, ?) "
            "ON CONFLICT (sha256sum, filename) DO UPDATE SET signature = excluded.signature, "
            "state = CASE WHEN pkgs.signature = excluded.signature THEN pkgs.state ELSE excluded.state END, "
            "log_index = CASE WHEN pkgs.signature = excluded.signature THEN pkgs.log_index END, "
            "uuid = CASE WHEN pkgs.signature = excluded.signature THEN pkgs.uuid END, "
            "updated = excluded.updated",
            (sha256, filename, signature, SIGNED, int(time.time())))

    def record_verified(self, sha256: str, filename: str, log_index: int, uuid: str) -> None:
        self._exec("UPDATE pkgs SET state = ?, log_index = ?, uuid = ?, error = NULL, updated = ? "
                   "WHERE sha256sum = ? AND filename = ?", (VERIFIED, log_index, uuid, int(time.time()), sha256, filename))

    def record_failed(self, sha256: str, filename: str, error: str) -> None:
        self._exec("UPDATE pkgs SET state = ?, error = ?, updated = ? WHERE sha256sum = ? AND filename = ?",
                   (FAILED, error[:500], int(time.time()), sha256, filename))

    def all(self) -> Iterator[SignatureRecord]:
        """Every record, in batches (a store of 10^6 rows is never loaded at once)."""
        last = 0
        while True:
            rows = self._exec("SELECT rowid, sha256sum, filename, signature, log_index, uuid, state, error FROM pkgs "
                              "WHERE rowid > ? ORDER BY rowid LIMIT 1000", (last,))
            if not rows:
                return
            for r in rows:
                yield SignatureRecord(*r[1:])
            last = rows[-1][0]

    def by_leaf(self, uuid_or_leaf: str) -> SignatureRecord | None:
        leaf = uuid_or_leaf[-64:].lower()
        rows = self._exec("SELECT sha256sum, filename, signature, log_index, uuid, state, error FROM pkgs "
                          "WHERE substr(uuid, -64) = ? LIMIT 1", (leaf,))
        return SignatureRecord(*rows[0]) if rows else None

    def counts(self) -> dict[str, int]:
        return dict(self._exec("SELECT state, count(*) FROM pkgs GROUP BY state"))

    # --- the Sigsum path

    def _has_sigsum(self) -> bool:
        # a read-only open of a file written before the sigsum table existed
        return bool(self._exec("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'sigsum'"))

    def sigsum_get(self, sha256: str, filename: str) -> SigsumRecord | None:
        if not self._has_sigsum():
            return None
        rows = self._exec("SELECT sha256sum, filename, log_keyhash, leaf_index, tree_size, state, error FROM sigsum "
                          "WHERE sha256sum = ? AND filename = ?", (sha256, filename))
        return SigsumRecord(*rows[0]) if rows else None

    def _sigsum_put(self, sha256: str, filename: str, state: str, *, log_keyhash: str | None = None,
                    leaf_index: int | None = None, tree_size: int | None = None, error: str | None = None) -> None:
        self._exec(
            "INSERT INTO sigsum (sha256sum, filename, log_keyhash, leaf_index, tree_size, state, error, updated) "
            "VALUES (?, ?, ?, ?, ?, ?, ?, ?) ON CONFLICT (sha256sum, filename) DO UPDATE SET "
            "log_keyhash = coalesce(excluded.log_keyhash, sigsum.log_keyhash), "
            "leaf_index = coalesce(excluded.leaf_index, sigsum.leaf_index), "
            "tree_size = coalesce(excluded.tree_size, sigsum.tree_size), "
            "state = excluded.state, error = excluded.error, updated = excluded.updated",
            (sha256, filename, log_keyhash, leaf_index, tree_size, state, error, int(time.time())))

    def sigsum_record_submitted(self, sha256: str, filename: str, log_keyhash: str) -> None:
        """add-leaf was accepted by this log: the proof is not written yet."""
        self._sigsum_put(sha256, filename, SUBMITTED, log_keyhash=log_keyhash)

    def sigsum_record_verified(self, sha256: str, filename: str, log_keyhash: str, leaf_index: int,
                               tree_size: int) -> None:
        """The .proof is on disk and verified."""
        self._sigsum_put(sha256, filename, VERIFIED, log_keyhash=log_keyhash, leaf_index=leaf_index,
                         tree_size=tree_size)

    def sigsum_record_failed(self, sha256: str, filename: str, error: str) -> None:
        self._sigsum_put(sha256, filename, FAILED, error=error[:500])

    def sigsum_all(self) -> Iterator[SigsumRecord]:
        """Every Sigsum record, in batches (the monitor names its alerts by them)."""
        if not self._has_sigsum():
            return
        last = 0
        for _ in range(10**7):  # bounded: 10^10 rows
            rows = self._exec("SELECT rowid, sha256sum, filename, log_keyhash, leaf_index, tree_size, state, error "
                              "FROM sigsum WHERE rowid > ? ORDER BY rowid LIMIT 1000", (last,))
            if not rows:
                return
            for r in rows:
                yield SigsumRecord(*r[1:])
            last = rows[-1][0]

    def sigsum_counts(self) -> dict[str, int]:
        if not self._has_sigsum():
            return {}
        return dict(self._exec("SELECT state, count(*) FROM sigsum GROUP BY state"))
