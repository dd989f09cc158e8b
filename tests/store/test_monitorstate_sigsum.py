"""store/monitorstate.py's Sigsum tables: progress per batch, rewind to the verified head, leaves by status."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from torfetch.store.monitorstate import DB_FILE, MonitorStore, SigsumLeafRow

KH = "ab" * 32


def test_progress_rewind_and_leaves(tmp_path: Path) -> None:
    s = MonitorStore(tmp_path)
    try:
        assert s.sigsum_log(KH) is None
        s.sigsum_progress(KH, "http://log.test", 2, b"\x01" * 32, 1, [SigsumLeafRow(KH, 0, "cc" * 32, "ok")],
                          head=(2, b"\x02" * 32, b"\x01" * 32))
        s.sigsum_progress(KH, "http://log.test", 3, b"\x01" * 64, 4, [SigsumLeafRow(KH, 2, "dd" * 32, "alert")])
        row = s.sigsum_log(KH)
        assert (row.head_size, row.pos_size, row.foreign_leaves) == (2, 3, 5)
        s.sigsum_rewind(KH)  # the leaves past the verified head did not make the root
        row = s.sigsum_log(KH)
        assert (row.pos_size, row.pos_nodes) == (2, b"\x01" * 32)
        assert [r.leaf_index for r in s.sigsum_leaves("alert")] == [2]
        s.sigsum_set_status(KH, 2, "ok")
        assert s.sigsum_counts() == {"ok": 2}
    finally:
        s.close()


def test_many_alerts_are_read_in_pages(tmp_path: Path) -> None:
    s = MonitorStore(tmp_path)
    try:
        rows = [SigsumLeafRow(k, i, "ee" * 32, "alert") for k in ("01" * 32, "02" * 32) for i in range(1500)]
        s.sigsum_progress(KH, "http://log.test", 0, b"", 0, rows)
        got = [(r.log_keyhash, r.leaf_index) for r in s.sigsum_leaves("alert")]
        assert got == [(r.log_keyhash, r.leaf_index) for r in rows]
    finally:
        s.close()


def test_an_older_monitor_file_gains_the_tables(tmp_path: Path) -> None:
    with sqlite3.connect(tmp_path / DB_FILE) as db:
        db.execute("CREATE TABLE entries (leaf TEXT PRIMARY KEY, uuid TEXT NOT NULL, source TEXT NOT NULL, "
                   "status TEXT NOT NULL, log_index INTEGER, integrated_time INTEGER, artifact_hash TEXT, note TEXT, "
                   "checked INTEGER)")
        db.execute("INSERT INTO entries VALUES ('l', 'u', 'search', 'ok', 1, 2, 'h', NULL, 3)")
    s = MonitorStore(tmp_path)
    try:
        assert s.counts() == {"ok": 1} and s.sigsum_counts() == {}
    finally:
        s.close()
