"""Sigsum on the fetch path, through the CLI as pacman calls it: the .proof beside the package decides, offline.

The mirror is tests/servers/files.py (it records every path asked); the proofs
come from tests/sigsum_vectors.py's small log, signed with real Ed25519 keys.
Nothing serves the Sigsum log or its witnesses: a verification that needed them
could not pass.
"""

from __future__ import annotations

import hashlib
import json
import subprocess
import sys
import threading
from pathlib import Path

import pytest

from tests.repo import Repo, make_repo
from tests.servers.files import FileServer, HoldingMirror
from tests.servers.rekor import RekorServer
from tests.sigsum_vectors import Key, TestLog, message_of
from torfetch.verify.sigsum_key import format_public_key
from torfetch.verify.sigsum_proof import serialize_proof

TORFETCH = [sys.executable, "-m", "torfetch"]
SUBMITTER = Key(5)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path / "served")
    r.add("hello", sign=False)  # no .t: Sigsum alone vouches for it
    r.add("other", sign=False)
    return r


class Setup:
    def __init__(self, tmp_path: Path, repo: Repo, log: TestLog) -> None:
        self.tmp, self.repo, self.log = tmp_path, repo, log
        self.policy = tmp_path / "sigsum.policy"
        self.policy.write_bytes(log.policy_text())
        self.key = tmp_path / "submit.key.pub"
        self.key.write_text(format_public_key(SUBMITTER.pub))
        self.state = tmp_path / "state"

    def publish(self, name: str, *, size: int | None = None, witnesses: list[Key] | None = None,
                log: TestLog | None = None) -> Path:
        """Log the package (if not yet) and write its .proof beside the .t files."""
        log = log or self.log
        pkg = self.repo.packages[name]
        msg = message_of(pkg.read_bytes())
        index = next((i for i, lf in enumerate(log.leaves) if lf.checksum == hashlib.sha256(msg).digest()), None)
        if index is None:
            index = log.add_message(SUBMITTER, msg)
            log.add_filler(2)
        proof = self.repo.sig_dir / (pkg.name + ".proof")
        proof.write_bytes(serialize_proof(log.proof(index, size, witnesses=witnesses)))
        return proof

    def fetch(self, mirror: FileServer, name: str, *extra: str, sigsum: bool = True) -> tuple[
            subprocess.CompletedProcess[str], Path]:
        pkg = self.repo.packages[name]
        out = self.tmp / "cache" / (pkg.name + ".part")
        out.parent.mkdir(exist_ok=True)
        opts = ["--sigsum-policy", str(self.policy), "--sigsum-key", str(self.key)] if sigsum else []
        r = subprocess.run(
            [*TORFETCH, "-v", "--direct", "--config", "/dev/null", "--transparency-url", f"{mirror.url}/sigs",
             "--state-dir", str(self.state), *opts, *extra, "-O", str(out), f"{mirror.url}/repo/{pkg.name}"],
            capture_output=True, text=True, timeout=120)
        return r, out


def _log() -> TestLog:
    log = TestLog(witnesses=[Key(200), Key(201)])
    log.add_filler(3)
    return log


def test_good_proof_and_no_t_is_handed_over_without_any_lookup(tmp_path: Path, repo: Repo) -> None:
    s = Setup(tmp_path, repo, _log())
    s.publish("hello")
    pkg = repo.packages["hello"]
    with FileServer(repo.root) as mirror, RekorServer() as rekor:
        r, out = s.fetch(mirror, "hello", "--log-url", rekor.url)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    assert f"Sigsum proof of {pkg.name} verified offline" in r.stderr and "cosigned by W1, W2" in r.stderr
    paths = [p for _, p in mirror.requests]
    assert sorted(paths) == [f"/repo/{pkg.name}", f"/sigs/{pkg.name}.proof"], paths  # no .t asked for
    assert rekor.requests == []  # and no Rekor lookup
    doc = json.loads((s.state / "sigsum-heads.json").read_text())
    assert doc["logs"][s.log.key.keyhash.hex()] == {str(len(s.log.leaves)): _root_hex(s.log)}


GATE_SECONDS = 30  # bound on the mirror's wait for the .proof request


class ProofGatedMirror(HoldingMirror):
    """Serves ``held`` in two halves; the second waits until a .proof was asked for (or GATE_SECONDS)."""

    def __init__(self, root: Path, held: str) -> None:
        self.seen: list[str] = []
        self.proof_asked = threading.Event()
        super().__init__(root, held, self.proof_asked, hold_seconds=GATE_SECONDS, record=self.seen.append,
                         on_request=self._saw)

    def _saw(self, method: str, path: str) -> None:
        if path.endswith(".proof"):
            self.seen.append("proof asked")
            self.proof_asked.set()


