"""Real pacman with torfetch as XferCommand and only the Sigsum options: the .proof beside each package decides.

No Sigsum log or witness runs: the proofs are files on the mirror (hand-made by
tests/sigsum_vectors.py's log with real Ed25519 keys, and one written by
Debian's real sigsum-submit, tests/vectors/sigsum/README.md). No .t is served
and no Rekor exists: a fetch that needed either could not install anything.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest

from tests.e2e.conftest import needs_pacman
from tests.pacman_sandbox import PacmanSandbox
from tests.repo import make_repo
from tests.servers.files import FileServer
from tests.sigsum_vectors import Key, TestLog, message_of
from torfetch.verify.sigsum_key import format_public_key
from torfetch.verify.sigsum_proof import serialize_proof

pytestmark = [needs_pacman, pytest.mark.pacman]
VECTORS = Path(__file__).parent.parent / "vectors" / "sigsum"
SUBMITTER = Key(5)


@pytest.fixture(scope="module")
def sigsum_repo(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("sigsumrepo")
    repo = make_repo(root)
    log = TestLog(witnesses=[Key(200), Key(201)])
    log.add_filler(4)
    for name in ("hello", "wrongproof", "noproof", "fewwitnesses", "flipped"):
        repo.add(name, sign=False)
        log.add_message(SUBMITTER, message_of(repo.packages[name].read_bytes()))
    log.add_filler(3)
    for i, name in enumerate(("hello", "wrongproof", "noproof", "fewwitnesses", "flipped")):
        proof = log.proof(4 + i, witnesses=log.witnesses[:1] if name == "fewwitnesses" else None)
        (repo.sig_dir / (repo.packages[name].name + ".proof")).write_bytes(serialize_proof(proof))
    shutil.copy(repo.sig_dir / (repo.packages["hello"].name + ".proof"),
                repo.sig_dir / (repo.packages["wrongproof"].name + ".proof"))
    (repo.sig_dir / (repo.packages["noproof"].name + ".proof")).unlink()
    p = repo.packages["flipped"]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01  # after the proof was made, as an attacker on the mirror would
    p.write_bytes(bytes(data))
    policy = root / "sigsum.policy"
    policy.write_bytes(log.policy_text())
    key = root / "submit.key.pub"
    key.write_text(format_public_key(SUBMITTER.pub))
    with FileServer(repo.root) as mirror:
        yield repo, mirror, policy, key


def _sandbox(tmp_path: Path, mirror: FileServer, policy: Path, key: Path) -> PacmanSandbox:
    args = ["-v", "--direct", "--config", "/dev/null", "--transparency-url", f"{mirror.url}/sigs",
            "--sigsum-policy", str(policy), "--sigsum-key", str(key), "--state-dir", str(tmp_path / "state")]
    return PacmanSandbox(tmp_path / "root", f"{mirror.url}/repo", args).write()


def test_good_proof_installs_without_t_or_log(tmp_path: Path, sigsum_repo) -> None:
    repo, mirror, policy, key = sigsum_repo
    sb = _sandbox(tmp_path, mirror, policy, key)
    r = sb.run("-Sy", "hello")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sb.installed("hello")
    assert (sb.root / "usr/share/hello/hello.txt").read_text() == "hello from hello\n"
    assert sb.cached_packages() == [repo.packages["hello"].name]
    assert "Sigsum proof of" in r.stderr and "verified offline" in r.stderr
    assert not any(p.endswith(".t") for _, p in mirror.requests)
    assert sb.leftovers() == []


@pytest.mark.parametrize(("name", "expect"), [
    ("wrongproof", "leaf signature does not verify"),
    ("noproof", "no Sigsum proof for"),
    ("fewwitnesses", "1 of 2 required witness cosignatures"),
    ("flipped", "leaf signature does not verify"),
])
def test_bad_proof_is_refused_by_pacman(tmp_path: Path, sigsum_repo, name: str, expect: str) -> None:
    repo, mirror, policy, key = sigsum_repo
    sb = _sandbox(tmp_path, mirror, policy, key)
    r = sb.run("-Sy", name)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert expect in r.stderr, out
    assert not sb.installed(name)
    assert [p for p in sb.cached_packages() if p.startswith(name + "-")] == []
    assert sb.leftovers() == [] and "Traceback" not in out


def test_proof_written_by_the_real_sigsum_submit(tmp_path: Path) -> None:
    # the package and proof of tests/vectors/sigsum/served, in a repository db of their own
    served = tmp_path / "served"
    shutil.copytree(VECTORS / "served", served)
    (pkg,) = (served / "repo").iterdir()
    subprocess.run(["repo-add", "-q", str(served / "repo" / "test.db.tar.gz"), str(pkg)], check=True,
                   capture_output=True, timeout=60)
    with FileServer(served) as mirror:
        sb = _sandbox(tmp_path, mirror, VECTORS / "policy", VECTORS / "submit.key.pub")
        r = sb.run("-Sy", "sigsum-hello")
        assert r.returncode == 0, r.stdout + r.stderr
        assert sb.installed("sigsum-hello")
        assert "cosigned by W1, W2" in r.stderr
        # with the other submitter's key as the repository's, pacman gets nothing
        sb2 = _sandbox(tmp_path / "b", mirror, VECTORS / "policy", VECTORS / "other.key.pub")
        r = sb2.run("-Sy", "sigsum-hello")
        assert r.returncode != 0 and "not the repository's Sigsum key" in r.stderr, r.stdout + r.stderr
        assert not sb2.installed("sigsum-hello") and sb2.leftovers() == []
