"""Shared by the operator-tool tests: a repo built by repo-add, Debian's minisign keys, a local log, and a runner."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import subprocess
import sys
import tarfile
from dataclasses import dataclass
from pathlib import Path

from tests.repo import MinisignKey, Repo

TORFETCH = str(Path(sys.executable).with_name("torfetch"))


def run(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    e = {k: v for k, v in os.environ.items() if k != "PACMAN_BINTRANS_PASSWORD"}
    e.update(env or {})
    return subprocess.run([TORFETCH, *args], capture_output=True, text=True, timeout=timeout, env=e,
                          stdin=subprocess.DEVNULL)


@dataclass
class Log:
    url: str
    pem: Path


def log_args(log: Log, state: Path) -> list[str]:
    return ["--log-url", log.url, "--log-key", str(log.pem), "--state-dir", str(state)]


def sign_args(repo: Repo, log: Log, work: Path, key: MinisignKey | None = None) -> list[str]:
    key = key or repo.key
    return ["sign", "--repo-db", str(repo.repo_dir / f"{repo.name}.db"), "--signature-dir", str(work / "sigs"),
            "--pubkey-path", str(key.pub), "--seckey-path", str(key.sec), *log_args(log, work / "state")]


def minisign_verifies(pub: Path, package: Path, sig: Path) -> subprocess.CompletedProcess[str]:
    """Debian's minisign -V over the package's hex sha256, as a user of the .t would check it."""
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        msg = Path(d) / "sha256"
        msg.write_bytes(hashlib.sha256(package.read_bytes()).hexdigest().encode())
        return subprocess.run(["minisign", "-V", "-p", str(pub), "-m", str(msg), "-x", str(sig)],
                              capture_output=True, text=True, timeout=30)


def encrypted_key(directory: Path, password: str) -> MinisignKey:
    """``minisign -G`` with a password (scrypt, minisign's defaults), as an operator makes one."""
    directory.mkdir(parents=True, exist_ok=True)
    pub, sec = directory / "enc.pub", directory / "enc.key"
    subprocess.run(["minisign", "-G", "-p", str(pub), "-s", str(sec)], input=f"{password}\n{password}\n",
                   text=True, check=True, capture_output=True, timeout=120)
    return MinisignKey(pub, sec)


def closed_port() -> int:
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port


def handmade_db(path: Path, entries: list[tuple[str, str, str, str]]) -> Path:
    """(name, version, filename, sha256) → a gzip db, for names repo-add would never write."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, version, filename, sha in entries:
            body = (f"%FILENAME%\n{filename}\n\n%NAME%\n{name}\n\n%VERSION%\n{version}\n\n"
                    f"%SHA256SUM%\n{sha}\n\n").encode()
            ti = tarfile.TarInfo(f"{name}-{version}/desc")
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
    path.write_bytes(buf.getvalue())
    return path


def plant(log_url: str, key: MinisignKey, sha256_hex: str, work: Path) -> dict:
    """Upload the operator key's signature over ``sha256_hex`` to the log, as a thief of the key would
    (Debian's minisign signs; the upload is the rekord request rekor-cli sends). Returns the LogEntry."""
    import json
    import urllib.request

    from torfetch.verify.rekor import upload_request

    work.mkdir(parents=True, exist_ok=True)
    sig = key.sign_hex(sha256_hex, f"rogue-{sha256_hex[:8]}.pkg.tar.zst", work / f"{sha256_hex[:16]}.t")
    body = upload_request(sig.read_bytes(), key.pub.read_bytes(), sha256_hex.encode())
    req = urllib.request.Request(log_url + "/api/v1/log/entries", data=body, method="POST",
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=30) as r:
        assert r.status == 201
        (entry,) = json.loads(r.read()).values()
    return entry
