"""prove_in_log against a local Rekor-API server that lies in every way a log could."""

from __future__ import annotations

import hashlib
import os
from dataclasses import dataclass
from pathlib import Path

import minisign as pyminisign
import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from tests.servers.rekor import RekorServer
from torfetch.config import Limits, Timeouts
from torfetch.errors import (CheckpointError, DownloadTooLarge, EntryNotFoundError, FetchTimeout, InclusionProofError,
                             SplitViewError, TransparencyLogError)
from torfetch.net.http import Network
from torfetch.net.rekor import LogConfig, prove_in_log
from torfetch.store.logstate import LogStateStore
from torfetch.verify import minisign
from torfetch.verify.checkpoint import LogKey


@dataclass
class Signed:
    sig_file: bytes
    pub_file: bytes
    artifact: bytes

    def kwargs(self) -> dict:
        sig = minisign.Signature.parse(self.sig_file)
        pk = minisign.PublicKey.parse(self.pub_file)
        return dict(signature_line=sig.signature_line(), key_line=pk.key_line(), artifact=self.artifact,
                    signature_file=self.sig_file, pub_file=self.pub_file)


def make_signed(name: str = "foo-1.0-1-x86_64.pkg.tar.zst") -> Signed:
    kp = pyminisign.KeyPair.generate()
    artifact = hashlib.sha256(os.urandom(64)).hexdigest().encode()
    sig = kp.secret_key.sign(artifact, prehash=True, trusted_comment=name)
    return Signed(bytes(sig), b"untrusted comment: k\n" + kp.public_key.to_base64() + b"\n", artifact)


@pytest.fixture
def log():
    with RekorServer() as s:
        yield s


def cfg(server: RekorServer, state: Path, upload: bool = True) -> LogConfig:
    return LogConfig(server.url, LogKey.from_pem(server.public_key_pem), LogStateStore(state), upload)


async def prove(server: RekorServer, state: Path, signed: Signed, *, upload: bool = True, timeouts=Timeouts(),
                limits=Limits()):
    lines: list[str] = []
    async with Network(proxy=None, timeouts=timeouts) as net:
        entry = await prove_in_log(net, cfg(server, state, upload), **signed.kwargs(), limits=limits,
                                   timeouts=timeouts, package="", subject="foo", report=lines.append)
    return entry, lines


def remembered(server: RekorServer, state: Path) -> dict:
    """tree id -> TreeRecord, as this machine remembers the server's log."""
    return LogStateStore(state).all_logs()[server.log_id].trees


async def test_upload_then_prove_and_remember(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    entry, lines = await prove(log, tmp_path, s)
    assert entry.log_index == log.offset + entry.shard_index != entry.shard_index
    assert ("POST", "/api/v1/log/entries") in log.requests
    trees = remembered(log, tmp_path)
    assert {t: r.head.size for t, r in trees.items()} == {log.tree_id: len(log.bodies)}
    assert LogStateStore(tmp_path).all_logs()[log.log_id].origin_name == "rekor.test"
    assert any("first view" in ln for ln in lines)


async def test_no_upload_missing_entry_fails(log: RekorServer, tmp_path: Path) -> None:
    with pytest.raises(EntryNotFoundError, match="not in the log"):
        await prove(log, tmp_path, make_signed(), upload=False)
    assert ("POST", "/api/v1/log/entries") not in log.requests


async def test_lying_upload_is_not_proof(log: RekorServer, tmp_path: Path) -> None:
    log.lie.accept_uploads_without_storing = True
    with pytest.raises(TransparencyLogError, match="HTTP 404"):
        await prove(log, tmp_path, make_signed())


async def test_growth_is_proven_consistent(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    await prove(log, tmp_path, s)
    log.add_filler(37)
    _, lines = await prove(log, tmp_path, s, upload=False)
    assert any("consistent" in ln for ln in lines)
    assert any(p == "/api/v1/log/proof" for _, p in log.requests)
    assert remembered(log, tmp_path)[log.tree_id].head.size == len(log.bodies)


async def _remember_then_show_older(log: RekorServer, tmp_path: Path, s: Signed) -> int:
    """Remember a grown tree, then make the log present an older prefix that still holds the entry."""
    await prove(log, tmp_path, s)
    log.add_filler(10)
    await prove(log, tmp_path, s, upload=False)
    big = len(log.bodies)
    log.lie.present_size = big - 5
    return big


async def test_lagging_replica_is_accepted_and_larger_head_kept(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    big = await _remember_then_show_older(log, tmp_path, s)
    log.lie.proofs_from_full_tree = True  # an older (but true) view: it can prove its newer tree
    await prove(log, tmp_path, s, upload=False)
    assert remembered(log, tmp_path)[log.tree_id].head.size == big


async def test_rolled_back_log_that_cannot_prove_its_past_fails(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    big = await _remember_then_show_older(log, tmp_path, s)  # rolled back: denies the tree it showed before
    with pytest.raises(TransparencyLogError, match="consistency proof from size"):
        await prove(log, tmp_path, s, upload=False)
    assert remembered(log, tmp_path)[log.tree_id].head.size == big


async def test_fork_same_size_is_split_view(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    await prove(log, tmp_path, s)
    log.lie.forked = True
    with pytest.raises(SplitViewError, match="inconsistent history") as ei:
        await prove(log, tmp_path, s, upload=False)
    assert "report" in ei.value.hint


async def test_fork_after_growth_is_split_view(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    await prove(log, tmp_path, s)
    before = LogStateStore(tmp_path).all_logs()
    log.add_filler(9)
    log.lie.forked = True
    with pytest.raises(SplitViewError):
        await prove(log, tmp_path, s, upload=False)
    assert LogStateStore(tmp_path).all_logs() == before  # the trusted head survives


async def test_bad_consistency_proof(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    await prove(log, tmp_path, s)
    log.add_filler(9)
    log.lie.bad_consistency = True
    with pytest.raises(SplitViewError):
        await prove(log, tmp_path, s, upload=False)


@pytest.mark.parametrize("lie,err,match", [
    ("proof_for_other_entry", InclusionProofError, "inclusion proof"),
    ("bad_set", TransparencyLogError, "signed entry timestamp"),
    ("wrong_body", TransparencyLogError, "different signature"),
    ("wrong_log_id", TransparencyLogError, "pinned key"),
])
async def test_lies_about_the_entry(log: RekorServer, tmp_path: Path, lie: str, err: type, match: str) -> None:
    s = make_signed()
    await prove(log, tmp_path, s)  # honest first: the entry exists
    setattr(log.lie, lie, True)
    with pytest.raises(err, match=match):
        await prove(log, tmp_path / "fresh", s, upload=False)


async def test_checkpoint_signed_by_another_key(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    await prove(log, tmp_path, s)
    log.lie.checkpoint_key = ec.generate_private_key(ec.SECP256R1())
    with pytest.raises(CheckpointError, match="not signed by the pinned log key"):
        await prove(log, tmp_path, s, upload=False)


async def test_slow_log_times_out(log: RekorServer, tmp_path: Path) -> None:
    log.lie.slow_seconds = 3
    with pytest.raises(FetchTimeout):
        await prove(log, tmp_path, make_signed(), timeouts=Timeouts(lookup_total=0.5))


async def test_huge_answer_is_capped(log: RekorServer, tmp_path: Path) -> None:
    log.lie.huge = True
    with pytest.raises(DownloadTooLarge):
        await prove(log, tmp_path, make_signed())
