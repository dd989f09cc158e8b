"""What the Sigsum operator tools print: one program prefix per line, the log and the policy that named it."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.operator.helpers import closed_port, handmade_db, run
from tests.operator.test_sigsum_monitor import HandMadeLog, raw


def test_a_log_that_is_down_is_one_problem_line_naming_the_log_without_a_second_prefix(tmp_path: Path) -> None:
    op = Ed25519PrivateKey.generate()
    db = handmade_db(tmp_path / "r.db.tar.gz", [("p", "1-1", "p-1-1-any.pkg.tar.zst", "ab" * 32)])
    with HandMadeLog() as log:
        policy = log.policy(tmp_path / "policy")
    down = f"http://127.0.0.1:{closed_port()}"
    policy.write_text(policy.read_text().replace(log.base_url, down))
    r = run("monitor", "--repo-db", str(db), "--state-dir", str(tmp_path / "st"), "--sigsum-policy", str(policy),
            "--sigsum-key", raw(op).hex())
    assert r.returncode == 1, r.stdout + r.stderr  # a PROBLEM, as every log misbehaviour of the monitor
    (line,) = [ln for ln in r.stdout.splitlines() if "PROBLEM" in ln]
    assert line.startswith(f"torfetch monitor: PROBLEM: Sigsum log {down}: "), line
    assert line.count("torfetch") == 1 and "network:" not in line, line
    assert "get-tree-head" in line, line


def test_an_alert_names_what_the_signer_recorded_for_the_leaf(tmp_path: Path) -> None:
    """A package the operator signed and then removed from the db is not a rogue leaf of unknown origin."""
    import hashlib
    import json

    from torfetch.store.signatures import SignatureStore
    from torfetch.verify import merkle
    from torfetch.verify.sigsum import leaf_signed_data, sigsum_leaf_hash
    from torfetch.verify.sigsum_proof import SigsumLeaf

    op = Ed25519PrivateKey.generate()
    op_kh = hashlib.sha256(raw(op)).digest()
    kept, removed, rogue = (hashlib.sha256(n).hexdigest() for n in (b"kept", b"removed", b"rogue"))
    leaves = []
    for sha in (kept, removed, rogue):
        checksum = hashlib.sha256(bytes.fromhex(sha)).digest()
        leaves.append(SigsumLeaf(checksum, op.sign(leaf_signed_data(checksum)), op_kh))
    db = handmade_db(tmp_path / "r.db.tar.gz", [("kept", "1-1", "kept-1-1-any.pkg.tar.zst", kept)])
    with HandMadeLog() as log:
        signer = tmp_path / "signer"
        with SignatureStore(signer) as s:
            s.sigsum_record_verified(removed, "removed-1-1-any.pkg.tar.zst", log.kh.hex(), 1, 3)
        log.claim(3, merkle.root_of([sigsum_leaf_hash(lf) for lf in leaves]))
        log.serve_leaves(leaves)
        argv = ["monitor", "--repo-db", str(db), "--sigsum-policy", str(log.policy(tmp_path / "policy")),
                "--sigsum-key", raw(op).hex(), "--signer-state", str(signer)]
        r = run(*argv, "--state-dir", str(tmp_path / "st"))
        j = run(*argv, "--state-dir", str(tmp_path / "st2"), "--json")
        bare = run(*argv[:-2], "--state-dir", str(tmp_path / "st3"))  # no --signer-state: nothing to name them
    assert r.returncode == 1 and j.returncode == 1 and bare.returncode == 1, r.stdout + r.stderr
    alerts = sorted(ln for ln in r.stdout.splitlines() if "ALERT" in ln)
    assert len(alerts) == 2, r.stdout
    assert alerts[0].startswith("torfetch monitor: ALERT: Sigsum log") and "leaf index 1," in alerts[0]
    assert f"the signer recorded it as removed-1-1-any.pkg.tar.zst (sha256 {removed}), not in any given db" \
        in alerts[0], alerts[0]
    assert "leaf index 2," in alerts[1] and "the signer has no record of it" in alerts[1], alerts[1]
    known = {a["log_index"]: a["known"] for a in json.loads(j.stdout)["alerts"]}
    assert "removed-1-1-any.pkg.tar.zst" in known[1] and "no record" in known[2]
    assert all("no record" in ln for ln in bare.stdout.splitlines() if "ALERT" in ln)
    # the signer's file is only read
    with SignatureStore(signer, readonly=True) as s:
        assert s.sigsum_get(removed, "removed-1-1-any.pkg.tar.zst") is not None
