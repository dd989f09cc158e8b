"""Debian's real rebuilderd 0.28 and its worker (in the sid chroot) as the rebuilder, real pacman 7.1 as the client.

The daemon imports two packages of the local signed repository through a sync profile; its worker's backend
"rebuilds" them by copying the input (GOOD) or writing other bytes (BAD). Then pacman, with torfetch as
``XferCommand = /usr/bin/torfetch -O %o %u`` and the rebuilder in /etc/torfetch.toml's [[repo]] table
(``required_rebuild_confirms = 1``), all reached through the recording SOCKS proxy, installs the GOOD one only with the daemon's key pinned: a wrong
pinned key and a BAD verdict do not count. Beside the local rebuilderd server (tests/servers/rebuilderd.py) this
checks torfetch against the real API answers and the real attestation signatures.
"""

from __future__ import annotations

import json
import secrets
import shutil
import socket
import subprocess
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.chroot import Chroot, can_run
from tests.e2e.conftest import LogFixture, needs_pacman
from tests.e2e.test_pacman7 import (LOG_KEY, Names, Pacman7, assert_installed_through_proxy, behind_proxy,
                                    connects_by_host, socks, torfetch_toml)
from tests.repo import Repo
from tests.servers.files import FileServer
from tests.servers.socks import SocksProxy

__all__ = ["socks"]  # the session's SOCKS proxy fixture, shared with test_pacman7

pytestmark = [needs_pacman, pytest.mark.pacman, pytest.mark.slow,
              pytest.mark.skipif(can_run() is not None, reason=str(can_run()))]

GOOD, BAD = "rbgood", "rbbad"
KEYS = "/etc/torfetch-test"  # key files readable by alpm
REBUILD_WAIT = 180.0  # seconds: both packages rebuilt (measured: a few seconds)

# The backend: $1 is the input package; what lands in $REBUILDERD_OUTDIR is compared with it.
BACKEND = f"""#!/bin/sh
set -e
case "$(basename "$1")" in
    {BAD}-*) printf 'not the same bytes\\n' > "$REBUILDERD_OUTDIR/$(basename "$1")" ;;
    *) cp "$1" "$REBUILDERD_OUTDIR/" ;;
esac
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _get_json(url: str) -> object:
    with urllib.request.urlopen(url, timeout=10) as r:  # 127.0.0.1 only
        return json.loads(r.read(1 << 20))


@dataclass
class RealRebuilderd:
    url: str
    key_pem: str  # the daemon's long-term key, as /api/v1/meta/public-keys serves it
    statuses: dict[str, str]


def _uncompressed_db(signed_repo: Repo, names: list[str]) -> None:
    """rb.db as an uncompressed tar: rebuildctl 0.28 failed on repo-add's gzip db (see notes/rebuilderd.md)."""
    db = signed_repo.repo_dir / "rb.db.tar.gz"
    subprocess.run(["repo-add", "-q", str(db), *[str(signed_repo.packages[n]) for n in names]],
                   check=True, capture_output=True, timeout=60)
    plain = signed_repo.repo_dir / "rb.db"
    plain.unlink(missing_ok=True)
    subprocess.run(["sh", "-c", f"gzip -dc '{db}' > '{plain}'"], check=True, timeout=60)


@pytest.fixture(scope="module")
def sid(rekor: LogFixture) -> Iterator[Chroot]:
    c = Chroot.open("sid")
    try:
        key = c.path(LOG_KEY)
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rekor.key_pem_path, key)
        key.chmod(0o644)
        c.run(["torfetch", "setup"], check=True)
        yield c
    finally:
        c.close()


@pytest.fixture(scope="module")
def rebuilderd(sid: Chroot, signed_repo: Repo, mirror: FileServer) -> Iterator[RealRebuilderd]:
    for name in (GOOD, BAD):
        if name not in signed_repo.packages:
            signed_repo.add(name)
    _uncompressed_db(signed_repo, [GOOD, BAD])
    port = _free_port()
    url = f"http://127.0.0.1:{port}"
    secret = secrets.token_hex(16)
    d = sid.path("/srv/rebuilderd")
    d.mkdir(parents=True)
    (d / "rebuilderd.conf").write_text(
        f'[http]\nbind_addr = "127.0.0.1:{port}"\nendpoint = "{url}"\n'
        f'[worker]\nsignup_secret = "{secret}"\n')
    (d / "sync.conf").write_text(
        '[profile."rb"]\ndistro = "archlinux"\ncomponents = ["rb"]\narchitectures = ["x86_64"]\n'
        f'source = "{mirror.url}/repo"\n')
    (d / "worker.conf").write_text(
        f'endpoint = "{url}"\nsignup_secret = "{secret}"\n[build]\ntimeout = 120\n'
        '[backend."archlinux"]\npath = "/srv/rebuilderd/backend.sh"\n')
    (d / "backend.sh").write_text(BACKEND)
    (d / "backend.sh").chmod(0o755)
    env = {"REBUILDERD_COOKIE_PATH": "/srv/rebuilderd/auth-cookie",
           "REBUILDERD_SIGNING_KEY": "/srv/rebuilderd/sign.key"}
    procs: list[subprocess.Popen[bytes]] = []
    try:
        procs.append(sid.popen(["sh", "-c", "cd /srv/rebuilderd && exec rebuilderd -c rebuilderd.conf"],
                               log=sid.run_dir / "rebuilderd.log", env=env))
        meta = None
        deadline = time.monotonic() + 60
        while meta is None:
            try:
                meta = _get_json(f"{url}/api/v1/meta/public-keys")
            except OSError:
                assert procs[0].poll() is None, (sid.run_dir / "rebuilderd.log").read_text()
                assert time.monotonic() < deadline, "rebuilderd did not answer in 60 s"
                time.sleep(0.2)
        (pem,) = meta["current"]  # type: ignore[index]
        r = sid.run(["sh", "-c", "cd /srv/rebuilderd && exec rebuildctl -c rebuilderd.conf pkgs sync-profile "
                     "--sync-config sync.conf rb"], env=env, timeout=60)
        assert r.returncode == 0, r.stdout + r.stderr
        procs.append(sid.popen(["sh", "-c", "cd /srv/rebuilderd && exec timeout 300 rebuilderd-worker -c worker.conf "
                                f"connect {url}"], log=sid.run_dir / "worker.log", env=env))
        statuses: dict[str, str] = {}
        deadline = time.monotonic() + REBUILD_WAIT
        while True:
            for name in (GOOD, BAD):
                doc = _get_json(f"{url}/api/v1/packages/binary?distribution=archlinux&name={name}")
                recs = doc["records"]  # type: ignore[index]
                statuses[name] = recs[0]["status"] if recs else "missing"
            if all(s in ("GOOD", "BAD") for s in statuses.values()):
                break
            assert time.monotonic() < deadline, (statuses, (sid.run_dir / "worker.log").read_text()[-3000:])
            time.sleep(0.5)
        yield RealRebuilderd(url, pem, statuses)
    finally:
        for p in reversed(procs):
            p.terminate()
        for p in procs:
            try:
                p.wait(timeout=10)
            except subprocess.TimeoutExpired:
                p.kill()
                p.wait(timeout=10)


