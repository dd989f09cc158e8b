"""What the monitor has checked: one sqlite file under the state dir (``monitor.sqlite``).

One row per log entry (keyed by leaf hash): where it was found (the index
search, the signer's records), its status (``pending`` until fetched and
verified, then ``ok``, ``alert``, ``foreign`` or ``missing``), log index,
integrated time and artifact hash. Batches are committed in one transaction
each, so an interrupted run resumes where it stopped and a timer run only
fetches what is new. Alerts stay alerts (re-reported every run) until a given
db contains the package.

The Sigsum part (``torfetch monitor --sigsum-*``) adds two tables to the same file (created on open, so an
older file gains them): ``sigsum_logs``, per log keyhash the last tree head verified against the policy and
recomputed from the leaves (size, root, Merkle frontier) and how far get-leaves was read (``pos_size``,
``pos_nodes``: committed per batch, so an interrupted run resumes there); ``sigsum_leaves``, every leaf by the
operator's key (log, index, checksum, ``ok`` or ``alert``).
"""

from __future__ import annotations

import sqlite3
import threading
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path

from ..errors import StateError

DB_FILE = "monitor.sqlite"
PENDING, MISSING = "pending", "missing"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS entries (
    leaf TEXT PRIMARY KEY,
    uuid TEXT NOT NULL,
    source TEXT NOT NULL,
    status TEXT NOT NULL,
    log_index INTEGER,
    integrated_time INTEGER,
    artifact_hash TEXT,
    note TEXT,
    checked INTEGER
);
CREATE INDEX IF NOT EXISTS entries_status ON entries (status);
CREATE TABLE IF NOT EXISTS sigsum_logs (
    log_keyhash TEXT PRIMARY KEY,
    url TEXT,
    head_size INTEGER NOT NULL,
    head_root BLOB NOT NULL,
    head_nodes BLOB NOT NULL,
    pos_size INTEGER NOT NULL,
    pos_nodes BLOB NOT NULL,
    foreign_leaves INTEGER NOT NULL DEFAULT 0,
    updated INTEGER
);
CREATE TABLE IF NOT EXISTS sigsum_leaves (
    log_keyhash TEXT NOT NULL,
    leaf_index INTEGER NOT NULL,
    checksum TEXT NOT NULL,
    status TEXT NOT NULL,
    PRIMARY KEY (log_keyhash, leaf_index)
);
"""


@dataclass(frozen=True)
class SigsumLogRow:
    log_keyhash: str
    url: str | None
    head_size: int
    head_root: bytes
    head_nodes: bytes
    pos_size: int
    pos_nodes: bytes
    foreign_leaves: int


@dataclass(frozen=True)
class SigsumLeafRow:
    log_keyhash: str
    leaf_index: int
    checksum: str
    status: str


@dataclass(frozen=True)
class EntryRow:
    leaf: str
    uuid: str
    source: str
    status: str
    log_index: int | None
    integrated_time: int | None
    artifact_hash: str | None
    note: str | None


@dataclass(frozen=True)
class CheckedEntry:
    leaf: str
    uuid: str
    status: str
    log_index: int | None
    integrated_time: int | None
    artifact_hash: str | None
    note: str | None = None


class MonitorStore:
    def __init__(self, directory: Path) -> None:
        self.directory = Path(directory)
        self.path = self.directory / DB_FILE
        self._lock = threading.Lock()
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            self._db = sqlite3.connect(self.path, check_same_thread=False, isolation_level=None)
            self._db.execute("PRAGMA journal_mode=WAL")
            self._db.execute("PRAGMA synchronous=NORMAL")  # WAL + NORMAL: a crash loses at most the last batch, never corrupts
            self._db.executescript(_SCHEMA)
        except (OSError, sqlite3.Error) as exc:
            raise StateError(f"cannot open the monitor's state {self.path}: {exc}",
                             hint="use --state-dir to choose a writable directory") from exc

    def close(self) -> None:
        with self._lock:
            self._db.close()

    def _run(self, fn):
        with self._lock:
            try:
                return fn(self._db)
            except sqlite3.Error as exc:
                raise StateError(f"the monitor's state {self.path}: {exc}") from exc

    def add_candidates(self, uuids: Iterable[str], source: str) -> int:
        """Remember entries to check (new ones only); returns how many were new."""
        rows = [(u[-64:], u, source, PENDING) for u in uuids]

        def go(db: sqlite3.Connection) -> int:
            before = db.total_changes
            db.execute("BEGIN")
            db.executemany("INSERT OR IGNORE INTO entries (leaf, uuid, source, status) VALUES (?, ?, ?, ?)", rows)
            db.execute("COMMIT")
            return db.total_changes - before

        return self._run(go)

    def pending(self, limit: int, after_rowid: int = 0) -> list[tuple[int, str, str, str]]:
        """(rowid, leaf, uuid, source) of entries not yet checked."""
        return self._run(lambda db: db.execute(
            "SELECT rowid, leaf, uuid, source FROM entries WHERE status = ? AND rowid > ? ORDER BY rowid LIMIT ?",
            (PENDING, after_rowid, limit)).fetchall())

    def record(self, checked: list[CheckedEntry]) -> None:
        now = int(time.time())
        rows = [(c.status, c.log_index, c.integrated_time, c.artifact_hash, c.note, now, c.leaf) for c in checked]

        def go(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            db.executemany("UPDATE entries SET status = ?, log_index = ?, integrated_time = ?, artifact_hash = ?, "
                           "note = ?, checked = ? WHERE leaf = ?", rows)
            db.execute("COMMIT")

        self._run(go)

    def with_status(self, status: str) -> Iterator[EntryRow]:
        last = 0
        while True:
            rows = self._run(lambda db: db.execute(
                "SELECT rowid, leaf, uuid, source, status, log_index, integrated_time, artifact_hash, note FROM entries "
                "WHERE status = ? AND rowid > ? ORDER BY rowid LIMIT 1000", (status, last)).fetchall())
            if not rows:
                return
            for r in rows:
                yield EntryRow(*r[1:])
            last = rows[-1][0]

    def set_status(self, leaf: str, status: str) -> None:
        self._run(lambda db: db.execute("UPDATE entries SET status = ? WHERE leaf = ?", (status, leaf)))

    def retry_missing(self) -> None:
        self._run(lambda db: db.execute("UPDATE entries SET status = ? WHERE status = ?", (PENDING, MISSING)))

    def counts(self) -> dict[str, int]:
        return dict(self._run(lambda db: db.execute("SELECT status, count(*) FROM entries GROUP BY status").fetchall()))

    # --- Sigsum

    def sigsum_log(self, log_keyhash: str) -> SigsumLogRow | None:
        rows = self._run(lambda db: db.execute(
            "SELECT log_keyhash, url, head_size, head_root, head_nodes, pos_size, pos_nodes, foreign_leaves "
            "FROM sigsum_logs WHERE log_keyhash = ?", (log_keyhash,)).fetchall())
        return SigsumLogRow(*rows[0]) if rows else None

    def sigsum_progress(self, log_keyhash: str, url: str, pos_size: int, pos_nodes: bytes, foreign: int,
                        leaves: list[SigsumLeafRow], *, head: tuple[int, bytes, bytes] | None = None) -> None:
        """One batch of get-leaves, in one transaction: where reading stopped, the operator's leaves in it, and,
        once the leaves recompute a verified tree head's root, that head (size, root, frontier)."""
        now = int(time.time())

        def go(db: sqlite3.Connection) -> None:
            db.execute("BEGIN")
            db.execute("INSERT INTO sigsum_logs (log_keyhash, url, head_size, head_root, head_nodes, pos_size, "
                       "pos_nodes, foreign_leaves, updated) VALUES (?, ?, 0, ?, ?, ?, ?, ?, ?) "
                       "ON CONFLICT (log_keyhash) DO UPDATE SET url = excluded.url, pos_size = excluded.pos_size, "
                       "pos_nodes = excluded.pos_nodes, foreign_leaves = sigsum_logs.foreign_leaves + ?, "
                       "updated = excluded.updated",
                       (log_keyhash, url, b"", b"", pos_size, pos_nodes, foreign, now, foreign))
            if head is not None:
                db.execute("UPDATE sigsum_logs SET head_size = ?, head_root = ?, head_nodes = ? WHERE log_keyhash = ?",
                           (head[0], head[1], head[2], log_keyhash))
            db.executemany("INSERT OR REPLACE INTO sigsum_leaves (log_keyhash, leaf_index, checksum, status) "
                           "VALUES (?, ?, ?, ?)", [(r.log_keyhash, r.leaf_index, r.checksum, r.status) for r in leaves])
            db.execute("COMMIT")

        self._run(go)

    def sigsum_rewind(self, log_keyhash: str) -> None:
        """Leaves read since the last verified head did not make the log's root: read them again from there."""
        self._run(lambda db: db.execute(
            "UPDATE sigsum_logs SET pos_size = head_size, pos_nodes = head_nodes WHERE log_keyhash = ?",
            (log_keyhash,)))

    def sigsum_leaves(self, status: str) -> Iterator[SigsumLeafRow]:
        last: tuple[str, int] = ("", -1)
        while True:
            rows = self._run(lambda db: db.execute(
                "SELECT log_keyhash, leaf_index, checksum, status FROM sigsum_leaves WHERE status = ? AND "
                "(log_keyhash, leaf_index) > (?, ?) ORDER BY log_keyhash, leaf_index LIMIT 1000",
                (status, *last)).fetchall())
            if not rows:
                return
            for r in rows:
                yield SigsumLeafRow(*r)
            last = (rows[-1][0], rows[-1][1])

    def sigsum_set_status(self, log_keyhash: str, leaf_index: int, status: str) -> None:
        self._run(lambda db: db.execute("UPDATE sigsum_leaves SET status = ? WHERE log_keyhash = ? AND leaf_index = ?",
                                        (status, log_keyhash, leaf_index)))

    def sigsum_counts(self) -> dict[str, int]:
        return dict(self._run(lambda db: db.execute(
            "SELECT status, count(*) FROM sigsum_leaves GROUP BY status").fetchall()))
