"""The sync-db reader against dbs made by Debian's repo-add, in every compression, fed in any chunking, with caps."""

from __future__ import annotations

import gzip
import io
import subprocess
import tarfile
import tracemalloc
from pathlib import Path

import pytest
import zstandard

from tests.repo import make_repo, sha256_file
from torfetch.errors import RepoDbError
from torfetch.pacman.repodb import RepoDbLimits, RepoDbReader, iter_repodb, parse_desc, parse_repodb


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = make_repo(tmp_path_factory.mktemp("repodb"))
    r.add("hello")
    r.add("withepoch", "2:3.1-4")
    r.add("xzpkg", compression="xz")
    return r


def _db(repo, ext: str) -> bytes:
    """repo-add picks the compression from the db's name; the reader must not care about the name."""
    db = repo.repo_dir / f"other{ext}"
    if not db.exists():
        subprocess.run(["repo-add", "-q", str(db), *map(str, repo.packages.values())], check=True,
                       capture_output=True, timeout=60)
    return db.read_bytes()


@pytest.mark.parametrize("ext", [".db.tar.gz", ".db.tar.zst", ".db.tar.xz", ".db.tar", ".files.tar.gz"])
@pytest.mark.parametrize("step", [1, 511, 1 << 20])
def test_reads_repo_add_db(repo, ext, step) -> None:
    if ext != ".files.tar.gz":
        data = _db(repo, ext)
    else:
        _db(repo, ".db.tar.gz")
        data = (repo.repo_dir / "other.files.tar.gz").read_bytes()  # desc + files members
    pkgs = list(iter_repodb(data[i:i + step] for i in range(0, len(data), step)))
    got = {p.filename: p for p in pkgs}
    assert set(got) == {p.name for p in repo.packages.values()}
    for name, path in repo.packages.items():
        p = got[path.name]
        assert p.name == name and p.sha256 == sha256_file(path) and p.csize == path.stat().st_size
        assert p.arch == "x86_64" and p.base == name
    assert got[repo.packages["withepoch"].name].version == "2:3.1-4"


def test_detects_compression_by_magic_not_name(repo, tmp_path) -> None:
    # a zstd db under a .gz name
    data = _db(repo, ".db.tar.zst")
    assert data[:4] == b"\x28\xb5\x2f\xfd"
    assert len(parse_repodb(data)) == 3


def _tar(members: dict[str, bytes], *, end: bool = True) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name, body in members.items():
            ti = tarfile.TarInfo(name)
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
    out = buf.getvalue()
    return out if end else out[: -(len(out) - out.rstrip(b"\0").__len__()) or None]


def _desc(name: str = "a", version: str = "1-1", sha: str = "ab" * 32, extra: str = "") -> bytes:
    return (f"%FILENAME%\n{name}-{version}-any.pkg.tar.zst\n\n%NAME%\n{name}\n\n%VERSION%\n{version}\n\n"
            f"%SHA256SUM%\n{sha}\n\n{extra}").encode()


def test_caps_each_limit() -> None:
    data = _tar({f"p{i}-1-1/desc": _desc(f"p{i}") for i in range(20)})
    assert len(parse_repodb(data)) == 20
    with pytest.raises(RepoDbError, match="more than 5 tar members"):
        parse_repodb(data, RepoDbLimits(max_members=5))
    with pytest.raises(RepoDbError, match="larger than the limit of 1000"):
        parse_repodb(data, RepoDbLimits(max_compressed=1000))
    with pytest.raises(RepoDbError, match="over the limit of 100"):
        parse_repodb(data, RepoDbLimits(max_desc=100))
    bomb = gzip.compress(_tar({"a-1-1/desc": _desc(), "a-1-1/files": b"\0" * (8 << 20)}))
    assert len(bomb) < 64 << 10
    with pytest.raises(RepoDbError, match="decompresses to more than"):
        parse_repodb(bomb, RepoDbLimits(max_decompressed=1 << 20))


def _peak(data: bytes) -> tuple[int, int]:
    tracemalloc.start()
    count = 0
    reader = RepoDbReader()
    for i in range(0, len(data), 65536):
        count += len(reader.feed(data[i:i + 65536]))
    reader.finish()
    _, peak = tracemalloc.get_traced_memory()
    tracemalloc.stop()
    return count, peak


def test_streams_in_bounded_memory() -> None:
    # records are handed out as they complete: peak memory stays flat (a few decompressor slices), far below the db
    import hashlib

    n = 20000
    raw = _tar({f"p{i}-1-1/desc": _desc(f"p{i}", sha=hashlib.sha256(b"%d" % i).hexdigest()) for i in range(n)})
    data = zstandard.ZstdCompressor().compress(raw)
    count, peak = _peak(data)
    assert count == n
    assert len(raw) > 16 << 20 and peak < 2 << 20, (peak, len(data), len(raw))
    # a huge skipped member (a .files list) is never held
    count, peak = _peak(gzip.compress(_tar({"a-1-1/desc": _desc(), "a-1-1/files": b"x" * (64 << 20)})))
    assert count == 1 and peak < 4 << 20, peak


@pytest.mark.parametrize("body,expect", [
    (_desc(sha="zz" * 32), "not 64 hex"),
    (_desc().replace(b"%SHA256SUM%", b"%MD5SUM%"), "lacks %SHA256SUM%"),
    (b"orphan\n" + _desc(), "outside any"),
    (_desc(extra="%NAME%\nb\n"), "twice"),
    (_desc(extra="%CSIZE%\n-3\n"), "not a number"),
    (b"\xff" + _desc(), "not UTF-8"),
])
def test_bad_desc_is_typed(body, expect) -> None:
    with pytest.raises(RepoDbError, match=expect):
        parse_desc(body)


def test_uppercase_sha_is_normalised() -> None:
    assert parse_desc(_desc(sha="AB" * 32)).sha256 == "ab" * 32


def test_member_must_match_its_desc() -> None:
    with pytest.raises(RepoDbError, match="describes"):
        parse_repodb(_tar({"other-1-1/desc": _desc("a")}))


@pytest.mark.parametrize("data,expect", [
    (b"", "empty"),
    (b"\x1f\x8b", "truncated|not a valid|not a tar"),
    (b"hello world, not a tar" * 30, "corrupt tar header"),
])
def test_garbage_is_typed(data, expect) -> None:
    with pytest.raises(RepoDbError, match=expect):
        parse_repodb(data)


def test_truncated_db_is_refused(repo) -> None:
    data = _db(repo, ".db.tar")
    with pytest.raises(RepoDbError, match="truncated"):
        parse_repodb(data[:700])


def test_empty_repo_add_db_has_no_packages(tmp_path) -> None:
    db = tmp_path / "empty.db.tar.gz"
    raw = _tar({})
    db.write_bytes(gzip.compress(raw))
    assert parse_repodb(db.read_bytes()) == []
