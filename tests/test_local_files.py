"""file:// URLs: a local repository is as trusted as the disk it is on: copied without proof, atomically, no Tor."""

from __future__ import annotations

import socket
import subprocess
import sys
from pathlib import Path

# the default SocksPort pointed at a closed port in the child's own code (see tests/test_tor_default.py):
# a file:// copy must not need, or touch, Tor
WITH_DEFAULT = [sys.executable, "-c",
                "import sys, torfetch.net.tor as t; t.DEFAULT_SOCKS = sys.argv[1]; "
                "from torfetch.cli import main; sys.exit(main(['--config', '/dev/null', *sys.argv[2:]]))"]


def closed_port() -> int:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*WITH_DEFAULT, f"socks5h://127.0.0.1:{closed_port()}", *args],
                          capture_output=True, text=True, timeout=60)


def test_local_package_is_copied_without_proof_and_v_says_so(tmp_path: Path) -> None:
    repo = tmp_path / "local repo"
    repo.mkdir()
    pkg = repo / "hello-1.0-1-x86_64.pkg.tar.zst"
    pkg.write_bytes(b"not even a real package" * 100)  # no .t, no key, no log: none is asked for
    out = tmp_path / "cache" / "hello-1.0-1-x86_64.pkg.tar.zst.part"
    out.parent.mkdir()
    out.write_bytes(b"stale partial")
    r = run("-v", "-O", str(out), f"file://{repo}/{pkg.name}".replace(" ", "%20"))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    assert r.stderr.strip() == (f"[+] copied {pkg.name} (2300 bytes) from the local repository: a file:// URL is "
                                "trusted as the disk it is on, no proof checked")
    assert sorted(p.name for p in out.parent.iterdir()) == [out.name]  # atomic: no temp file left


def test_local_copy_is_silent_without_v(tmp_path: Path) -> None:
    (tmp_path / "core.db").write_bytes(b"db")
    r = run("-O", str(tmp_path / "core.db.part"), f"file://{tmp_path}/core.db")
    assert r.returncode == 0 and r.stderr == ""
    assert (tmp_path / "core.db.part").read_bytes() == b"db"


def test_missing_local_file_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out" / "x-1-1-any.pkg.tar.zst.part"
    out.parent.mkdir()
    out.write_bytes(b"stale")
    r = run("-O", str(out), f"file://{tmp_path}/x-1-1-any.pkg.tar.zst")
    assert r.returncode == 3
    assert r.stderr.strip() == f"torfetch: not found: {tmp_path}/x-1-1-any.pkg.tar.zst does not exist"
    assert list(out.parent.iterdir()) == []


def test_percent_encoded_bytes_in_a_local_path_are_the_path_bytes(tmp_path: Path) -> None:
    """file:///repo/%FF/… names the directory whose name is the byte 0xff (as libcurl reads it), not U+FFFD."""
    import os

    repo = tmp_path / os.fsdecode(b"r\xff")
    repo.mkdir()
    (repo / "hello-1.0-1-x86_64.pkg.tar.zst").write_bytes(b"pkg")
    out = tmp_path / "hello-1.0-1-x86_64.pkg.tar.zst.part"
    r = run("-O", str(out), f"file://{tmp_path}/r%FF/hello-1.0-1-x86_64.pkg.tar.zst")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"pkg"


def test_nul_in_a_local_path_is_one_line_and_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "out" / "x-1-1-any.pkg.tar.zst.part"
    out.parent.mkdir()
    r = run("-O", str(out), f"file://{tmp_path}/re%00po/x-1-1-any.pkg.tar.zst")
    assert r.returncode == 1, r.stderr
    assert r.stderr.count("\n") == 1 and "internal error" not in r.stderr and "NUL" in r.stderr, r.stderr
    assert list(out.parent.iterdir()) == []


def test_odd_bytes_in_a_missing_local_path_stay_on_one_line(tmp_path: Path) -> None:
    r = run("-O", str(tmp_path / "x.part"), f"file://{tmp_path}/r%FF%0Ax/x-1-1-any.pkg.tar.zst")
    assert r.returncode == 3
    assert r.stderr.count("\n") == 1 and "does not exist" in r.stderr, r.stderr
