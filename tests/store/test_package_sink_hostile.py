"""A hostile mirror and a hostile machine against the package sink (store/package_sink.py), through the real CLI.

Each case: a non-zero exit, one clear last line, nothing at -O and no temporary file beside it; memory stays
bounded while a decompression bomb streams (the child's own peak RSS, from wait4).
"""

from __future__ import annotations

import io
import os
import resource
import signal
import subprocess
import sys
import tarfile
import threading
import urllib.parse
from pathlib import Path

import pytest
import zstandard

from tests.repo import Repo, make_repo, sha256_file
from tests.servers.base import Handler
from tests.servers.files import FileServer, HoldingMirror
from tests.servers.rekor import RekorServer

TORFETCH = [sys.executable, "-m", "torfetch"]
HOLD_SECONDS = 60  # the holding mirror's bound on its wait (the test signals long before)


def _cmd(tmp_path: Path, repo: Repo, mirror: FileServer, log: RekorServer, name: str) -> tuple[list[str], Path]:
    key = tmp_path / "rekor.pem"
    key.write_bytes(log.public_key_pem)
    pkg = repo.packages[name]
    out = tmp_path / "cache" / (pkg.name + ".part")
    out.parent.mkdir(exist_ok=True)
    return [*TORFETCH, "--direct", "--transparency-url", f"{mirror.url}/sigs", "--pubkey", repo.key.pub_line,
            "--log-url", log.url, "--log-key", str(key), "--state-dir", str(tmp_path / "state"),
            "--pacman-conf", str(tmp_path / "no-pacman.conf"), "--config", os.devnull, "-O", str(out),
            f"{mirror.url}/repo/{pkg.name}"], out


def _nothing_left(out: Path) -> None:
    assert not out.exists()
    assert sorted(p.name for p in out.parent.iterdir()) == []  # no .torfetch-* temporary file either


def _run(cmd: list[str], preexec=None, timeout: float = 120) -> tuple[int, str, str]:
    """(exit code, stderr, stdout)."""
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                          preexec_fn=preexec) as proc:
        out, err = proc.communicate(timeout=timeout)
    return proc.returncode, err, out


def _run_measured(cmd: list[str], timeout: float = 120) -> tuple[int, str, int]:
    r_err, w_err = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child execs at once
        os.dup2(w_err, 2)
        os.execv(cmd[0], cmd)
    os.close(w_err)
    chunks: list[bytes] = []
    timer = threading.Timer(timeout, lambda: os.kill(pid, signal.SIGKILL))
    timer.start()
    try:
        with os.fdopen(r_err, "rb") as f:
            chunks.append(f.read())
        _, status, usage = os.wait4(pid, 0)
    finally:
        timer.cancel()
    return os.waitstatus_to_exitcode(status), b"".join(chunks).decode("utf-8", "replace"), usage.ru_maxrss


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path / "served")
    # 4 MiB that do not compress: a download of several reads, several writeback stretches of a small limit
    r.add("big", files={"usr/share/big/blob": os.urandom(4 * 1024 * 1024)})
    return r


def test_a_file_size_limit_efbig_fails_closed_in_one_line(tmp_path: Path, repo: Repo) -> None:
    # RLIMIT_FSIZE below the package: write(2) fails with EFBIG (Python ignores SIGXFSZ) in the receiving thread
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_FSIZE, (1024 * 1024, 1024 * 1024))

    with FileServer(repo.root) as mirror, RekorServer() as log:
        cmd, out = _cmd(tmp_path, repo, mirror, log, "big")
        code, err, _ = _run(cmd, preexec=limit)
    assert code != 0 and code in (1, 2, 3), err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in err, err
    assert "too large" in lines[0].lower() or "EFBIG" in lines[0] or "File too large" in lines[0], err
    _nothing_left(out)


