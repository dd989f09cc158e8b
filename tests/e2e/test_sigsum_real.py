"""`torfetch sign --sigsum-*` and `torfetch monitor --sigsum-*` against Debian's real Sigsum log and witness.

The log (sigsum-log-primary, ephemeral backend) and its witness (sigsum-witness) run on 127.0.0.1
(tests/servers/sigsum.py); Debian's sigsum-verify is the judge of every .proof torfetch writes, and
sigsum-submit plays the thief of the operator's key (a leaf over a package in no db) and another submitter.
"""

from __future__ import annotations

import hashlib
import json
import sqlite3
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.operator.helpers import handmade_db, run
from tests.repo import Repo, make_repo
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
