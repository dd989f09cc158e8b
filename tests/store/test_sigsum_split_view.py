"""A split view seen by a client: who signed what, and the rejected proof kept (bounded) for the report."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
import trio

from torfetch.errors import SigsumSplitViewError
from torfetch.store.sigsumstate import (MAX_SPLIT_VIEW_FILES, SigsumStateStore, SplitViewEvidence, remember_async,
                                        save_split_view_proof)
from torfetch.verify.sigsum import VerifiedTreeHead, split_view_signers
from torfetch.verify.sigsum_policy import parse_policy

LOG = bytes.fromhex("ab" * 32)
W1, W2 = bytes(range(32)), bytes(range(1, 33))


def _policy(quorum: str) -> bytes:
    return (f"log {'11' * 32} http://127.0.0.1:1/\nwitness A {W1.hex()}\nwitness B {W2.hex()}\n"
            f"group both all A B\nquorum {quorum}\n").encode()


def test_who_signed_names_the_witnesses_or_says_none_under_quorum_none() -> None:
    import hashlib

    ka, kb = hashlib.sha256(W1).digest(), hashlib.sha256(W2).digest()
    strict = parse_policy(_policy("both"))
    said = split_view_signers(strict, VerifiedTreeHead(LOG, 3, b"\x01" * 32, frozenset({ka, kb})))
    assert "the log and witnesses A, B signed" in said, said
    lax = parse_policy(_policy("none"))
    said = split_view_signers(lax, VerifiedTreeHead(LOG, 3, b"\x01" * 32, frozenset()))
    assert "the log alone signed" in said and "quorum none" in said and "witness" in said, said
    assert "quorum of witnesses" not in said
    said = split_view_signers(lax, VerifiedTreeHead(LOG, 3, b"\x01" * 32, frozenset({kb})))
    assert "the log alone signed" in said and "B" in said, said  # cosigned, but not required to


def test_the_rejected_proof_is_saved_atomically_and_at_most_16_are_kept(tmp_path: Path) -> None:
    paths = [save_split_view_proof(tmp_path, f"proof {i}\n".encode(), LOG, now=1000 + i // 3)
             for i in range(MAX_SPLIT_VIEW_FILES + 5)]
    left = sorted(tmp_path.glob("sigsum-split-view-*.proof"))
    assert len(left) == MAX_SPLIT_VIEW_FILES == 16
    assert paths[-1] in left and paths[0] not in left  # the oldest go first
    assert paths[-1].read_bytes() == f"proof {MAX_SPLIT_VIEW_FILES + 4}\n".encode()
    assert paths[0].name == f"sigsum-split-view-1000-{LOG.hex()[:16]}.proof"
    assert len(set(paths)) == len(paths)  # the same second and log: another name, not overwritten
    assert oct(paths[-1].stat().st_mode & 0o777) == "0o600"
    assert not [p for p in os.listdir(tmp_path) if not p.startswith("sigsum-split-view-")]  # no temporary left


def test_a_split_view_names_the_signers_the_saved_file_and_the_url(tmp_path: Path) -> None:
    store = SigsumStateStore(tmp_path)
    store.remember(VerifiedTreeHead(LOG, 5, b"\x01" * 32, frozenset()))
    ev = SplitViewEvidence(b"version=2\nthe bytes\n", "http://mirror.test/x.pkg.tar.zst.proof",
                           "the log alone signed both (quorum none)")

    async def main() -> None:
        await remember_async(store, VerifiedTreeHead(LOG, 5, b"\x02" * 32, frozenset()), filename="x.pkg.tar.zst",
                             evidence=ev)

    with pytest.raises(SigsumSplitViewError) as exc:
        trio.run(main)
    (saved,) = tmp_path.glob("sigsum-split-view-*.proof")
    assert saved.read_bytes() == ev.proof
    msg = exc.value.message
    assert msg.startswith("proof for x.pkg.tar.zst:") and "the log alone signed both" in msg
    assert str(saved) in msg and ev.url in msg and "report" in msg and "repository" in msg, msg
    assert "\n" not in msg
