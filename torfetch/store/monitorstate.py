"""What the monitor has checked: one sqlite file under the state dir (``monitor.sqlite``).

One row per log entry (keyed by leaf hash): where it was found (the index
search, the signer's records), its status (``pending`` until fetched and
verified, then ``ok``, ``alert``, ``foreign`` or ``missing``), log index,
integrated time and artifact hash. Batches are committed in one transaction
each, so an interrupted run resumes where it stopped and a timer run only
fetches what is new. Alerts stay alerts (re-reported every run) until a given
db contains the package.
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
"""


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
