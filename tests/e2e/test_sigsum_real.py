"""`torfetch sign --sigsum-*` and `torfetch monitor --sigsum-*` against Debian's real Sigsum log and witness.

The log (sigsum-log-primary, ephemeral backend) and its witness (sigsum-witness) run on 127.0.0.1
(tests/servers/sigsum.py); Debian's sigsum-verify is the judge of every .proof torfetch writes, and
sigsum-submit plays the thief of the operator's key (a leaf over a package in no db) and another submitter.
Last, real pacman with torfetch as XferCommand installs packages whose proofs sigsum-submit and torfetch sign
made, with the log and the witness stopped, and refuses a tampered one.
"""

from __future__ import annotations

import hashlib
import json
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.e2e.conftest import needs_pacman
from tests.operator.helpers import handmade_db, run
from tests.pacman_sandbox import PacmanSandbox
from tests.repo import Repo, make_repo
from tests.servers.files import FileServer
from tests.servers.sigsum import SigsumKey, SigsumLog, SigsumTools
from tests.sigsum_real import sigsum_log, sigsum_tools  # noqa: F401  (fixtures)

pytestmark = pytest.mark.slow


@dataclass
class Operator:
    repo: Repo
    key: SigsumKey
    work: Path

    @property
    def db(self) -> Path:
        return self.repo.repo_dir / f"{self.repo.name}.db"

    @property
    def sigs(self) -> Path:
        return self.work / "sigs"

    @property
    def state(self) -> Path:
        return self.work / "state"


@pytest.fixture(scope="module")
def operator(sigsum_tools: SigsumTools, tmp_path_factory: pytest.TempPathFactory) -> Operator:  # noqa: F811
    root = tmp_path_factory.mktemp("sigsum-op")
    repo = make_repo(root / "repo")
    for name in ("alpha", "beta", "gamma"):
        repo.add(name)
    return Operator(repo, sigsum_tools.generate_key(root / "submit.key"), root / "work")


def sign(op: Operator, log: SigsumLog, *extra: str) -> list[str]:
    return ["sign", "--repo-db", str(op.db), "--signature-dir", str(op.sigs), "--state-dir", str(op.state),
            "--sigsum-policy", str(log.policy_path), "--sigsum-key-path", str(op.key.private), *extra]


def sigsum_rows(state: Path) -> list[tuple]:
    with sqlite3.connect(state / "signatures.sqlite") as db:
        return db.execute("SELECT filename, state, leaf_index, tree_size FROM sigsum ORDER BY filename").fetchall()


