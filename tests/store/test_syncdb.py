"""lookup_sha256: the sha256 the sync dbs of a pacman.conf list for a filename, or why there is none."""

from __future__ import annotations

import hashlib
import io
import tarfile
import threading
from pathlib import Path

from torfetch.store.syncdb import lookup_sha256

NAME = "foo-1.0-1-x86_64.pkg.tar.zst"


def _db(path: Path, sha: str, filename: str = NAME) -> None:
    desc = f"%FILENAME%\n{filename}\n\n%NAME%\nfoo\n\n%VERSION%\n1.0-1\n\n%SHA256SUM%\n{sha}\n\n".encode()
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        m = tarfile.TarInfo("foo-1.0-1/desc")
        m.size = len(desc)
        tf.addfile(m, io.BytesIO(desc))
    path.write_bytes(buf.getvalue())


def _conf(tmp_path: Path, *repos: str) -> Path:
    (tmp_path / "db" / "sync").mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "pacman.conf"
    conf.write_text(f"[options]\nDBPath = {tmp_path}/db\n" + "".join(f"[{r}]\n" for r in repos))
    return conf


def test_found_in_one_db_of_several(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "core", "extra", "absent")
    sha = hashlib.sha256(b"x").hexdigest()
    _db(tmp_path / "db/sync/core.db", hashlib.sha256(b"y").hexdigest(), "bar-1-1-any.pkg.tar.zst")
    _db(tmp_path / "db/sync/extra.db", sha)
    a = lookup_sha256(conf, NAME)
    assert (a.sha256, a.db) == (sha, "extra.db")


def test_dbs_that_disagree_give_no_answer(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "core", "extra")
    _db(tmp_path / "db/sync/core.db", hashlib.sha256(b"x").hexdigest())
    _db(tmp_path / "db/sync/extra.db", hashlib.sha256(b"y").hexdigest())
    a = lookup_sha256(conf, NAME)
    assert a.sha256 is None and "list different sha256" in a.note


def test_a_malformed_db_is_no_answer_not_an_error(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "core")
    (tmp_path / "db/sync/core.db").write_bytes(b"\x1f\x8b garbage")
    assert lookup_sha256(conf, NAME).sha256 is None


def test_stopped_lookup_gives_no_answer(tmp_path: Path) -> None:
    conf = _conf(tmp_path, "core")
    _db(tmp_path / "db/sync/core.db", hashlib.sha256(b"x").hexdigest())
    stop = threading.Event()
    stop.set()
    assert lookup_sha256(conf, NAME, stop).sha256 is None
