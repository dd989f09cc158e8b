"""Rekor entries: a real public-good entry verified offline, and every tampered field refused."""

from __future__ import annotations

import base64
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
from torfetch.verify.rekor import canonical_json, parse_log_info, rekord_body, verify_log_entry

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
    # the entryID's 16-hex prefix is the tree id of the checkpoint's origin "rekor.sigstore.dev - <tree id>"
    (uuid,) = _real()
    assert e.tree == int(uuid[:16], 16) == 2605736670972794746 and e.origin_name == "rekor.sigstore.dev"


def _rekey(uuid_fn) -> bytes:
    doc = _real()
    ((uuid, entry),) = doc.items()
    return json.dumps({uuid_fn(uuid): entry}).encode()


@pytest.mark.parametrize("uuid_fn,match", [
    (lambda u: u[16:], "16-hex tree id"),  # a bare leaf hash names no tree
    (lambda u: "24296fb24b8ad77b" + u[16:], "UUID names tree 2605736670972794747"),
    (lambda u: "0000000000000000" + u[16:], "not a valid tree id"),
    (lambda u: "24296fb24b8ad7_a" + u[16:], "not 16 hex digits"),
    (lambda u: "ffffffffffffffff" + u[16:], "not a valid tree id"),
])
def test_uuid_must_name_the_checkpoints_tree(uuid_fn, match: str) -> None:
    with pytest.raises(TransparencyLogError, match=match):
        verify_log_entry(_rekey(uuid_fn), log_key=PUBLIC_GOOD)


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
        ("spaced hex", lambda e: e["verification"]["inclusionProof"].__setitem__(
            "rootHash", " ".join(e["verification"]["inclusionProof"]["rootHash"][i:i + 2] for i in range(0, 64, 2))),
         MalformedInputError),
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


@settings(max_examples=1000, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(st.text(max_size=10), c, max_size=4), max_leaves=20))
def test_fuzz_structured_entry(obj: object) -> None:
    # a UUID that matches the body, so the fuzzed verification is reached
    doc = {"24296fb24b8ad77a" + merkle.leaf_hash(b"{}").hex(): {"body": "e30=", "integratedTime": 1,
                                                              "logID": PUBLIC_GOOD.log_id, "logIndex": 1,
                       "verification": obj}}
    try:
        verify_log_entry(json.dumps(doc).encode(), log_key=PUBLIC_GOOD)
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


# -- GET /api/v1/log ------------------------------------------------------------------


def _shard(k: ec.EllipticCurvePrivateKey, tree: int, size: int, *, name: str = "rekor.test", cp_tree: int | None = None,
           cp_size: int | None = None, origin: str | None = None) -> dict:
    root = merkle.root_of([merkle.leaf_hash(bytes([i])) for i in range(size)])
    note = sign_checkpoint(Checkpoint(origin or f"{name} - {cp_tree or tree}", size if cp_size is None else cp_size, root, ()), name, k)
    return {"rootHash": root.hex(), "treeSize": size, "treeID": str(tree), "signedTreeHead": note}


def _info(active: dict, *inactive: dict) -> bytes:
    return json.dumps({**active, "inactiveShards": list(inactive)}).encode()


def test_log_info_with_inactive_shards() -> None:
    k, key = _key()
    info = parse_log_info(_info(_shard(k, 1193050959916656506, 9), _shard(k, 2605736670972794746, 4)), log_key=key)
    assert info.active.tree == 1193050959916656506 and info.active.head.size == 9
    assert [s.tree for s in info.inactive] == [2605736670972794746] and info.inactive[0].origin_name == "rekor.test"
    bare = _shard(k, 7, 2)  # no inactiveShards at all: a log that never rotated
    assert parse_log_info(json.dumps(bare).encode(), log_key=key).inactive == ()


def test_log_info_lies_are_refused() -> None:
    k, key = _key()
    other, _ = _key()
    with pytest.raises(CheckpointError, match="not signed by the pinned log key"):
        parse_log_info(_info(_shard(k, 7, 3), _shard(other, 6, 2)), log_key=key)
    with pytest.raises(CheckpointError, match="does not match its signed tree head"):
        parse_log_info(_info(_shard(k, 7, 3), _shard(k, 6, 2, cp_tree=5)), log_key=key)
    with pytest.raises(CheckpointError, match="does not match its signed tree head"):
        parse_log_info(_info(_shard(k, 7, 3, cp_size=4)), log_key=key)
    with pytest.raises(MalformedInputError, match="twice"):
        parse_log_info(_info(_shard(k, 7, 3), _shard(k, 7, 3)), log_key=key)
    for tid in ("\u0664\u0662", "042", "0", "-1", "4 2"):
        doc = _shard(k, 42, 3)
        doc["treeID"] = tid
        with pytest.raises(MalformedInputError, match="not a decimal tree id"):
            parse_log_info(json.dumps(doc).encode(), log_key=key)
    with pytest.raises(CheckpointError, match="decimal tree id"):
        parse_log_info(_info(_shard(k, 7, 3, origin="free form")), log_key=key)


_LOG_KEY = _key()


@settings(max_examples=1000, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=20),
                    lambda c: st.lists(c, max_size=4) | st.dictionaries(
                        st.sampled_from(["treeID", "treeSize", "rootHash", "signedTreeHead", "inactiveShards", "x"]),
                        c, max_size=5), max_leaves=20))
def test_fuzz_log_info(obj: object) -> None:
    try:
        parse_log_info(json.dumps(obj).encode(), log_key=_LOG_KEY[1])
    except TorfetchError:
        pass
