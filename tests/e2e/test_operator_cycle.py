"""The operator's whole cycle: `torfetch sign` a repo made by repo-add → real pacman installs through torfetch
(with --no-upload, so only the signer's entries can satisfy it) → `torfetch monitor` is clean → a planted rogue
signature over a package in no db is reported with its log index (exit 1, --json)."""

from __future__ import annotations

import hashlib
import json

import pytest

from tests.e2e.conftest import needs_pacman
from tests.operator.helpers import Log, log_args, minisign_verifies, plant, run, sign_args
from tests.pacman_sandbox import PacmanSandbox
from tests.repo import make_repo
from tests.servers.files import FileServer
from tests.servers.rekor import RekorServer

pytestmark = [needs_pacman, pytest.mark.pacman]


def test_sign_install_monitor_rogue(tmp_path) -> None:
    repo = make_repo(tmp_path / "srv")
    for name in ("hello", "world"):
        repo.add(name, sign=False)  # no .t yet: torfetch sign writes them
    repo.add("epochal", "1:2.0-3", sign=False)
    with RekorServer() as srv, FileServer(repo.root) as mirror:
        pem = tmp_path / "rekor.pem"
        pem.write_bytes(srv.public_key_pem)
        log = Log(srv.url, pem)
        args = sign_args(repo, log, tmp_path / "op")
        args[args.index("--signature-dir") + 1] = str(repo.sig_dir)
        r = run(*args)
        assert r.returncode == 0 and "signed 3, proven in the log 3" in r.stdout, r.stderr
        for pkg in repo.packages.values():
            assert minisign_verifies(repo.key.pub, pkg, repo.sig_dir / (pkg.name + ".t")).returncode == 0

        xfer = ["-v", "--direct", "--transparency-url", f"{mirror.url}/sigs", "--pubkey", repo.key.pub_line,
                *log_args(log, tmp_path / "user-state"), "--no-upload"]
        sb = PacmanSandbox(tmp_path / "root", f"{mirror.url}/repo", xfer).write()
        r = sb.run("-Sy", "hello", "world", "epochal")
        assert r.returncode == 0, r.stdout + r.stderr
        assert sb.installed("hello") and sb.installed("world") and sb.installed("epochal")
        assert (sb.root / "usr/share/world/hello.txt").read_text() == "hello from world\n"
        assert sb.leftovers() == []

        mon = ["monitor", "--pubkey", repo.key.pub_line, "--repo-db", f"{mirror.url}/repo/test.db",
               *log_args(log, tmp_path / "mon"), "--signer-state", str(tmp_path / "op" / "state")]
        r = run(*mon)
        assert r.returncode == 0, r.stdout + r.stderr
        assert "0 alert(s); checked 3 new entries" in r.stdout

        rogue = hashlib.sha256(b"a package that was never in any db").hexdigest()
        entry = plant(log.url, repo.key, rogue, tmp_path / "thief")
        r = run(*mon, "--json")
        assert r.returncode == 1, r.stdout + r.stderr
        doc = json.loads(r.stdout)
        assert [a["log_index"] for a in doc["alerts"]] == [entry["logIndex"]]
        assert doc["alerts"][0]["artifact_hash"] == hashlib.sha256(rogue.encode()).hexdigest()
        r = run(*mon)
        assert r.returncode == 1 and f"ALERT: log index {entry['logIndex']}," in r.stdout