def test_proof_is_fetched_while_the_package_streams(tmp_path: Path, repo: Repo) -> None:
    s = Setup(tmp_path, repo, _log())
    s.publish("hello")
    pkg = repo.packages["hello"]
    with ProofGatedMirror(repo.root, pkg.name) as mirror:
        r, out = s.fetch(mirror, "hello")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    # started at t=0 beside the download, not after it (without the overlap the mirror's wait would run out first)
    assert mirror.seen.index("proof asked") < mirror.seen.index("package end"), mirror.seen
    assert "package start" in mirror.seen


def _error_line(stderr: str) -> str:
    """The one error line (-v adds the hint and causes below it)."""
    lines = [ln for ln in stderr.splitlines() if ln.startswith("torfetch: ")]
    assert len(lines) == 1, stderr
    return lines[0]


def _root_hex(log: TestLog) -> str:
    return log.cosigned_tree_head().tree_head.root_hash.hex()


@pytest.mark.parametrize("case", ["another package", "another submitter", "tampered", "unmet quorum",
                                  "log not in policy", "missing", "garbage", "huge"])
def test_bad_proof_is_refused_and_nothing_is_handed_over(tmp_path: Path, repo: Repo, case: str) -> None:
    s = Setup(tmp_path, repo, _log())
    pkg = repo.packages["hello"]
    proof = s.publish("hello")
    expect = {
        "another package": "leaf signature does not verify",
        "another submitter": "not the repository's Sigsum key",
        "tampered": "leaf signature does not verify",
        "unmet quorum": "1 of 2 required witness cosignatures",
        "log not in policy": "is not in the Sigsum policy",
        "missing": f"no Sigsum proof for {pkg.name}",
        "garbage": f"proof for {pkg.name}, line 1",
        "huge": "over the limit of 65536 bytes",
    }[case]
    if case == "another package":
        proof.write_bytes(s.publish("other").read_bytes())
    elif case == "another submitter":
        i = s.log.add_message(Key(6), message_of(pkg.read_bytes()))
        proof.write_bytes(serialize_proof(s.log.proof(i)))
    elif case == "tampered":
        data = bytearray(pkg.read_bytes())
        data[-1] ^= 1  # the last bytes are the archive's padding: .PKGINFO still reads, only the hash changes
        pkg.write_bytes(bytes(data))
    elif case == "unmet quorum":
        s.publish("hello", witnesses=s.log.witnesses[:1])
    elif case == "log not in policy":
        s.policy.write_bytes(TestLog(key=Key(101), witnesses=s.log.witnesses).policy_text())
    elif case == "missing":
        proof.unlink()
    elif case == "garbage":
        proof.write_bytes(b"<html>not a proof</html>\n")
    else:
        proof.write_bytes(b"version=2\n" + b"#" * 70_000 + b"\n")
    with FileServer(repo.root) as mirror:
        r, out = s.fetch(mirror, "hello")
    assert r.returncode == 1, r.stderr
    line = _error_line(r.stderr)
    assert expect in line and "Traceback" not in r.stderr, r.stderr
    assert line.startswith("torfetch: sigsum")
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_with_pubkey_too_both_must_pass(tmp_path: Path, repo: Repo) -> None:
    s = Setup(tmp_path, repo, _log())
    pkg = repo.packages["hello"]
    s.publish("hello")
    from tests.repo import sha256_file

    with RekorServer() as rekor:
        key = tmp_path / "rekor.pem"
        key.write_bytes(rekor.public_key_pem)
        rekor_opts = ("--pubkey", repo.key.pub_line, "--log-url", rekor.url, "--log-key", str(key))
        with FileServer(repo.root) as mirror:
            # no .t yet: the minisign path fails even though the proof is good
            r, out = s.fetch(mirror, "hello", *rekor_opts)
            assert r.returncode == 1 and "no transparency signature" in _error_line(r.stderr), r.stderr
            assert not out.exists()
            repo.key.sign_hex(sha256_file(pkg), pkg.name, repo.sig_dir / (pkg.name + ".t"))
            r, out = s.fetch(mirror, "hello", *rekor_opts)
            assert r.returncode == 0, r.stderr
            assert out.read_bytes() == pkg.read_bytes()
            assert "Sigsum proof of" in r.stderr and "transparency signature of" in r.stderr
            assert any(p.endswith(".t") for _, p in mirror.requests) and rekor.requests
            # the .t and the log still pass, but the proof is of another package: refused
            (repo.sig_dir / (pkg.name + ".proof")).write_bytes(s.publish("other").read_bytes())
            out.unlink()
            r, out = s.fetch(mirror, "hello", *rekor_opts)
            assert r.returncode == 1 and "leaf signature" in _error_line(r.stderr), r.stderr
            assert not out.exists()


