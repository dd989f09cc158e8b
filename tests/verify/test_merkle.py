"""RFC 9162 proofs against transparency-dev/merkle's public vectors, plus generated trees."""

from __future__ import annotations

import base64
import json
import os
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import ConsistencyProofError, InclusionProofError
from torfetch.verify import merkle

VECTORS = Path(__file__).parent.parent / "vectors" / "merkle"


def _load(kind: str) -> list[tuple[str, dict]]:
    out = []
    for p in sorted((VECTORS / kind).rglob("*.json")):
        out.append((str(p.relative_to(VECTORS)), json.loads(p.read_text())))
    return out


def _b(v: str | None) -> bytes:
    return base64.b64decode(v) if v else b""


INCLUSION = _load("inclusion")
CONSISTENCY = _load("consistency")


def test_vectors_present() -> None:
    assert len(INCLUSION) > 50 and len(CONSISTENCY) > 50
    assert any(not v["wantErr"] for _, v in INCLUSION) and any(v["wantErr"] for _, v in INCLUSION)


@pytest.mark.parametrize("name,v", INCLUSION, ids=[n for n, _ in INCLUSION])
def test_inclusion_vectors(name: str, v: dict) -> None:
    args = (v["leafIdx"], v["treeSize"], _b(v["leafHash"]), [_b(h) for h in v["proof"] or []], _b(v["root"]))
    if v["wantErr"]:
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(*args)
    else:
        merkle.verify_inclusion(*args)


@pytest.mark.parametrize("name,v", CONSISTENCY, ids=[n for n, _ in CONSISTENCY])
def test_consistency_vectors(name: str, v: dict) -> None:
    args = (v["size1"], v["size2"], _b(v["root1"]), _b(v["root2"]), [_b(h) for h in v["proof"] or []])
    if v["wantErr"]:
        with pytest.raises(ConsistencyProofError):
            merkle.verify_consistency(*args)
    else:
        merkle.verify_consistency(*args)


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=1, max_value=70), st.data())
def test_generated_trees_roundtrip_and_tamper(n: int, data: st.DataObject) -> None:
    leaves = [merkle.leaf_hash(os.urandom(8)) for _ in range(n)]
    root = merkle.root_of(leaves)
    i = data.draw(st.integers(min_value=0, max_value=n - 1))
    proof = merkle.inclusion_proof(i, leaves)
    merkle.verify_inclusion(i, n, leaves[i], proof, root)
    if proof:
        bad = list(proof)
        bad[data.draw(st.integers(0, len(bad) - 1))] = os.urandom(32)
        with pytest.raises(InclusionProofError):
            merkle.verify_inclusion(i, n, leaves[i], bad, root)
    m = data.draw(st.integers(min_value=1, max_value=n))
    cproof = merkle.consistency_proof(m, leaves)
    merkle.verify_consistency(m, n, merkle.root_of(leaves[:m]), root, cproof)
    if m < n:
        with pytest.raises(ConsistencyProofError):
            merkle.verify_consistency(m, n, merkle.leaf_hash(b"forked"), root, cproof)
