"""operator/sigsum_monitor.py through `torfetch monitor`: a log gone back in time, leaves that are not the tree."""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path
from typing import Iterator

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.operator.helpers import handmade_db, run
from tests.servers.base import Handler, Serving, make_httpd
from tests.servers.sigsum import SigsumLog, SigsumTools
from tests.sigsum_real import sigsum_tools  # noqa: F401  (fixture)
from torfetch.verify import merkle
from torfetch.verify.sigsum import cosignature_text, leaf_signed_data, sigsum_leaf_hash, tree_head_text
from torfetch.verify.sigsum_proof import SigsumLeaf


def raw(k: Ed25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


class HandMadeLog(Serving):
    """A log speaking the Sigsum API with real signatures over whatever tree a test makes it claim."""

    def __init__(self) -> None:
        self.key, self.witness = Ed25519PrivateKey.generate(), Ed25519PrivateKey.generate()
        self.kh = hashlib.sha256(raw(self.key)).digest()
        self.routes: dict[str, bytes] = {}
        self._httpd = make_httpd("127.0.0.1", 0, self._handle)

    def _handle(self, h: Handler, method: str) -> None:
        body = self.routes.get(h.path.lstrip("/"))
        h.send_response(200 if body is not None else 404)
        h.send_header("Content-Length", str(len(body or b"")))
        h.end_headers()
        h.wfile.write(body or b"")

    def policy(self, path: Path) -> Path:
        path.write_text(f"log {raw(self.key).hex()} {self.base_url}\nwitness W {raw(self.witness).hex()}\nquorum W\n")
        return path

    def claim(self, size: int, root: bytes) -> None:
        t = int(time.time())
        sig = self.key.sign(tree_head_text(self.kh, size, root))
        cs = self.witness.sign(cosignature_text(self.kh, size, root, t))
        wkh = hashlib.sha256(raw(self.witness)).digest()
        self.routes["get-tree-head"] = (f"size={size}\nroot_hash={root.hex()}\nsignature={sig.hex()}\n"
                                        f"cosignature={wkh.hex()} {t} {cs.hex()}\n").encode()

    def serve_leaves(self, leaves: list[SigsumLeaf]) -> None:
        self.routes[f"get-leaves/0/{len(leaves)}"] = b"".join(
            f"leaf={lf.checksum.hex()} {lf.signature.hex()} {lf.keyhash.hex()}\n".encode() for lf in leaves)


@pytest.fixture
def handmade() -> Iterator[HandMadeLog]:
    with HandMadeLog() as log:
        yield log


def test_leaves_that_do_not_make_the_signed_root_are_a_problem_and_nothing_is_remembered(
        handmade: HandMadeLog, tmp_path: Path) -> None:
    op = Ed25519PrivateKey.generate()
    op_kh = hashlib.sha256(raw(op)).digest()
    shas = [hashlib.sha256(f"pkg{i}".encode()).hexdigest() for i in range(3)]
    leaves = []
    for sha in shas:
        checksum = hashlib.sha256(bytes.fromhex(sha)).digest()
        leaves.append(SigsumLeaf(checksum, op.sign(leaf_signed_data(checksum)), op_kh))
    db = handmade_db(tmp_path / "r.db.tar.gz", [(f"p{i}", "1-1", f"p{i}-1-1-any.pkg.tar.zst", s)
                                                 for i, s in enumerate(shas)])
    argv = ["monitor", "--repo-db", str(db), "--state-dir", str(tmp_path / "st"), "--sigsum-policy",
            str(handmade.policy(tmp_path / "policy")), "--sigsum-key", raw(op).hex(), "--json"]
    handmade.claim(3, merkle.root_of([sigsum_leaf_hash(lf) for lf in leaves]))
    handmade.serve_leaves(leaves)
    good = run(*argv)
    assert good.returncode == 0, good.stdout + good.stderr
    assert json.loads(good.stdout)["sigsum"]["tree_sizes"] == {handmade.base_url: 3}

    # the same signed head, but the log hides a leaf by serving another in its place
    with HandMadeLog() as evil:
        evil.key, evil.witness, evil.kh = handmade.key, handmade.witness, handmade.kh
        other = Ed25519PrivateKey.generate()
        swapped = leaves[:1] + [SigsumLeaf(b"\x07" * 32, b"\x08" * 64, hashlib.sha256(raw(other)).digest())] + leaves[2:]
        evil.claim(3, merkle.root_of([sigsum_leaf_hash(lf) for lf in leaves]))
        evil.serve_leaves(swapped)
        argv2 = argv.copy()
        argv2[argv2.index("--sigsum-policy") + 1] = str(evil.policy(tmp_path / "policy2"))
        argv2[argv2.index("--state-dir") + 1] = str(tmp_path / "st2")
        bad = run(*argv2)
    assert bad.returncode == 1
    doc = json.loads(bad.stdout)
    assert any("do not hash to the root" in p for p in doc["problems"])
    assert doc["sigsum"]["tree_sizes"] == {}


def test_a_log_and_witness_gone_back_in_time_is_a_split_view(sigsum_tools: SigsumTools, tmp_path: Path) -> None:  # noqa: F811
    key = sigsum_tools.generate_key(tmp_path / "op.key")
    db = handmade_db(tmp_path / "r.db.tar.gz", [("p", "1-1", "p-1-1-any.pkg.tar.zst", "ab" * 32)])
    msg = tmp_path / "msg"
    msg.write_bytes(bytes.fromhex("ab" * 32))
    with SigsumLog(sigsum_tools, tmp_path / "log") as log:
        sigsum_tools.submit(key, log.policy_path, msg, raw_hash=True)
        argv = ["monitor", "--repo-db", str(db), "--state-dir", str(tmp_path / "st"), "--sigsum-policy",
                str(log.policy_path), "--sigsum-key", str(key.public)]
        first = run(*argv)
        assert first.returncode == 0, first.stdout + first.stderr
        assert "1 by the operator's key" in first.stdout
        log.restart_log_empty()
        again = run(*argv)
    assert again.returncode == 1
    assert "PROBLEM: Sigsum log" in again.stdout and "split view: its tree head" in again.stdout
    assert "went back in time" in again.stdout