def test_split_view_refused_and_older_head_accepted(tmp_path: Path, repo: Repo) -> None:
    log = _log()
    s = Setup(tmp_path, repo, log)
    s.publish("hello")
    seen_size = len(log.leaves)
    with FileServer(repo.root) as mirror:
        r, _ = s.fetch(mirror, "hello")
        assert r.returncode == 0, r.stderr
        # a proof made earlier, at a smaller tree: accepted, and the largest head stays remembered
        hello_index = next(i for i, lf in enumerate(log.leaves)
                           if lf.checksum == hashlib.sha256(message_of(repo.packages["hello"].read_bytes())).digest())
        s.publish("hello", size=hello_index + 1)
        (tmp_path / "cache" / (repo.packages["hello"].name + ".part")).unlink()
        r, _ = s.fetch(mirror, "hello")
        assert r.returncode == 0, r.stderr
        doc = json.loads((s.state / "sigsum-heads.json").read_text())["logs"][log.key.keyhash.hex()]
        assert str(seen_size) in doc and str(hello_index + 1) in doc
        # the same log key and witnesses sign another history of the remembered size: a split view
        fork = TestLog(key=log.key, witnesses=log.witnesses, leaves=list(log.leaves[:hello_index + 1]))
        fork.add_message(Key(7), hashlib.sha256(b"a leaf only the fork has").digest())
        fork.add_filler(seen_size - len(fork.leaves))
        assert len(fork.leaves) == seen_size
        assert _root_hex(fork) != doc[str(seen_size)]
        s.publish("hello", log=fork)
        (tmp_path / "cache" / (repo.packages["hello"].name + ".part")).unlink()
        r, out = s.fetch(mirror, "hello")
    assert r.returncode == 1, r.stderr
    line = _error_line(r.stderr)
    assert line.startswith("torfetch: sigsum split view:") and f"size {seen_size}" in line, r.stderr
    assert not out.exists()
    after = json.loads((s.state / "sigsum-heads.json").read_text())["logs"][log.key.keyhash.hex()]
    assert after == doc  # the forked head is not remembered
    # who signed, the rejected proof kept for the report, where it came from
    assert "the log and witnesses W1, W2 signed this history" in line, line
    (saved,) = s.state.glob(f"sigsum-split-view-*-{log.key.keyhash.hex()[:16]}.proof")
    assert saved.read_bytes() == (repo.sig_dir / (repo.packages["hello"].name + ".proof")).read_bytes()
    assert f"saved as {saved}" in line and f"{mirror.url}/sigs/{repo.packages['hello'].name}.proof" in line, line
    assert "report it to the repository's and the log's operators" in line, line


def test_split_view_under_quorum_none_says_the_log_alone_signed(tmp_path: Path, repo: Repo) -> None:
    log = TestLog(witnesses=[])
    log.add_filler(3)
    s = Setup(tmp_path, repo, log)
    s.policy.write_bytes(log.policy_text(quorum="none"))
    s.publish("hello")
    size = len(log.leaves)
    with FileServer(repo.root) as mirror:
        r, _ = s.fetch(mirror, "hello")
        assert r.returncode == 0, r.stderr
        fork = TestLog(key=log.key, witnesses=[], leaves=[lf for lf in log.leaves
                                                          if lf.keyhash == SUBMITTER.keyhash])
        fork.add_filler(size - len(fork.leaves))
        assert _root_hex(fork) != _root_hex(log)
        s.publish("hello", log=fork)
        (tmp_path / "cache" / (repo.packages["hello"].name + ".part")).unlink()
        r, out = s.fetch(mirror, "hello")
    assert r.returncode == 1, r.stderr
    line = _error_line(r.stderr)
    assert "the log alone signed both histories" in line and "quorum none" in line, line
    assert "quorum of witnesses" not in r.stderr
    assert len(list(s.state.glob("sigsum-split-view-*.proof"))) == 1 and not out.exists()


VECTORS = Path(__file__).parent / "vectors" / "sigsum"


