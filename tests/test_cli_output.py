"""What the command line promises about -O: usage errors touch nothing, only regular files are replaced,
long names work, a full disk is a local error. Real torfetch processes against a local server."""

from __future__ import annotations

import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from tests.servers.files import FileServer

TORFETCH = [sys.executable, "-m", "torfetch"]
PUBKEY = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
STALE = b"stale partial from an earlier try"


def run(*args: str, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TORFETCH, *args], capture_output=True, text=True, timeout=60, **kw)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


@pytest.fixture
def served(tmp_path: Path):
    www = tmp_path / "www"
    www.mkdir()
    (www / "core.db").write_bytes(b"db bytes" * 1000)
    (www / "a-1-1-any.pkg.tar.zst").write_bytes(b"not fetched")
    with FileServer(www) as s:
        yield s


def usage_error_cases(url: str, tmp_path: Path) -> dict[str, list[str]]:
    pkg = f"{url}/a-1-1-any.pkg.tar.zst"
    torrc = tmp_path / "extra.torrc"
    # were a tor launched by mistake, its only authority is a dead port on 127.0.0.1: it reaches nothing
    torrc.write_text("TestingTorNetwork 1\nDirAuthority dead orport=9 no-v2 v3ident=" + "A" * 40
                     + " 127.0.0.1:9 " + "B" * 40 + "\n")
    return {
        "missing --pubkey with --tor launch": ["--tor", "launch", "--tor-config", str(torrc), pkg],
        "missing --pubkey": [pkg],
        "bad --pubkey": ["--pubkey", "not-a-key", pkg],
        "too few rebuilders": ["--pubkey", PUBKEY, "--required-rebuild-confirms", "2", "--rebuilder", f"{url}/rb/", pkg],
        "key for an unknown rebuilder": ["--pubkey", PUBKEY, "--rebuilder", f"{url}/rb/", "--rebuilder-key",
                                         f"{url}/other/=" + "00" * 32, pkg],
        "--log-url without --log-key": ["--pubkey", PUBKEY, "--log-url", url, pkg],
        "audit without control port": ["--audit-circuits", f"{url}/core.db"],
        "tor-config without --tor launch": ["--tor-config", str(torrc), f"{url}/core.db"],
        "proxy with --tor launch": ["--tor", "launch", "--proxy", "socks5h://127.0.0.1:9", f"{url}/core.db"],
        "negative size": ["--max-size", "-1", f"{url}/core.db"],
        "unknown option": ["--no-such-option", f"{url}/core.db"],
    }


def test_a_usage_error_touches_nothing(tmp_path: Path, served: FileServer) -> None:
    """Exit 2, one line, the stale -O still there, no temp file, and not a single request made."""
    cache = tmp_path / "cache"
    cache.mkdir()
    out = cache / "a-1-1-any.pkg.tar.zst.part"
    tmp = tmp_path / "tmp"  # where a launched tor's DataDirectory would appear
    tmp.mkdir()
    for what, args in usage_error_cases(served.url, tmp_path).items():
        out.write_bytes(STALE)
        before = sorted(p.name for p in cache.iterdir())
        r = run("-O", str(out), *args, cwd=cache, env={**os.environ, "TMPDIR": str(tmp)})
        assert r.returncode == 2, (what, r.stderr)
        one_line(r.stderr)
        assert out.read_bytes() == STALE, what
        assert sorted(p.name for p in cache.iterdir()) == before, what
        assert list(tmp.iterdir()) == [], what
    assert served.requests == []


@pytest.mark.parametrize("kind", ["fifo", "directory", "/dev/null"])
def test_output_that_is_not_a_regular_file_is_refused(kind: str, tmp_path: Path, served: FileServer) -> None:
    if kind == "fifo":
        out = tmp_path / "core.db.part"
        os.mkfifo(out)
        is_kind = stat.S_ISFIFO
    elif kind == "directory":
        out = tmp_path / "core.db.part"
        out.mkdir()
        (out / "inside").write_bytes(b"keep")
        is_kind = stat.S_ISDIR
    else:  # what a mistyped XferCommand would pass; refused before anything is touched
        out = Path("/dev/null")
        is_kind = stat.S_ISCHR
    r = run("-O", str(out), f"{served.url}/core.db")
    assert r.returncode == 2, r.stderr
    assert "not a regular file" in one_line(r.stderr) and str(out) in r.stderr
    assert is_kind(os.lstat(out).st_mode)
    assert served.requests == []
    if kind == "directory":
        assert (out / "inside").read_bytes() == b"keep"


@pytest.mark.parametrize("name", ["a" * 250 + ".part", "\U0001F600" * 61 + "xyz.db.part"], ids=["ascii", "utf8"])
def test_a_255_byte_output_name_works(name: str, tmp_path: Path) -> None:
    # a file:// copy needs no proof, so any output name is taken: the temp name beside it must still fit NAME_MAX
    assert len(os.fsencode(name)) == 255
    src = tmp_path / "core.db"
    src.write_bytes(b"db bytes" * 1000)
    out = tmp_path / name
    r = run("-O", str(out), src.as_uri())
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"db bytes" * 1000
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".torfetch-")] == []


def _file_size_limit(limit: int):
    def apply() -> None:  # in the child: writes past `limit` bytes fail with EFBIG (Python ignores SIGXFSZ)
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_file_size_limit_is_a_local_storage_error(tmp_path: Path, served: FileServer) -> None:
    """A real kernel write failure mid-download: one local-storage line naming the directory, not 'network'."""
    cache = tmp_path / "sync"  # a sync db, where pacman writes it
    cache.mkdir()
    out = cache / "core.db.part"
    out.write_bytes(STALE)
    r = subprocess.run([*TORFETCH, "--direct", "-O", str(out), f"{served.url}/core.db"], capture_output=True, text=True,
                       timeout=60, preexec_fn=_file_size_limit(1000))
    assert r.returncode == 1, r.stderr
    line = one_line(r.stderr)
    assert line.startswith("torfetch: local storage: ") and str(cache) in line and "EFBIG" in line, line
    assert "network" not in line
    assert sorted(p.name for p in cache.iterdir()) == []  # neither the temp file nor the stale -O


def test_a_full_disk_is_a_local_storage_error(tmp_path: Path, served: FileServer) -> None:
    """ENOSPC from a real 64 KiB tmpfs (as root); unprivileged, the same path through a file-size limit."""
    cache = tmp_path / "sync"  # a sync db, where pacman writes it
    cache.mkdir()
    (served.root / "big.db").write_bytes(os.urandom(200_000))
    mounted = os.geteuid() == 0 and subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(cache)],
                                                   capture_output=True, timeout=30).returncode == 0
    try:
        out = cache / "big.db.part"
        r = subprocess.run([*TORFETCH, "--direct", "-O", str(out), f"{served.url}/big.db"], capture_output=True, text=True,
                           timeout=60, preexec_fn=None if mounted else _file_size_limit(1000))
        assert r.returncode == 1, r.stderr
        line = one_line(r.stderr)
        assert line.startswith("torfetch: local storage: ") and str(cache) in line, line
        assert ("ENOSPC" if mounted else "EFBIG") in line, line
        assert sorted(p.name for p in cache.iterdir()) == []
    finally:
        if mounted:
            subprocess.run(["umount", str(cache)], check=True, timeout=30)
