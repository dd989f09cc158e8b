"""store/signatures.py's Sigsum table: added to older files, read-only opens of them work, upserts keep what is known."""

from __future__ import annotations

import sqlite3
from pathlib import Path

from torfetch.store.signatures import DB_FILE, FAILED, SUBMITTED, VERIFIED, SignatureStore

OLD_SCHEMA = """CREATE TABLE pkgs (sha256sum TEXT NOT NULL, filename TEXT NOT NULL, signature TEXT, log_index INTEGER,
uuid TEXT, state TEXT NOT NULL, error TEXT, updated INTEGER NOT NULL, UNIQUE (sha256sum, filename));"""


def old_file(d: Path) -> Path:
    d.mkdir()
    with sqlite3.connect(d / DB_FILE) as db:
        db.executescript(OLD_SCHEMA)
        db.execute("INSERT INTO pkgs VALUES ('aa', 'a.pkg', 'sig', 7, 'uuid', 'verified', NULL, 1)")
    return d


def test_a_file_from_before_sigsum_reads_read_only_and_gains_the_table_on_a_writable_open(tmp_path: Path) -> None:
    d = old_file(tmp_path / "state")
    with SignatureStore(d, readonly=True) as ro:
        assert ro.sigsum_get("aa", "a.pkg") is None and ro.sigsum_counts() == {}
        assert ro.get("aa", "a.pkg").log_index == 7
    with SignatureStore(d) as rw:
        rw.sigsum_record_verified("aa", "a.pkg", "11" * 32, 3, 9)
        assert rw.get("aa", "a.pkg").state == VERIFIED  # the Rekor record is untouched
    with SignatureStore(d, readonly=True) as ro:
        rec = ro.sigsum_get("aa", "a.pkg")
        assert (rec.state, rec.log_keyhash, rec.leaf_index, rec.tree_size) == (VERIFIED, "11" * 32, 3, 9)


def test_states_follow_the_last_attempt_and_keep_what_is_known(tmp_path: Path) -> None:
    with SignatureStore(tmp_path) as s:
        s.sigsum_record_submitted("bb", "b.pkg", "22" * 32)
        assert s.sigsum_get("bb", "b.pkg").state == SUBMITTED
        s.sigsum_record_verified("bb", "b.pkg", "22" * 32, 5, 6)
        s.sigsum_record_failed("bb", "b.pkg", "x" * 900)
        rec = s.sigsum_get("bb", "b.pkg")
        assert rec.state == FAILED and len(rec.error) == 500 and rec.leaf_index == 5
        assert s.sigsum_counts() == {FAILED: 1}