def _pinned(sid: Chroot, name: str, pem: str) -> str:
    path = f"{KEYS}/{name}.pem"
    f = sid.path(path)
    f.write_text(pem)
    f.chmod(0o644)
    return path


REBUILDER = "rebuilder.test"  # the daemon as torfetch asks the proxy for it


def _pacman(sid: Chroot, signed_repo: Repo, mirror: FileServer, rekor: LogFixture, socks: SocksProxy,
            rb: RealRebuilderd, key_path: str, tag: str) -> Pacman7:
    """The shipped /etc/torfetch.toml with the [[repo]] table's rebuilder lines filled in: the daemon (under a
    .test name, so only through the proxy), its pinned key, one confirmation required."""
    n = Names.of(mirror, rekor)
    url = behind_proxy(rb.url, REBUILDER)
    config = torfetch_toml(match=f"{n.mirror}/repo/", transparency_url=f"{n.sigs}/sigs",
                           pubkey=signed_repo.key.pub_line, log_url=n.log, proxy=socks.url, rebuilder=url,
                           rebuilder_key=f"{url}={key_path}", verbose=2,  # -vv: each rebuilder's answer
                           top=("rebuilder_timeout = 30",))
    return Pacman7(sid, f"rb-{tag}", f"{n.mirror}/repo", config, socks).write()


def test_real_daemon_rebuilt_good_and_bad(rebuilderd: RealRebuilderd) -> None:
    assert rebuilderd.statuses == {GOOD: "GOOD", BAD: "BAD"}
    assert rebuilderd.key_pem.startswith("-----BEGIN PUBLIC KEY-----")


def test_good_with_daemon_key_pinned_counts(sid, signed_repo, mirror, rekor, socks, rebuilderd) -> None:
    pm = _pacman(sid, signed_repo, mirror, rekor, socks, rebuilderd, _pinned(sid, "daemon", rebuilderd.key_pem), "good")
    r = pm.run("-Sy", GOOD)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert pm.installed(GOOD)
    assert pm.cache_entries() == [signed_repo.packages[GOOD].name]
    assert f"reproduced {GOOD} 1.0-1 (GOOD) [v1], attestation signed by pinned key" in out, out
    assert f"1 of 1 rebuilders confirmed {GOOD} 1.0-1 (need 1)" in out, out
    assert_installed_through_proxy(socks, extra={REBUILDER: {"torfetch-rebuilder"}})


def test_wrong_pinned_key_does_not_count(sid, signed_repo, mirror, rekor, socks, rebuilderd) -> None:
    other = Ed25519PrivateKey.generate().public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo).decode()
    pm = _pacman(sid, signed_repo, mirror, rekor, socks, rebuilderd, _pinned(sid, "wrong", other), "wrongkey")
    r = pm.run("-Sy", GOOD)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"torfetch: rebuilders: only 0 of 1 rebuilders confirmed {GOOD} 1.0-1 (need 1)" in out, out
    assert "is not signed by the pinned key" in out, out
    assert "torfetch-rebuilder" in connects_by_host(socks)[REBUILDER]
    assert not pm.installed(GOOD)
    assert [e for e in pm.cache_entries() if not e.startswith("download-")] == []
    assert pm.leftovers() == [], pm.leftovers()


def test_bad_verdict_does_not_count(sid, signed_repo, mirror, rekor, socks, rebuilderd) -> None:
    pm = _pacman(sid, signed_repo, mirror, rekor, socks, rebuilderd, _pinned(sid, "daemon", rebuilderd.key_pem), "bad")
    r = pm.run("-Sy", BAD)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert f"torfetch: rebuilders: only 0 of 1 rebuilders confirmed {BAD} 1.0-1 (need 1)" in out, out
    assert f"reports BAD for {BAD} 1.0-1" in out, out
    assert "torfetch-rebuilder" in connects_by_host(socks)[REBUILDER]
    assert not pm.installed(BAD)
    assert [e for e in pm.cache_entries() if not e.startswith("download-")] == []
    assert pm.leftovers() == [], pm.leftovers()
