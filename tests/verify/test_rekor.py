"""Rekor entries: a real public-good entry verified offline, and every tampered field refused."""

from __future__ import annotations

import base64
import copy
import json
from importlib import resources
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import (CheckpointError, InclusionProofError, MalformedInputError, TorfetchError,
                             TransparencyLogError)
from torfetch.verify import merkle
from torfetch.verify.checkpoint import Checkpoint, LogKey, sign_checkpoint, verify_checkpoint
from torfetch.verify.rekor import canonical_json, rekord_body, verify_log_entry

REAL = Path(__file__).parent.parent / "vectors" / "rekor" / "bundle_v3_github-79605083.json"
PUBLIC_GOOD = LogKey.from_pem(resources.files("torfetch").joinpath("data/rekor.sigstore.dev.pem").read_bytes())


def _real() -> dict:
    return json.loads(REAL.read_text())


def _mutate(fn) -> bytes:
    doc = _real()
    (uuid, entry), = doc.items()
    fn(entry)
    return json.dumps(doc).encode()


def test_real_public_good_entry_verifies() -> None:
    e = verify_log_entry(REAL.read_bytes(), log_key=PUBLIC_GOOD)
    assert e.log_index == 79605083 and e.shard_index == 75441652  # global ≠ shard-local
    assert e.tree_id == "2605736670972794746"
    assert e.checkpoint.size == 75441653


def _flip_hex(s: str) -> str:
    return ("1" if s[0] != "1" else "2") + s[1:]


@pytest.mark.parametrize(
    "name,fn,err",
    [
        ("global index", lambda e: e.__setitem__("logIndex", e["logIndex"] + 1), TransparencyLogError),
        ("integrated time", lambda e: e.__setitem__("integratedTime", e["integratedTime"] + 1), TransparencyLogError),
        ("log id", lambda e: e.__setitem__("logID", _flip_hex(e["logID"])), TransparencyLogError),
        ("proof hash", lambda e: e["verification"]["inclusionProof"]["hashes"].__setitem__(
            0, _flip_hex(e["verification"]["inclusionProof"]["hashes"][0])), InclusionProofError),
        ("shard index", lambda e: e["verification"]["inclusionProof"].__setitem__("logIndex", 75441651), InclusionProofError),
        ("root", lambda e: e["verification"]["inclusionProof"].__setitem__(
            "rootHash", _flip_hex(e["verification"]["inclusionProof"]["rootHash"])), InclusionProofError),
        ("checkpoint size", lambda e: e["verification"]["inclusionProof"].__setitem__(
            "checkpoint", e["verification"]["inclusionProof"]["checkpoint"].replace("75441653", "75441654", 1)), CheckpointError),
        ("SET", lambda e: e["verification"].__setitem__("signedEntryTimestamp", base64.b64encode(
            base64.b64decode(e["verification"]["signedEntryTimestamp"])[:-1] + b"\x00").decode()), TransparencyLogError),
        ("body", lambda e: e.__setitem__("body", base64.b64encode(base64.b64decode(e["body"]) + b" ").decode()),
         TransparencyLogError),
        ("missing field", lambda e: e.pop("verification"), MalformedInputError),
        ("wrong type", lambda e: e.__setitem__("logIndex", "79605083"), MalformedInputError),
    ],
)
def test_tampered_real_entry_fails(name, fn, err) -> None:
    with pytest.raises(err):
        verify_log_entry(_mutate(fn), log_key=PUBLIC_GOOD)


def test_other_log_key_fails() -> None:
    other = ec.generate_private_key(ec.SECP256R1()).public_key()
    from cryptography.hazmat.primitives import serialization

    pem = other.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    with pytest.raises(TransparencyLogError):
        verify_log_entry(REAL.read_bytes(), log_key=LogKey.from_pem(pem))


def test_expected_body_must_match() -> None:
    with pytest.raises(TransparencyLogError, match="different signature"):
        verify_log_entry(REAL.read_bytes(), log_key=PUBLIC_GOOD, expected_body=b"{}")


def _key() -> tuple[ec.EllipticCurvePrivateKey, LogKey]:
    from cryptography.hazmat.primitives import serialization

    k = ec.generate_private_key(ec.SECP256R1())
    pem = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    return k, LogKey.from_pem(pem)


def test_checkpoint_timestamp_line_and_unknown_signers_tolerated() -> None:
    k, key = _key()
    other, _ = _key()
    cp = Checkpoint("rekor.test - 42", 7, b"\x01" * 32, ("Timestamp: 1689748607742585419",))
    note = sign_checkpoint(cp, "rekor.test", k)
    witness_line = sign_checkpoint(cp, "witness", other).split("\n\n", 1)[1]
    body, sig = note.split("\n\n", 1)
    got = verify_checkpoint(body + "\n\n" + witness_line + sig, key)  # unknown key first
    assert got == cp and got.tree_id == "42"


def test_checkpoint_only_unknown_signers_fails() -> None:
    k, key = _key()
    other, _ = _key()
    cp = Checkpoint("o", 1, b"\x00" * 32, ())
    with pytest.raises(CheckpointError, match="not signed by the pinned log key"):
        verify_checkpoint(sign_checkpoint(cp, "o", other), key)


@pytest.mark.parametrize("bad", [
    "o\nx\nAAAA\n\n— o AAAAAAA=\n", "o\n1\nnot base64!\n\n— o AAAAAAA=\n", "o\n01\n" + "A" * 43 + "=\n\n— o AAAAAAA=\n",
    "o\n1\n" + "A" * 43 + "=\n", "o\n1\n" + "A" * 43 + "=\n\nno dash\n", "",
])
def test_malformed_checkpoints(bad: str) -> None:
    _, key = _key()
    with pytest.raises(MalformedInputError):
        verify_checkpoint(bad, key)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=2000))
def test_fuzz_log_entry(data: bytes) -> None:
    try:
        verify_log_entry(data, log_key=PUBLIC_GOOD)
    except TorfetchError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4), max_leaves=20))
def test_fuzz_structured_entry(obj: object) -> None:
    doc = {"ab" * 32: {"body": "e30=", "integratedTime": 1, "logID": PUBLIC_GOOD.log_id, "logIndex": 1,
                       "verification": obj}}
    try:
        verify_log_entry(json.dumps(doc).encode(), log_key=PUBLIC_GOOD)
    except TorfetchError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=400))
def test_fuzz_checkpoint(text: str) -> None:
    try:
        verify_checkpoint(text, PUBLIC_GOOD)
    except TorfetchError:
        pass


def test_rekord_body_is_canonical_and_drops_trusted_comment() -> None:
    body = rekord_body(b"RUQx" + b"A" * 96, b"RWQ" + b"B" * 53, b"ab" * 32)
    doc = json.loads(body)
    assert canonical_json(doc) == body
    assert base64.b64decode(doc["spec"]["signature"]["content"]).startswith(b"untrusted comment:\nRUQx")
    assert b"trusted comment: " not in base64.b64decode(doc["spec"]["signature"]["content"])
    assert list(doc) == ["apiVersion", "kind", "spec"]
    assert merkle.leaf_hash(body) != merkle.leaf_hash(body + b" ")
