"""operator/sigsum_monitor.py against a hostile log: what it cannot make the monitor miss, or keep it busy forever."""

from __future__ import annotations

import hashlib
import io
import json
import re
from pathlib import Path
from typing import Iterator

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.operator.helpers import handmade_db, run
from tests.operator.test_sigsum_monitor import HandMadeLog, raw
from tests.servers.base import Handler
from torfetch.config import Timeouts
from torfetch.net.http import Network
from torfetch.operator.sigsum_monitor import SigsumMonitorConfig, run_sigsum_monitor
from torfetch.report import Reporter
from torfetch.store.monitorstate import MonitorStore
from torfetch.verify import merkle
from torfetch.verify.sigsum import leaf_signed_data, sigsum_leaf_hash
from torfetch.verify.sigsum_proof import SigsumLeaf


class DrippingLog(HandMadeLog):
    """Claims a huge cosigned tree (witnesses cosign a size, not the leaves) and answers every get-leaves with
    one made-up leaf: each answer is quick and well-formed, so only a bound on the run ends it."""

    def __init__(self) -> None:
        super().__init__()
        self.leaf_requests = 0
        self.filler = SigsumLeaf(b"\x01" * 32, b"\x02" * 64, b"\x03" * 32)

    def _handle(self, h: Handler, method: str) -> None:
        if re.fullmatch(r"/get-leaves/\d+/\d+", h.path):
            self.leaf_requests += 1
            lf = self.filler
            body = f"leaf={lf.checksum.hex()} {lf.signature.hex()} {lf.keyhash.hex()}\n".encode()
            h.send_response(200)
            h.send_header("Content-Length", str(len(body)))
            h.end_headers()
            h.wfile.write(body)
            return
        super()._handle(h, method)


@pytest.fixture
def dripping() -> Iterator[DrippingLog]:
    with DrippingLog() as log:
        yield log


def test_a_log_dripping_one_leaf_per_answer_is_bounded_per_run_and_reported(dripping: DrippingLog,
                                                                            tmp_path: Path) -> None:
    dripping.claim(1 << 40, b"\x09" * 32)
    op = Ed25519PrivateKey.generate()
    cfg = SigsumMonitorConfig(dripping.policy(tmp_path / "policy"), raw(op).hex(), max_requests=5)
    store = MonitorStore(tmp_path / "st")

    async def main():  # type: ignore[no-untyped-def]
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            return await run_sigsum_monitor(net, cfg, set(), store, Timeouts(lookup_total=10),
                                            Reporter(stream=io.StringIO()))

    try:
        result = trio.run(main)
    finally:
        store.close()
    # without a bound this run would ask 2**40 times; with it, it stops, says so, and exit 1 follows
    assert dripping.leaf_requests == 5
    assert any("read leaves up to 5 of the 1099511627776" in p for p in result.problems), result.problems
    assert result.tree_sizes == {}


def test_a_policy_log_without_url_is_reported_not_silently_unwatched(tmp_path: Path) -> None:
    # a proof from a URL-less log of the policy verifies on every client, so the monitor must say it cannot read it
    op = Ed25519PrivateKey.generate()
    op_kh = hashlib.sha256(raw(op)).digest()
    sha = hashlib.sha256(b"pkg").hexdigest()
    checksum = hashlib.sha256(bytes.fromhex(sha)).digest()
    leaves = [SigsumLeaf(checksum, op.sign(leaf_signed_data(checksum)), op_kh)]
    db = handmade_db(tmp_path / "r.db.tar.gz", [("p", "1-1", "p-1-1-any.pkg.tar.zst", sha)])
    hidden = Ed25519PrivateKey.generate()
    with HandMadeLog() as log:
        policy = log.policy(tmp_path / "policy")
        policy.write_text(f"log {raw(hidden).hex()}\n" + policy.read_text())
        log.claim(1, merkle.root_of([sigsum_leaf_hash(lf) for lf in leaves]))
        log.serve_leaves(leaves)
        got = run("monitor", "--repo-db", str(db), "--state-dir", str(tmp_path / "st"), "--sigsum-policy",
                  str(policy), "--sigsum-key", raw(op).hex(), "--json")
    assert got.returncode == 1, got.stdout + got.stderr
    doc = json.loads(got.stdout)
    assert doc["sigsum"]["tree_sizes"] == {log.base_url: 1}  # the log with a URL was still read
    hidden_kh = hashlib.sha256(raw(hidden)).hexdigest()
    assert any(hidden_kh in p and "no URL" in p for p in doc["problems"]), doc["problems"]
