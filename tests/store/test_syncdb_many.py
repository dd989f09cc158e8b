"""lookup_many: the sync dbs read once for many filenames (torfetch prefetch), with lookup_sha256's rules."""

from __future__ import annotations

import hashlib
from pathlib import Path

from tests.store.test_syncdb import NAME, _conf, _db
from torfetch.store.syncdb import lookup_many, lookup_sha256

OTHER = "bar-1-1-any.pkg.tar.zst"


def test_each_name_gets_the_answer_lookup_sha256_gives(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "core", "extra", "absent")
    _db(tmp_path / "db/sync/core.db", hashlib.sha256(b"y").hexdigest(), OTHER)
    _db(tmp_path / "db/sync/extra.db", hashlib.sha256(b"x").hexdigest())
    many = lookup_many(conf, [NAME, OTHER, "missing-1-1-any.pkg.tar.zst"])
    for name in (NAME, OTHER):
        one = lookup_sha256(conf, name)
        assert (many[name].sha256, many[name].db) == (one.sha256, one.db) != (None, "")
    assert many["missing-1-1-any.pkg.tar.zst"].sha256 is None
    assert "is not listed in 2 sync db(s)" in many["missing-1-1-any.pkg.tar.zst"].note


def test_disagreeing_dbs_and_a_moved_dbpath(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "core", "extra")
    _db(tmp_path / "db/sync/core.db", hashlib.sha256(b"x").hexdigest())
    _db(tmp_path / "db/sync/extra.db", hashlib.sha256(b"y").hexdigest())
    assert lookup_many(conf, [NAME])[NAME].sha256 is None
    # pacman --dbpath: the dbs under the given path are read instead of pacman.conf's
    (tmp_path / "elsewhere/sync").mkdir(parents=True)
    _db(tmp_path / "elsewhere/sync/core.db", hashlib.sha256(b"z").hexdigest())
    a = lookup_many(conf, [NAME], dbpath=str(tmp_path / "elsewhere"))[NAME]
    assert (a.sha256, a.db) == (hashlib.sha256(b"z").hexdigest(), "core.db")


def test_no_pacman_conf_answers_nothing(tmp_path: Path) -> None:
    a = lookup_many(tmp_path / "missing.conf", [NAME])[NAME]
    assert a.sha256 is None and "no sync db lookup" in a.note
