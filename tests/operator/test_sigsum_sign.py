"""operator/sigsum_sign.py through `torfetch sign`: both paths at once, resumption, refusals, a log that is down."""

from __future__ import annotations

import sqlite3
from pathlib import Path
from typing import Iterator

import pytest

from tests.operator.helpers import Log, closed_port, minisign_verifies, run
from tests.repo import Repo, make_repo
from tests.servers.rekor import RekorServer
from tests.servers.sigsum import SigsumKey, SigsumLog, SigsumTools
from tests.sigsum_real import sigsum_log, sigsum_tools  # noqa: F401  (fixtures)


@pytest.fixture(scope="module")
def repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    r = make_repo(tmp_path_factory.mktemp("sigsum-sign-repo"))
    for name in ("one", "two"):
        r.add(name)
    return r


@pytest.fixture(scope="module")
def submitter(sigsum_tools: SigsumTools, tmp_path_factory: pytest.TempPathFactory) -> SigsumKey:  # noqa: F811
    return sigsum_tools.generate_key(tmp_path_factory.mktemp("sub") / "submit.key")


@pytest.fixture
def rekor(tmp_path: Path) -> Iterator[Log]:
    with RekorServer() as srv:
        pem = tmp_path / "rekor.pem"
        pem.write_bytes(srv.public_key_pem)
        yield Log(srv.url, pem)


def args(repo: Repo, work: Path, policy: Path, key: SigsumKey, *extra: str) -> list[str]:
    return ["sign", "--repo-db", str(repo.repo_dir / f"{repo.name}.db"), "--signature-dir", str(work / "sigs"),
            "--state-dir", str(work / "state"), "--sigsum-policy", str(policy), "--sigsum-key-path", str(key.private),
            *extra]


def test_minisign_rekor_and_sigsum_in_one_run(repo: Repo, sigsum_log: SigsumLog, submitter: SigsumKey,  # noqa: F811
                                              sigsum_tools: SigsumTools, rekor: Log, tmp_path: Path) -> None:  # noqa: F811
    r = run(*args(repo, tmp_path, sigsum_log.policy_path, submitter), "--pubkey-path", str(repo.key.pub),
            "--seckey-path", str(repo.key.sec), "--log-url", rekor.url, "--log-key", str(rekor.pem), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "signed 2, proven in the log 2" in r.stdout and "Sigsum proofs written 2" in r.stdout
    for pkg in repo.packages.values():
        assert minisign_verifies(repo.key.pub, pkg, tmp_path / "sigs" / (pkg.name + ".t")).returncode == 0
        v = sigsum_tools.verify(submitter, sigsum_log.policy_path, tmp_path / "sigs" / (pkg.name + ".proof"),
                                pkg.read_bytes())
        assert v.returncode == 0, v.stderr


def test_a_damaged_proof_is_made_again_and_one_from_sigsum_submit_is_kept(
        repo: Repo, sigsum_log: SigsumLog, submitter: SigsumKey, sigsum_tools: SigsumTools,  # noqa: F811
        tmp_path: Path) -> None:
    one, two = repo.packages["one"], repo.packages["two"]
    sigs = tmp_path / "sigs"
    sigs.mkdir()
    sigsum_tools.submit(submitter, sigsum_log.policy_path, two, out=sigs / (two.name + ".proof"))
    (sigs / (one.name + ".proof")).write_text("version=2\ngarbage\n")
    r = run(*args(repo, tmp_path, sigsum_log.policy_path, submitter), timeout=300)
    assert r.returncode == 0, r.stderr
    assert "Sigsum proofs written 1, already proven 1" in r.stdout
    assert sigsum_tools.verify(submitter, sigsum_log.policy_path, sigs / (one.name + ".proof"),
                               one.read_bytes()).returncode == 0
    with sqlite3.connect(tmp_path / "state/signatures.sqlite") as db:
        assert db.execute("SELECT count(*) FROM sigsum WHERE state = 'verified'").fetchone() == (2,)


def test_dry_run_lists_what_it_would_submit_and_writes_nothing(repo: Repo, sigsum_log: SigsumLog,  # noqa: F811
                                                               submitter: SigsumKey, tmp_path: Path) -> None:
    r = run(*args(repo, tmp_path, sigsum_log.policy_path, submitter), "--dry-run", timeout=120)
    assert r.returncode == 0, r.stderr
    assert sorted(line.split()[1] for line in r.stdout.splitlines() if line.startswith("proof ")) == sorted(
        p.name for p in repo.packages.values())
    assert not (tmp_path / "sigs").exists()


def test_a_log_that_is_down_fails_with_exit_3_and_writes_no_proof(repo: Repo, sigsum_log: SigsumLog,  # noqa: F811
                                                                  submitter: SigsumKey, tmp_path: Path) -> None:
    policy = tmp_path / "policy"
    down = f"http://127.0.0.1:{closed_port()}"
    policy.write_text(sigsum_log.policy_text().replace(sigsum_log.url, down))
    r = run(*args(repo, tmp_path, policy, submitter), timeout=120)
    assert r.returncode == 3, r.stdout + r.stderr
    assert "failed 2" in r.stdout and "cannot connect" in r.stderr
    # each failure names the log's URL and the policy file that named it
    errors = [ln for ln in r.stderr.splitlines() if "cannot connect" in ln]
    assert len(errors) == 2 and all(f"Sigsum log {down}" in ln and f"--sigsum-policy {policy}" in ln
                                    for ln in errors), r.stderr
    assert not list((tmp_path / "sigs").glob("*.proof"))
    with sqlite3.connect(tmp_path / "state/signatures.sqlite") as db:
        assert db.execute("SELECT count(*) FROM sigsum WHERE state = 'failed'").fetchone() == (2,)


@pytest.mark.parametrize("case", ["policy-alone", "no-url", "not-a-key", "no-keys-at-all", "half-minisign"])
def test_usage_errors_exit_2_before_anything_is_submitted(case: str, repo: Repo, sigsum_log: SigsumLog,  # noqa: F811
                                                          submitter: SigsumKey, tmp_path: Path) -> None:
    base = ["sign", "--repo-db", str(repo.repo_dir / f"{repo.name}.db"), "--signature-dir", str(tmp_path / "sigs"),
            "--state-dir", str(tmp_path / "state")]
    if case == "policy-alone":
        argv = base + ["--sigsum-policy", str(sigsum_log.policy_path)]
    elif case == "no-url":
        policy = tmp_path / "policy"
        policy.write_text(sigsum_log.policy_text().replace(" " + sigsum_log.url, ""))
        argv = base + ["--sigsum-policy", str(policy), "--sigsum-key-path", str(submitter.private)]
    elif case == "not-a-key":
        argv = base + ["--sigsum-policy", str(sigsum_log.policy_path), "--sigsum-key-path", str(submitter.public)]
    elif case == "no-keys-at-all":
        argv = base
    else:
        argv = base + ["--pubkey-path", str(repo.key.pub), "--sigsum-policy", str(sigsum_log.policy_path),
                       "--sigsum-key-path", str(submitter.private)]
    size = sigsum_log.tree_head()["size"][0]
    r = run(*argv, timeout=60)
    assert r.returncode == 2, r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1
    assert sigsum_log.tree_head()["size"][0] == size
