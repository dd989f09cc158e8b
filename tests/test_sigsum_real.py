"""The real-Sigsum fixture itself: log and witnesses start cosigning, sigsum-submit/-verify work, stop really stops."""

from __future__ import annotations

import hashlib
from pathlib import Path

import pytest

from tests.servers.sigsum import SigsumLog, SigsumTools
from tests.sigsum_real import sigsum_tools  # noqa: F401  (fixture)


def test_two_witnesses_cosign_a_submitted_leaf_and_the_proof_verifies_offline(
        sigsum_tools: SigsumTools, tmp_path: Path) -> None:  # noqa: F811
    with SigsumLog(sigsum_tools, tmp_path / "log", witnesses=2) as log:
        th = log.wait_cosigned(0)
        assert {c.split()[0] for c in th["cosignature"]} == {w.key.keyhash.hex() for w in log.witnesses}
        submitter = sigsum_tools.generate_key(tmp_path / "submit.key")
        msg = tmp_path / "msg"
        msg.write_bytes(b"a package")
        proof = sigsum_tools.submit(submitter, log.policy_path, msg)
        text = proof.read_text()
        assert f"log={log.keyhash.hex()}" in text and f"leaf={submitter.keyhash.hex()} " in text
        status, leaves = log.get("get-leaves/0/1")
        checksum = hashlib.sha256(hashlib.sha256(b"a package").digest()).hexdigest()
        assert status == 200 and leaves.decode().startswith(f"leaf={checksum} ")
        log.stop()
        assert not log.log.proc and not any(w.proc.proc for w in log.witnesses)
        with pytest.raises(OSError):
            log.tree_head()  # nothing listens any more
        assert sigsum_tools.verify(submitter, log.policy_path, proof, b"a package").returncode == 0
        assert sigsum_tools.verify(submitter, log.policy_path, proof, b"another").returncode != 0


def test_the_log_can_stop_while_its_witness_keeps_running(sigsum_tools: SigsumTools, tmp_path: Path) -> None:  # noqa: F811
    with SigsumLog(sigsum_tools, tmp_path / "log") as log:
        log.stop_log()
        status = None
        try:
            status, _ = log.get("get-tree-head", timeout=2)
        except OSError:
            pass
        assert status is None
        log.witnesses[0].proc.check_alive()
    assert log.witnesses[0].proc.proc is None