def test_sign_writes_proofs_that_debians_sigsum_verify_accepts_and_a_rerun_submits_nothing(
        operator: Operator, sigsum_log: SigsumLog, sigsum_tools: SigsumTools) -> None:  # noqa: F811
    r = run(*sign(operator, sigsum_log), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Sigsum proofs written 3, already proven 0" in r.stdout
    for pkg in operator.repo.packages.values():
        proof = operator.sigs / (pkg.name + ".proof")
        v = sigsum_tools.verify(operator.key, sigsum_log.policy_path, proof, pkg.read_bytes())
        assert v.returncode == 0, v.stderr.decode()
        assert not (operator.sigs / (pkg.name + ".t")).exists()  # no minisign path was asked for
    assert [row[1] for row in sigsum_rows(operator.state)] == ["verified"] * 3
    size = int(sigsum_log.tree_head()["size"][0])
    again = run(*sign(operator, sigsum_log), timeout=300)
    assert again.returncode == 0, again.stderr
    assert "Sigsum proofs written 0, already proven 3" in again.stdout
    assert int(sigsum_log.tree_head()["size"][0]) == size  # nothing new in the log


def monitor(op: Operator, log: SigsumLog, state: Path, *extra: str) -> list[str]:
    return ["monitor", "--repo-db", str(op.db), "--state-dir", str(state), "--sigsum-policy", str(log.policy_path),
            "--sigsum-key", str(op.key.public), *extra]


def test_monitor_is_clean_then_alerts_on_a_rogue_leaf_and_ignores_another_submitter(
        operator: Operator, sigsum_log: SigsumLog, sigsum_tools: SigsumTools, tmp_path: Path) -> None:  # noqa: F811
    assert run(*sign(operator, sigsum_log), timeout=300).returncode == 0
    state = tmp_path / "monstate"
    clean = run(*monitor(operator, sigsum_log, state), timeout=120)
    assert clean.returncode == 0, clean.stdout + clean.stderr
    assert "Sigsum: 0 alert(s)" in clean.stdout and "3 by the operator's key" in clean.stdout

    # another submitter's leaf: in the log, not the operator's business
    other = sigsum_tools.generate_key(tmp_path / "other.key")
    msg = tmp_path / "other-msg"
    msg.write_bytes(b"someone else's release")
    sigsum_tools.submit(other, sigsum_log.policy_path, msg)
    # the thief: the operator's key over a package that is in no db
    rogue = tmp_path / "rogue.pkg.tar.zst"
    rogue.write_bytes(b"a package the operator never released")
    sigsum_tools.submit(operator.key, sigsum_log.policy_path, rogue)
    checksum = hashlib.sha256(hashlib.sha256(rogue.read_bytes()).digest()).hexdigest()
    status, body = sigsum_log.get(f"get-leaves/0/{int(sigsum_log.tree_head()['size'][0])}")
    index = [line.split()[0].removeprefix("leaf=") for line in body.decode().splitlines()].index(checksum)

    r = run(*monitor(operator, sigsum_log, state), timeout=120)
    assert r.returncode == 1, r.stdout + r.stderr
    alerts = [line for line in r.stdout.splitlines() if "ALERT" in line]
    assert len(alerts) == 1 and f"leaf index {index}," in alerts[0] and checksum in alerts[0]
    assert "1 by the operator's key, 1 by other submitters" in r.stdout  # only the new leaves were read

    j = run(*monitor(operator, sigsum_log, state, "--json"), timeout=120)
    assert j.returncode == 1
    doc = json.loads(j.stdout)
    assert [(a["log_index"], a["checksum"]) for a in doc["alerts"]] == [(index, checksum)]
    assert doc["sigsum"]["leaves_read"] == 0  # resumed where the last run stopped; the alert stands

    # once a db holds the package, the alert is resolved
    db2 = handmade_db(tmp_path / "extra.db.tar.gz",
                      [("rogue", "1-1", rogue.name, hashlib.sha256(rogue.read_bytes()).hexdigest())])
    ok = run(*monitor(operator, sigsum_log, state, "--repo-db", str(db2)), timeout=120)
    assert ok.returncode == 0, ok.stdout + ok.stderr


def test_monitor_refuses_a_policy_whose_quorum_the_log_does_not_meet(
        operator: Operator, sigsum_log: SigsumLog, sigsum_tools: SigsumTools, tmp_path: Path) -> None:  # noqa: F811
    stranger = sigsum_tools.generate_key(tmp_path / "stranger.key")
    policy = tmp_path / "policy"
    # the log's own witness is still listed, but the quorum asks for one that never cosigns
    policy.write_text(sigsum_log.policy_text().replace("quorum all-witnesses",
                                                       f"witness W9 {stranger.pub_hex}\nquorum W9"))
    r = run("monitor", "--repo-db", str(operator.db), "--state-dir", str(tmp_path / "s"), "--sigsum-policy",
            str(policy), "--sigsum-key", operator.key.pub_hex, timeout=120)
    assert r.returncode == 1
    problems = [line for line in r.stdout.splitlines() if "PROBLEM" in line]
    assert len(problems) == 1 and "do not meet the policy's quorum 'W9'" in problems[0], problems
    assert "verified tree sizes: none" in r.stdout


@needs_pacman
@pytest.mark.pacman
def test_pacman_installs_with_proofs_from_sigsum_submit_and_torfetch_sign_with_the_log_and_witness_stopped(
        sigsum_tools: SigsumTools, tmp_path: Path) -> None:  # noqa: F811
    repo = make_repo(tmp_path / "served")
    for name in ("bysubmit", "bysign", "tampered"):
        repo.add(name, sign=False)  # no .t: Sigsum alone is the transparency check
    key = sigsum_tools.generate_key(tmp_path / "submit.key")
    op = Operator(repo, key, tmp_path / "work")
    with SigsumLog(sigsum_tools, tmp_path / "log") as log:
        # one proof by Debian's sigsum-submit (message = sha256 of the file), the rest by torfetch sign
        sub = repo.packages["bysubmit"]
        sigsum_tools.submit(key, log.policy_path, sub, out=repo.sig_dir / (sub.name + ".proof"))
        r = run("sign", "--repo-db", str(op.db), "--signature-dir", str(repo.sig_dir), "--state-dir",
                str(op.state), "--sigsum-policy", str(log.policy_path), "--sigsum-key-path", str(key.private),
                timeout=300)
        assert r.returncode == 0, r.stderr
        assert "Sigsum proofs written 2, already proven 1" in r.stdout
        policy = tmp_path / "policy"
        shutil.copy(log.policy_path, policy)
    # log and witness are gone: the proofs must verify offline
    assert log.log.proc is None and all(w.proc.proc is None for w in log.witnesses)
    t = repo.packages["tampered"]
    data = bytearray(t.read_bytes())
    data[len(data) // 2] ^= 0x01
    t.write_bytes(bytes(data))
    with FileServer(repo.root) as mirror:
        args = ["-v", "--direct", "--transparency-url", f"{mirror.url}/sigs", "--sigsum-policy", str(policy),
                "--sigsum-key", str(key.public), "--state-dir", str(tmp_path / "state")]
        sb = PacmanSandbox(tmp_path / "root", f"{mirror.url}/repo", args).write()
        for name in ("bysubmit", "bysign"):
            got = sb.run("-Sy", name)
            assert got.returncode == 0, got.stdout + got.stderr
            assert sb.installed(name)
        bad = sb.run("-Sy", "tampered")
    assert bad.returncode != 0
    assert "sigsum signature" in bad.stderr and "tampered" in bad.stderr, bad.stderr
    assert not sb.installed("tampered")
    assert [p for p in sb.cached_packages() if p.startswith("tampered-")] == [] and sb.leftovers() == []
