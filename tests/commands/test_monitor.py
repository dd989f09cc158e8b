"""`torfetch monitor` against the local Rekor-API log: clean runs, planted rogue signatures, remembered state."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from tests.operator.helpers import Log, handmade_db, log_args, plant, run, sign_args
from tests.repo import MinisignKey, make_repo
from tests.servers.rekor import RekorServer


@pytest.fixture
def world(tmp_path):
    """A repo signed into a fresh log by `torfetch sign` (the signer's records in tmp/signer/state)."""
    repo = make_repo(tmp_path / "repo")
    for name in ("one", "two", "three"):
        repo.add(name)
    with RekorServer() as srv:
        pem = tmp_path / "rekor.pem"
        pem.write_bytes(srv.public_key_pem)
        log = Log(srv.url, pem)
        r = run(*sign_args(repo, log, tmp_path / "signer"))
        assert r.returncode == 0, r.stderr
        yield repo, srv, log


def monitor(repo, log, tmp_path, *extra: str, dbs=None, state: str = "mon"):
    dbs = dbs or [str(repo.repo_dir / "test.db")]
    args = ["monitor", "--pubkey", repo.key.pub_line, *sum((["--repo-db", d] for d in dbs), []),
            *log_args(log, tmp_path / state), "--signer-state", str(tmp_path / "signer" / "state"), *extra]
    return run(*args)


def rogue_sha(tag: str) -> str:
    return hashlib.sha256(tag.encode()).hexdigest()


def test_clean_log_exits_0_and_says_search_may_be_incomplete(tmp_path, world) -> None:
    repo, srv, log = world
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 0, r.stdout + r.stderr
    assert "0 alert(s); checked 3 new entries (3 listed by the index search, 3 by the signer's records)" in r.stdout
    assert "possibly incomplete" in r.stdout
    doc = json.loads(monitor(repo, log, tmp_path, "--json").stdout)
    assert doc["alerts"] == [] and doc["search_may_be_incomplete"] is True and doc["entries_by_status"] == {"ok": 3}


def test_rogue_signature_is_reported_with_its_log_index(tmp_path, world) -> None:
    repo, srv, log = world
    assert monitor(repo, log, tmp_path).returncode == 0
    sha = rogue_sha("a backdoored build nobody released")
    entry = plant(log.url, repo.key, sha, tmp_path / "thief")
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 1, r.stdout + r.stderr
    alerts = [ln for ln in r.stdout.splitlines() if "ALERT" in ln]
    assert len(alerts) == 1
    assert f"log index {entry['logIndex']}," in alerts[0]
    assert hashlib.sha256(sha.encode()).hexdigest() in alerts[0]
    assert "filename unknown" in alerts[0]
    assert "checked 1 new entries" in r.stdout  # the three known ones are not fetched again
    doc = json.loads(monitor(repo, log, tmp_path, "--json").stdout)
    assert [a["log_index"] for a in doc["alerts"]] == [entry["logIndex"]]
    assert doc["alerts"][0]["integrated_time"] == entry["integratedTime"]
    # an alert stays until a db explains it: it is reported again, without fetching anything new
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 1 and "checked 0 new entries" in r.stdout and "ALERT" in r.stdout


def test_alert_clears_when_a_db_has_the_package(tmp_path, world) -> None:
    repo, srv, log = world
    sha = rogue_sha("released later")
    plant(log.url, repo.key, sha, tmp_path / "op")
    assert monitor(repo, log, tmp_path).returncode == 1
    extra = handmade_db(tmp_path / "extra.db", [("later", "1-1", "later-1-1-any.pkg.tar.zst", sha)])
    r = monitor(repo, log, tmp_path, dbs=[str(repo.repo_dir / "test.db"), str(extra)])
    assert r.returncode == 0, r.stdout


def test_signer_records_name_the_file_and_cover_an_incomplete_index(tmp_path, world) -> None:
    repo, srv, log = world
    # the operator signed something that is not in the released db (a forgotten staging build)
    sha = rogue_sha("staging build")
    staging = handmade_db(tmp_path / "staging.db", [("staging", "1-1", "staging-1-1-x86_64.pkg.tar.zst", sha)])
    args = sign_args(repo, log, tmp_path / "signer")
    args[args.index("--repo-db") + 1] = str(staging)
    assert run(*args).returncode == 0
    from torfetch.verify import merkle
    from torfetch.verify.rekor import rekord_body

    hidden = {merkle.leaf_hash(b).hex() for b in srv.bodies if hashlib.sha256(sha.encode()).hexdigest().encode() in b}
    assert len(hidden) == 1
    srv.index_hidden = frozenset(hidden)  # the index search leaves it out
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 1, r.stdout
    assert "the signer recorded it as staging-1-1-x86_64.pkg.tar.zst" in r.stdout
    assert "3 listed by the index search, 4 by the signer's records" in r.stdout
    assert rekord_body  # (imported to keep the body format next to its use)


def test_entries_of_other_keys_are_not_alerts(tmp_path, world) -> None:
    repo, srv, log = world
    other = MinisignKey.generate(tmp_path / "other", "other")
    plant(log.url, other, rogue_sha("someone else's artifact"), tmp_path / "o")
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 0, r.stdout


def test_lying_log_is_a_problem_not_silence(tmp_path, world) -> None:
    repo, srv, log = world
    srv.lie.proof_for_other_entry = True  # every entry: an inclusion proof for another leaf
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 1, r.stdout
    assert r.stdout.count("PROBLEM") == 3 and "inclusion proof" in r.stdout
    srv.lie.proof_for_other_entry = False
    r = monitor(repo, log, tmp_path)  # nothing was marked checked: they are verified now
    assert r.returncode == 0 and "checked 3 new entries" in r.stdout, r.stdout
    # an entry that would be reported is verified in full, signed entry timestamp included
    entry = plant(log.url, repo.key, rogue_sha("rogue with a bad SET"), tmp_path / "t")
    srv.lie.bad_set = True
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 1 and r.stdout.count("PROBLEM") == 1 and "signed entry timestamp" in r.stdout, r.stdout
    srv.lie.bad_set = False
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 1 and f"ALERT: log index {entry['logIndex']}," in r.stdout and "PROBLEM" not in r.stdout


def test_split_view_is_refused(tmp_path, world) -> None:
    repo, srv, log = world
    assert monitor(repo, log, tmp_path).returncode == 0
    plant(log.url, repo.key, rogue_sha("x"), tmp_path / "t")
    srv.lie.forked = True
    r = monitor(repo, log, tmp_path)
    assert r.returncode == 1 and "inconsistent history" in r.stdout + r.stderr, r.stdout + r.stderr


def test_pubkey_file_and_usage_errors(tmp_path, world) -> None:
    repo, srv, log = world
    r = run("monitor", "--pubkey", str(repo.key.pub), "--repo-db", str(repo.repo_dir / "test.db"),
            *log_args(log, tmp_path / "m"))
    assert r.returncode == 0, r.stderr
    r = run("monitor", "--pubkey", "RWnotakey", "--repo-db", "x", *log_args(log, tmp_path / "m"))
    assert r.returncode == 2 and len(r.stderr.strip().splitlines()) == 1
    r = run("monitor", "--pubkey", repo.key.pub_line, "--repo-db", str(repo.repo_dir / "test.db"),
            "--log-url", log.url, "--state-dir", str(tmp_path / "m"))
    assert r.returncode == 2 and "needs --log-key" in r.stderr