def _bomb(repo: Repo, name: str = "bomb", version: str = "1.0-1") -> Path:
    # a tar whose first member is 300 MiB of zeros, .PKGINFO after it: a few hundred KiB of zstd, signed by the
    # operator (so the signature passes and only the .PKGINFO reader in the hasher's thread stands in the way)
    size = 300 * 1024 * 1024
    info = tarfile.TarInfo("usr/share/zeros")
    info.size = size
    head = info.tobuf(format=tarfile.GNU_FORMAT)
    cctx = zstandard.ZstdCompressor(level=3)
    buf = io.BytesIO()
    with cctx.stream_writer(buf, closefd=False) as w:
        w.write(head)
        zero = bytes(1024 * 1024)
        for _ in range(size // len(zero)):
            w.write(zero)
    path = repo.repo_dir / f"{name}-{version}-x86_64.pkg.tar.zst"
    path.write_bytes(buf.getvalue())
    repo.key.sign_hex(sha256_file(path), path.name, repo.sig_dir / (path.name + ".t"))
    repo.packages[name] = path
    return path


def test_a_zstd_bomb_fails_closed_with_flat_memory(tmp_path: Path, repo: Repo) -> None:
    _bomb(repo)
    with FileServer(repo.root) as mirror, RekorServer() as log:
        cmd, out = _cmd(tmp_path, repo, mirror, log, "bomb")
        code, err, peak_kib = _run_measured(cmd)
    assert code == 1, err
    lines = err.strip().splitlines()
    assert len(lines) == 1 and ".PKGINFO" in lines[0] and "decompress" in lines[0], err
    assert peak_kib < 200 * 1024, peak_kib  # 300 MiB decompressed never held: the reader skips member bodies
    _nothing_left(out)


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM, signal.SIGHUP], ids=lambda s: s.name)
def test_a_signal_mid_download_exits_130_and_leaves_nothing(tmp_path: Path, repo: Repo, sig: int) -> None:
    name = repo.packages["big"].name
    with HoldingMirror(repo.root, name, threading.Event(), hold_seconds=HOLD_SECONDS) as mirror, \
            RekorServer() as log:
        cmd, out = _cmd(tmp_path, repo, mirror, log, "big")
        with subprocess.Popen(cmd, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True) as proc:
            try:
                assert mirror.half_sent.wait(60)  # 2 MiB are on their way: the sink has chunks queued or hashed
                proc.send_signal(sig)
                _, err = proc.communicate(timeout=60)  # no hang: the sink's finally waits for one chunk at most
            finally:
                mirror.gate.set()
                if proc.poll() is None:
                    proc.kill()
    assert proc.returncode == 130, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    _nothing_left(out)


class ShortLengthMirror(FileServer):
    """Says Content-Length: half the package, then sends all of it (the rest is junk on the connection)."""

    def _handle(self, h: Handler, method: str) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        if method != "GET" or not path.endswith(".pkg.tar.zst"):
            return super()._handle(h, method)
        data = (self.root / path.lstrip("/")).read_bytes()
        h.send_response(200)
        h.send_header("Content-Length", str(len(data) // 2))
        h.end_headers()
        h.close_connection = True
        try:
            h.wfile.write(data)
        except OSError:
            pass


def test_a_content_length_shorter_than_the_package_is_refused(tmp_path: Path, repo: Repo) -> None:
    # the first half is all the client takes: its sha256 is not the signed one
    with ShortLengthMirror(repo.root) as mirror, RekorServer() as log:
        cmd, out = _cmd(tmp_path, repo, mirror, log, "big")
        code, err, _ = _run(cmd)
    assert code == 1, err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    _nothing_left(out)


# -O's directory on a tmpfs of its own (a mount namespace: needs root, as the chroot tests do): a real full disk,
# and a file system whose sync_file_range is a no-op. The shell lists the directory before the namespace ends.
_IN_TMPFS = 'mount -t tmpfs -o size="$1" tmpfs "$2" || exit 99; d=$2; shift 2; "$@"; rc=$?; ' \
            'echo "left:$(ls -A "$d" | tr "\\n" " ")"; for f in "$d"/*.part; do [ -f "$f" ] && sha256sum "$f"; done; ' \
            'exit $rc'


def _in_tmpfs(size: str, directory: Path, cmd: list[str]) -> tuple[int, str, str]:
    return _run(["unshare", "-m", "sh", "-c", _IN_TMPFS, "sh", size, str(directory), *cmd])


def test_a_full_disk_enospc_fails_closed_and_leaves_nothing(tmp_path: Path, repo: Repo) -> None:
    with FileServer(repo.root) as mirror, RekorServer() as log:
        cmd, out = _cmd(tmp_path, repo, mirror, log, "big")
        code, err, listing = _in_tmpfs("1m", out.parent, cmd)  # the package is 4 MiB
    assert code != 99, err
    lines = err.strip().splitlines()
    assert code == 2 or code == 1, err
    assert len(lines) == 1 and "ENOSPC" in lines[0] and "Traceback" not in err, err
    assert listing.splitlines()[0].strip() == "left:", listing  # no -O, no temporary file on the full tmpfs


def test_a_package_lands_whole_on_a_tmpfs(tmp_path: Path, repo: Repo) -> None:
    # tmpfs has no writeback: the hints must change nothing (no error, the same bytes)
    with FileServer(repo.root) as mirror, RekorServer() as log:
        cmd, out = _cmd(tmp_path, repo, mirror, log, "big")
        code, err, listing = _in_tmpfs("64m", out.parent, cmd)
    assert code == 0, err
    assert listing.splitlines()[0].strip() == "left:" + out.name, listing
    assert listing.splitlines()[1].split()[0] == sha256_file(repo.packages["big"]), listing
