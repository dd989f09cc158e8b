"""in-toto link attestations as rebuilderd signs them: canonical JSON, key ids, every check, pure."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.servers.rebuilderd import Pkg, RebuilderdServer, rebuilderd_pem
from torfetch.errors import AttestationError, MalformedInputError
from torfetch.verify.intoto import ed25519_keyid, in_toto_canonical, verify_attestation
from torfetch.verify.pinned_key import parse_pinned_key

FN = "foo-1:2.0-3-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"pkg").hexdigest()


def test_in_toto_canonical_turns_escaped_newlines_back() -> None:
    assert in_toto_canonical({"b": "x\ny", "a": 1}) == b'{"a":1,"b":"x\ny"}'


def _attestation(key: Ed25519PrivateKey, fn: str = FN, sha: str = SHA, name: str | None = None) -> bytes:
    srv = RebuilderdServer()
    try:
        srv.daemon_key = key
        srv.add(Pkg("foo", "1:2.0-3", sha256=sha, filename=fn))
        doc = srv.attestation(0)
    finally:
        srv._httpd.server_close()
    if name:
        doc["signed"]["name"] = name  # after signing: breaks the signature
    return json.dumps(doc).encode()


def test_attestation_verifies_with_pinned_key_and_checks_everything() -> None:
    k = Ed25519PrivateKey.generate()
    pem = rebuilderd_pem(k)
    raw = parse_pinned_key(pem)
    res = verify_attestation(_attestation(k), pinned_key=raw, filename=FN, sha256_hex=SHA)
    assert res.keyid == ed25519_keyid(raw) and res.product_sha256 == SHA
    with pytest.raises(AttestationError, match="not signed by the pinned key"):
        verify_attestation(_attestation(Ed25519PrivateKey.generate()), pinned_key=raw, filename=FN, sha256_hex=SHA)
    with pytest.raises(AttestationError, match="not the downloaded"):
        verify_attestation(_attestation(k), pinned_key=raw, filename=FN, sha256_hex="11" * 32)
    with pytest.raises(AttestationError):
        verify_attestation(_attestation(k), pinned_key=raw, filename="bar-1-1-x86_64.pkg.tar.zst", sha256_hex=SHA)
    with pytest.raises(AttestationError):
        verify_attestation(_attestation(k, name="rebuild other"), pinned_key=raw, filename=FN, sha256_hex=SHA)


def test_canonical_json_matches_in_toto_rs_quirks() -> None:
    # serde_json escaping, then in-toto-rs's .replace("\\n", "\n") on the whole text
    assert in_toto_canonical({"a": "x\\ny"}) == b'{"a":"x\\' + b"\n" + b'y"}'  # backslash-n text: the quirk
    assert in_toto_canonical({"t": "a\tb\x1f\x7f"}) == b'{"t":"a\\tb\\u001f\x7f"}'
    assert in_toto_canonical({"é": ["ü", None, True, -(2**63), 2**64 - 1]}) == (
        '{"é":["ü",null,true,-9223372036854775808,18446744073709551615]}'.encode())
    assert in_toto_canonical({"b": {"d": 1, "c": 2}, "a": []}) == b'{"a":[],"b":{"c":2,"d":1}}'
    for bad in ({"f": 1.5}, {"big": 2**64}, {"neg": -(2**63) - 1}, {"s": "\ud800"}):
        with pytest.raises(AttestationError):
            in_toto_canonical(bad)


def test_keyid_is_sha256_of_canonical_key() -> None:
    raw = bytes(range(32))
    doc = ('{"keyid_hash_algorithms":["sha256","sha512"],"keytype":"ed25519","keyval":{"public":"'
           + raw.hex() + '"},"scheme":"ed25519"}')
    assert ed25519_keyid(raw) == hashlib.sha256(doc.encode()).hexdigest()


def test_signature_found_whatever_its_keyid_and_others_ignored() -> None:
    k = Ed25519PrivateKey.generate()
    raw = parse_pinned_key(rebuilderd_pem(k))
    doc = json.loads(_attestation(k))
    for sig in doc["signatures"]:
        sig["keyid"] = "00" * 32
    doc["signatures"].insert(0, {"keyid": ed25519_keyid(raw), "sig": "zz" * 64})
    doc["signatures"].insert(0, "junk")
    assert verify_attestation(json.dumps(doc).encode(), pinned_key=raw, filename=FN, sha256_hex=SHA).product_sha256 == SHA
    doc["signed"]["products"][FN]["sha256"] = "11" * 32  # tampering after signing breaks every signature
    with pytest.raises(AttestationError, match="not signed by the pinned key"):
        verify_attestation(json.dumps(doc).encode(), pinned_key=raw, filename=FN, sha256_hex="11" * 32)


def test_attestation_shape_errors_are_attestation_errors() -> None:
    for doc in (b"[]", b'{"signed": {}}', b'{"signed": {}, "signatures": []}', b'{"signed": 1, "signatures": [1]}'):
        with pytest.raises(AttestationError):
            verify_attestation(doc, pinned_key=b"\x01" * 32, filename=FN, sha256_hex=SHA)
    with pytest.raises(MalformedInputError):
        verify_attestation(b"{nope", pinned_key=b"\x01" * 32, filename=FN, sha256_hex=SHA)