def test_proof_made_by_the_real_sigsum_submit(tmp_path: Path) -> None:
    # tests/vectors/sigsum/README.md: a package and the .proof Debian's sigsum-submit wrote for it; the log and
    # witnesses that made it are long gone
    served = VECTORS / "served"
    (name,) = [p.name for p in (served / "repo").iterdir()]
    out = tmp_path / (name + ".part")
    with FileServer(served) as mirror:
        r = subprocess.run(
            [*TORFETCH, "-v", "--direct", "--config", "/dev/null", "--transparency-url", f"{mirror.url}/sigs",
             "--sigsum-policy", str(VECTORS / "policy"), "--sigsum-key", str(VECTORS / "submit.key.pub"),
             "--state-dir", str(tmp_path / "state"), "-O", str(out), f"{mirror.url}/repo/{name}"],
            capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == (served / "repo" / name).read_bytes()
        assert "leaf 2 of log 6ec6b028ab595bcf… (tree size 3), cosigned by W1, W2" in r.stderr
        # the same proof with the other submitter's key as the repository's: refused, nothing handed over
        out.unlink()
        r = subprocess.run(
            [*TORFETCH, "--direct", "--config", "/dev/null", "--transparency-url", f"{mirror.url}/sigs",
             "--sigsum-policy", str(VECTORS / "policy"), "--sigsum-key", str(VECTORS / "other.key.pub"),
             "--state-dir", str(tmp_path / "state"), "-O", str(out), f"{mirror.url}/repo/{name}"],
            capture_output=True, text=True, timeout=120)
        assert r.returncode == 1 and "not the repository's Sigsum key" in one_line(r.stderr)
        assert not out.exists()


def test_config_file_repo_table(tmp_path: Path, repo: Repo) -> None:
    s = Setup(tmp_path, repo, _log())
    s.publish("hello")
    with FileServer(repo.root) as mirror:
        cfg = tmp_path / "torfetch.toml"
        cfg.write_text(f'sigsum_policy = "{s.policy}"\n\n[[repo]]\nmatch = "{mirror.url}/repo"\n'
                       f'transparency_url = "{mirror.url}/sigs"\nsigsum_key = "{SUBMITTER.pub.hex()}"\n')
        pkg = repo.packages["hello"]
        out = tmp_path / "out.part"
        r = subprocess.run([*TORFETCH, "--direct", "--config", str(cfg), "--state-dir", str(s.state), "-O", str(out),
                            f"{mirror.url}/repo/{pkg.name}"], capture_output=True, text=True, timeout=120)
        assert r.returncode == 0, r.stderr
        assert out.read_bytes() == pkg.read_bytes()
        # a submitter key at the top would vouch for every repository: refused, as a top-level pubkey is
        cfg.write_text(f'sigsum_key = "{SUBMITTER.pub.hex()}"\n')
        r = subprocess.run([*TORFETCH, "--direct", "--config", str(cfg), "-O", str(out),
                            f"{mirror.url}/repo/{pkg.name}"], capture_output=True, text=True, timeout=60)
        assert r.returncode == 2 and "belongs in a [[repo]] table" in one_line(r.stderr)


@pytest.mark.parametrize(("args", "why"), [
    (["--sigsum-key", "00" * 32], "--sigsum-key needs --sigsum-policy"),
    (["--sigsum-policy", "POLICY"], "--sigsum-policy needs --sigsum-key"),
    (["--sigsum-policy", "POLICY", "--sigsum-key", "not-a-key-file"], "--sigsum-key file"),
    (["--sigsum-policy", "POLICY", "--sigsum-key", "ssh-ed25519 AAAA"], "--sigsum-key"),
    (["--sigsum-policy", "BADPOLICY", "--sigsum-key", "00" * 32], "BADPOLICY: policy line 1: unknown keyword"),
    (["--sigsum-policy", "/nonexistent/policy", "--sigsum-key", "00" * 32], "does not exist"),
])
def test_usage_errors_exit_2_and_touch_nothing(tmp_path: Path, args: list[str], why: str) -> None:
    (tmp_path / "POLICY").write_bytes(_log().policy_text())
    (tmp_path / "BADPOLICY").write_bytes(b"frobnicate\n")
    args = [str(tmp_path / a) if a in ("POLICY", "BADPOLICY") else a for a in args]
    why = why.replace("BADPOLICY", str(tmp_path / "BADPOLICY"))
    out = tmp_path / "o.part"
    out.write_bytes(b"stale")
    r = subprocess.run([*TORFETCH, "--direct", "--config", "/dev/null", *args, "-O", str(out),
                        "http://127.0.0.1:1/a-1-1-any.pkg.tar.zst"], capture_output=True, text=True, timeout=60,
                       cwd=tmp_path)
    assert r.returncode == 2, r.stderr
    assert why in one_line(r.stderr)
    assert out.read_bytes() == b"stale"
