"""Rekor v1 JSON (torfetch/verify/rekor.py): log entries and consistency proofs; only typed errors come out."""

from __future__ import annotations

import base64
import json
from importlib import resources
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import (FUZZ_EXAMPLES, mutated_bytes, mutated_json, mutated_json_bytes, mutated_text,
                                  typed_errors_only)
from torfetch.errors import TorfetchError, VerificationError
from torfetch.verify import merkle
from torfetch.verify.checkpoint import LogKey
from torfetch.verify.rekor import VerifiedEntry, parse_consistency_proof, parse_entry_response, verify_log_entry

REAL = (Path(__file__).parent.parent / "vectors" / "rekor" / "bundle_v3_github-79605083.json").read_bytes()
ENTRY = json.loads(REAL)
(UUID, BODY_DOC), = ENTRY.items()
BODY = base64.b64decode(BODY_DOC["body"])
KEY = LogKey.from_pem(resources.files("torfetch").joinpath("data/rekor.sigstore.dev.pem").read_bytes())
PROOF = {"rootHash": "ab" * 32, "hashes": ["cd" * 32, "ef" * 32, "01" * 32]}


def test_seeds_are_valid() -> None:
    assert isinstance(verify_log_entry(REAL, log_key=KEY, expected_body=BODY), VerifiedEntry)
    assert len(parse_consistency_proof(json.dumps(PROOF).encode())) == 3


def _verified_or_typed(data: bytes) -> None:
    got = typed_errors_only(verify_log_entry, data, log_key=KEY, expected_body=BODY)
    if isinstance(got, TorfetchError):
        assert isinstance(got, VerificationError), got  # the log's answer is wrong, never a usage error
    else:
        # only a change that leaves every signed and hashed value alone can still verify
        assert (got.uuid[-64:].lower(), got.log_index, got.shard_index) == (UUID[-64:], 79605083, 75441652)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(mutated_json_bytes(ENTRY))
def test_fuzz_log_entry_fields(data: bytes) -> None:
    _verified_or_typed(data)


@st.composite
def _rebodied(draw: st.DrawFn) -> bytes:
    """A changed body whose UUID is made to match it, so the proof and SET checks are reached."""
    body = draw(mutated_bytes(BODY, max_ops=2).filter(lambda b: b != BODY))
    doc = json.loads(REAL)
    (_, entry), = doc.items()
    entry["body"] = base64.b64encode(body).decode()
    if draw(st.booleans()):
        entry = draw(mutated_json(entry, max_ops=1))
    return json.dumps({UUID[:16] + merkle.leaf_hash(body).hex(): entry}).encode()


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(_rebodied())
def test_fuzz_log_entry_body(data: bytes) -> None:
    got = typed_errors_only(verify_log_entry, data, log_key=KEY)
    assert isinstance(got, VerificationError), got  # a changed body is never in the log


@st.composite
def _renoted(draw: st.DrawFn) -> bytes:
    """The signed checkpoint inside the entry, edited character by character (origin, size, root, signature)."""
    doc = json.loads(REAL)
    (_, entry), = doc.items()
    proof = entry["verification"]["inclusionProof"]
    proof["checkpoint"] = draw(mutated_text(proof["checkpoint"]))
    return json.dumps(doc).encode()


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(_renoted())
def test_fuzz_log_entry_checkpoint(data: bytes) -> None:
    _verified_or_typed(data)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(mutated_bytes(REAL, max_ops=3), st.binary(max_size=300)))
def test_fuzz_log_entry_bytes(data: bytes) -> None:
    _verified_or_typed(data)
    got = typed_errors_only(parse_entry_response, data)
    assert isinstance(got, (tuple, TorfetchError))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(mutated_json_bytes(PROOF), st.binary(max_size=200)))
def test_fuzz_consistency_proof(data: bytes) -> None:
    got = typed_errors_only(parse_consistency_proof, data)
    if not isinstance(got, TorfetchError):
        assert all(isinstance(h, bytes) and len(h) == 32 for h in got) and len(got) <= merkle.MAX_PROOF_HASHES
