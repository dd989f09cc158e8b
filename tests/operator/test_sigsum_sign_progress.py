"""`torfetch sign --sigsum-*` at -v: what it waits for, bounded; why a .proof on disk is made again."""

from __future__ import annotations

import hashlib
import io
from pathlib import Path

import trio
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.operator.test_sigsum_monitor import HandMadeLog
from torfetch.config import Timeouts
from torfetch.errors import FetchTimeout
from torfetch.net.http import Network
from torfetch.operator.sigsum_sign import SigsumSignConfig, sign_with_sigsum
from torfetch.report import Reporter
from torfetch.store.signatures import SignatureStore
from torfetch.verify.sigsum import tree_head_text

SHA = hashlib.sha256(b"a package").hexdigest()
FILE = "p-1-1-any.pkg.tar.zst"


def _secret(path: Path) -> Path:
    path.write_bytes(Ed25519PrivateKey.generate().private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH, serialization.NoEncryption()))
    return path


def _sign(cfg: SigsumSignConfig, tmp_path: Path, *, dry_run: bool) -> tuple[str, object]:
    stream = io.StringIO()
    report = Reporter(verbose=1, stream=stream, tty=False)

    async def main():
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            with SignatureStore(tmp_path / "state") as store:
                return await sign_with_sigsum(net, cfg, [(SHA, FILE)], signature_dir=tmp_path / "sigs", store=store,
                                              jobs=1, timeouts=Timeouts(), dry_run=dry_run, report=report,
                                              out=lambda _: None)

    counts = trio.run(main)
    return stream.getvalue(), counts


def test_waiting_for_the_quorum_is_said_at_v_at_most_every_10_s(tmp_path: Path) -> None:
    with HandMadeLog() as log:
        policy = log.policy(tmp_path / "policy")
        root = b"\x05" * 32  # signed by the log, cosigned by no witness: never meets the quorum (W)
        log.routes["add-leaf"] = b""  # 200: sequenced
        log.routes["get-tree-head"] = (f"size=1\nroot_hash={root.hex()}\n"
                                       f"signature={log.key.sign(tree_head_text(log.kh, 1, root)).hex()}\n").encode()
        cfg = SigsumSignConfig(policy, _secret(tmp_path / "submit.key"), poll_interval=0.02, proof_wait=1.5)
        err, counts = _sign(cfg, tmp_path, dry_run=False)
    assert counts.failed == 1 and isinstance(counts.first_error, FetchTimeout), err
    waits = [ln for ln in err.splitlines() if "waiting for a tree head" in ln]
    # ~75 polls in 1.5 s, one line: the first at once, the next not before 10 s
    assert waits == [f"[*] {FILE}: waiting for a tree head of log {log.base_url} meeting the policy's "
                     "quorum: 0 of 1 cosignatures so far"], err


def test_a_damaged_proof_on_disk_says_why_it_is_made_again(tmp_path: Path) -> None:
    with HandMadeLog() as log:
        policy = log.policy(tmp_path / "policy")
    (tmp_path / "sigs").mkdir()
    (tmp_path / "sigs" / (FILE + ".proof")).write_text("version=2\ngarbage\n")
    cfg = SigsumSignConfig(policy, _secret(tmp_path / "submit.key"))
    err, counts = _sign(cfg, tmp_path, dry_run=True)
    assert counts.proofs == 1
    (line,) = [ln for ln in err.splitlines() if ".proof" in ln]
    assert f"{FILE}.proof on disk does not verify" in line and "submitted again" in line, err
    assert "(sigsum proof: proof for " in line, line  # the parser's own reason
