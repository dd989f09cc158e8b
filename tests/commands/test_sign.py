"""`torfetch sign` against a repo made by repo-add, Debian's minisign and the local Rekor-API log."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import time
from pathlib import Path

import pytest

from tests.operator.helpers import (TORFETCH, Log, closed_port, encrypted_key, handmade_db, log_args, minisign_verifies,
                                    run, sign_args)
from tests.repo import MinisignKey, make_repo
from tests.servers.rekor import RekorServer

PASSWORD = "correct horse battery"


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    r = make_repo(tmp_path_factory.mktemp("signrepo"))
    for name in ("alpha", "beta", "gamma", "delta"):
        r.add(name)
    r.add("epoch", "2:1.0-1")
    return r


@pytest.fixture
def rekor(tmp_path):
    with RekorServer() as srv:
        pem = tmp_path / "rekor.pem"
        pem.write_bytes(srv.public_key_pem)
        yield srv, Log(srv.url, pem)


def posts(srv: RekorServer) -> int:
    return sum(1 for m, p in srv.requests if m == "POST" and p == "/api/v1/log/entries")


def rows(state: Path) -> list[tuple]:
    try:
        with sqlite3.connect(state / "signatures.sqlite") as db:
            return db.execute("SELECT filename, state, log_index, uuid FROM pkgs ORDER BY filename").fetchall()
    except sqlite3.OperationalError:  # the signer is still creating the schema
        return []


def test_signs_every_package_and_minisign_accepts_each(tmp_path, repo, rekor) -> None:
    srv, log = rekor
    r = run(*sign_args(repo, log, tmp_path))
    assert r.returncode == 0, r.stderr
    assert "signed 5, proven in the log 5" in r.stdout
    for pkg in repo.packages.values():
        t = tmp_path / "sigs" / (pkg.name + ".t")
        v = minisign_verifies(repo.key.pub, pkg, t)
        assert v.returncode == 0, v.stderr
        assert f"Trusted comment: {pkg.name}" in v.stdout
    got = rows(tmp_path / "state")
    assert [g[0] for g in got] == sorted(p.name for p in repo.packages.values())
    assert all(state == "verified" and idx >= srv.offset and len(uuid) == 80 for _, state, idx, uuid in got)
    assert posts(srv) == 5
    # nothing else in the signature dir (no temporary files)
    assert sorted(p.name for p in (tmp_path / "sigs").iterdir()) == sorted(p.name + ".t" for p in repo.packages.values())


def test_rerun_uploads_nothing_new(tmp_path, repo, rekor) -> None:
    srv, log = rekor
    assert run(*sign_args(repo, log, tmp_path)).returncode == 0
    before = posts(srv)
    r = run(*sign_args(repo, log, tmp_path))
    assert r.returncode == 0, r.stderr
    assert "already done 5" in r.stdout and posts(srv) == before
    # --reupload-sigs proves them all again; the log already has them (no new entries)
    size = len(srv.bodies)
    r = run(*sign_args(repo, log, tmp_path), "--reupload-sigs")
    assert r.returncode == 0 and "proven in the log 5" in r.stdout, r.stderr
    assert len(srv.bodies) == size


def test_interrupted_run_resumes(tmp_path, repo, rekor) -> None:
    srv, log = rekor
    srv.lie.slow_seconds = 0.3  # each request takes a while, so SIGINT lands mid-run
    p = subprocess.Popen([TORFETCH, *sign_args(repo, log, tmp_path), "--jobs", "1"], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, text=True)
    db = tmp_path / "state" / "signatures.sqlite"
    for _ in range(600):  # bounded: 60 s
        if db.exists() and any(s == "verified" for _, s, _, _ in rows(tmp_path / "state")):
            break
        time.sleep(0.1)
    p.send_signal(signal.SIGINT)
    out, err = p.communicate(timeout=60)
    assert p.returncode == 130, err
    done = [f for f, s, _, _ in rows(tmp_path / "state") if s == "verified"]
    assert 1 <= len(done) < 5
    assert not [n for n in os.listdir(tmp_path / "sigs") if not n.endswith(".t")]  # no half-written files
    srv.lie.slow_seconds = 0
    r = run(*sign_args(repo, log, tmp_path), "-v")
    assert r.returncode == 0, r.stderr
    assert f"already done {len(done)}" in r.stdout
    assert all(s == "verified" for _, s, _, _ in rows(tmp_path / "state"))
    assert posts(srv) == 5  # every package uploaded exactly once across both runs
    for name in done:
        assert f"signed {name}" not in r.stderr


def test_skip_upload_and_dry_run(tmp_path, repo, rekor) -> None:
    srv, log = rekor
    r = run(*sign_args(repo, log, tmp_path / "dry"), "--dry-run")
    assert r.returncode == 0 and "would sign 5" in r.stdout, r.stderr
    assert not (tmp_path / "dry" / "sigs").exists() and not (tmp_path / "dry" / "state").exists()
    r = run(*sign_args(repo, log, tmp_path), "--skip-upload")
    assert r.returncode == 0 and "signed 5, proven in the log 0" in r.stdout, r.stderr
    assert srv.requests == [] and len(list((tmp_path / "sigs").iterdir())) == 5
    # later, with the log: only the upload is left to do, the .t files stay as they are
    before = {p.name: p.read_bytes() for p in (tmp_path / "sigs").iterdir()}
    r = run(*sign_args(repo, log, tmp_path))
    assert r.returncode == 0 and "signed 0, proven in the log 5" in r.stdout, r.stderr
    assert {p.name: p.read_bytes() for p in (tmp_path / "sigs").iterdir()} == before


def test_repo_url_with_repo_and_arch(tmp_path, repo, rekor) -> None:
    from tests.servers.files import FileServer

    srv, log = rekor
    with FileServer(repo.root) as files:
        args = ["sign", "--repo-url", f"{files.url}/$repo/$arch/../..", "--repo-name", "repo", "--architecture", "x86_64",
                "--signature-dir", str(tmp_path / "sigs"), "--pubkey-path", str(repo.key.pub),
                "--seckey-path", str(repo.key.sec), "--skip-upload", "--state-dir", str(tmp_path / "state")]
        # <repo-url>/<name>.db with $repo=repo: http://.../repo/x86_64/../../repo.db does not exist
        r = run(*args)
        assert r.returncode == 3 and "repo.db" in r.stderr, r.stderr
        args[2] = f"{files.url}/$repo"
        args[4] = "test"
        os.symlink(repo.repo_dir, repo.root / "test") if not (repo.root / "test").exists() else None
        r = run(*args)
        assert r.returncode == 0 and "signed 5" in r.stdout, r.stderr
        assert any(p.endswith("/test/test.db") for _, p in files.requests)


def test_encrypted_key_right_and_wrong_password(tmp_path, repo, rekor) -> None:
    srv, log = rekor
    key = encrypted_key(tmp_path / "keys", PASSWORD)
    r = run(*sign_args(repo, log, tmp_path / "w", key), env={"PACMAN_BINTRANS_PASSWORD": "not it"})
    assert r.returncode == 2
    assert r.stderr.strip().splitlines() == [f"torfetch: configuration: wrong password for the secret key {key.sec} "
                                             "(its checksum does not match)"]
    assert not list((tmp_path / "w" / "sigs").iterdir())
    r = run(*sign_args(repo, log, tmp_path / "n", key))  # no password, no terminal
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1 and "PACMAN_BINTRANS_PASSWORD" in r.stderr
    r = run(*sign_args(repo, log, tmp_path / "ok", key), env={"PACMAN_BINTRANS_PASSWORD": PASSWORD})
    assert r.returncode == 0, r.stderr
    pkg = repo.packages["alpha"]
    assert minisign_verifies(key.pub, pkg, tmp_path / "ok" / "sigs" / (pkg.name + ".t")).returncode == 0


def test_key_not_matching_pubkey_is_one_line(tmp_path, repo, rekor) -> None:
    srv, log = rekor
    other = MinisignKey.generate(tmp_path / "other", "other")
    args = sign_args(repo, log, tmp_path)
    args[args.index("--pubkey-path") + 1] = str(other.pub)
    r = run(*args)
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert "does not match the public key" in r.stderr
    assert srv.requests == []


def test_unreachable_log_is_one_line(tmp_path, repo, rekor) -> None:
    _, log = rekor
    r = run(*sign_args(repo, Log(f"http://127.0.0.1:{closed_port()}", log.pem), tmp_path))
    assert r.returncode == 3, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "is unreachable" in r.stderr


def test_refuses_filenames_with_slash_or_leading_dot(tmp_path, repo, rekor) -> None:
    srv, log = rekor
    db = handmade_db(tmp_path / "evil.db", [
        ("a", "1-1", "../../etc/passwd", "ab" * 32), ("b", "1-1", ".hidden.pkg.tar.zst", "cd" * 32),
        ("c", "1-1", "c-1-1-any.pkg.tar.zst", "ef" * 32)])
    args = sign_args(repo, log, tmp_path)
    args[args.index("--repo-db") + 1] = str(db)
    r = run(*args, "--skip-upload")
    assert r.returncode == 1 and "refused 2" in r.stdout, r.stdout + r.stderr
    assert r.stderr.count("refusing to sign") == 2
    assert sorted(os.listdir(tmp_path / "sigs")) == ["c-1-1-any.pkg.tar.zst.t"]
    assert not (tmp_path / "etc").exists()


def test_rotated_key_signs_again(tmp_path, repo, rekor) -> None:
    srv, log = rekor
    assert run(*sign_args(repo, log, tmp_path)).returncode == 0
    new = MinisignKey.generate(tmp_path / "new", "new")
    r = run(*sign_args(repo, log, tmp_path, new))
    assert r.returncode == 0 and "signed 5, proven in the log 5" in r.stdout, r.stderr
    pkg = repo.packages["beta"]
    assert minisign_verifies(new.pub, pkg, tmp_path / "sigs" / (pkg.name + ".t")).returncode == 0


def test_published_files_are_world_readable_whatever_the_umask(tmp_path, repo, rekor) -> None:
    """A web server running as another user must be able to serve every .t (mkstemp alone makes 0600)."""
    import stat as stat_

    _, log = rekor
    r = subprocess.run([TORFETCH, *sign_args(repo, log, tmp_path)], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL, preexec_fn=lambda: os.umask(0o077))
    assert r.returncode == 0, r.stderr
    modes = {p.name: stat_.S_IMODE(p.stat().st_mode) for p in (tmp_path / "sigs").iterdir()}
    assert modes and set(modes.values()) == {0o644}, modes
