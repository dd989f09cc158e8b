"""Rebuilder answers, attestations and the N-of-M tally, pure."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.servers.rebuilderd import Pkg, RebuilderdServer, rebuilderd_pem
from torfetch.errors import AttestationError, ConfigError, TorfetchError
from torfetch.verify.rebuilder import (Answer, RebuildTally, Record, Verdict, ed25519_keyid, in_toto_canonical, match,
                                       parse_pinned_key, parse_v0, parse_v1, verify_attestation)

FN = "foo-1:2.0-3-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"pkg").hexdigest()


def test_match_exact_name_and_version_once() -> None:
    recs = [Record("foo", "1:2.0-3", "GOOD"), Record("foo", "1:2.0-3", "GOOD"), Record("foo", "1:2.0-2", "GOOD")]
    assert match(recs, "foo", "1:2.0-3")[0] is Verdict.CONFIRMED
    assert match(recs, "foo", "2.0-3")[0] is Verdict.UNKNOWN  # epoch matters
    assert match(recs, "foo-bar", "1:2.0-3")[0] is Verdict.UNKNOWN
    assert match([Record("foo", "1", "BAD")], "foo", "1")[0] is Verdict.BAD
    assert match([Record("foo", "1", "UNKWN")], "foo", "1")[0] is Verdict.UNKNOWN


def test_parsers_skip_junk_rows_and_cap() -> None:
    v1 = json.dumps({"total": 3, "records": [{"name": "a", "version": "1", "status": "GOOD", "build_id": 2},
                                             {"name": 5}, "x"]}).encode()
    assert parse_v1(v1, 10_000) == [Record("a", "1", "GOOD", 2, None, None)]
    assert parse_v0(b'[{"name":"a","version":"1","status":"BAD","has_attestation":true}]', 1000)[0].status == "BAD"
    with pytest.raises(TorfetchError):
        parse_v1(v1, 10)
    with pytest.raises(TorfetchError):
        parse_v0(b'{"records": []}', 1000)


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


def test_pinned_key_formats(tmp_path) -> None:
    k = Ed25519PrivateKey.generate()
    pem = rebuilderd_pem(k)
    raw = parse_pinned_key(pem)
    assert parse_pinned_key(raw.hex()) == raw
    (tmp_path / "k.pem").write_text(pem)
    assert parse_pinned_key(str(tmp_path / "k.pem")) == raw
    for bad in ("nope", "zz" * 32, "MCowBQYDK2VwAyEA"):
        with pytest.raises(ConfigError):
            parse_pinned_key(bad)


def test_tally_knows_when_done_and_when_hopeless() -> None:
    t = RebuildTally(required=2, total=3)
    t.add(Answer("a", Verdict.CONFIRMED, ""))
    assert not t.reached() and not t.hopeless()
    t.add(Answer("b", Verdict.FAILED, "timeout"))
    assert not t.hopeless()
    t.add(Answer("c", Verdict.BAD, ""))
    assert t.hopeless() and "only 1 of 3" in t.summary("foo 1")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=500))
def test_fuzz_parsers(data: bytes) -> None:
    for fn in (parse_v1, parse_v0):
        try:
            fn(data, 10_000)
        except TorfetchError:
            pass
    try:
        verify_attestation(data, pinned_key=b"\x01" * 32, filename=FN, sha256_hex=SHA)
    except TorfetchError:
        pass


@settings(max_examples=150, deadline=None)
@given(st.recursive(st.none() | st.booleans() | st.integers() | st.text(max_size=10),
                    lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=4), max_leaves=15))
def test_fuzz_structured_attestation(obj) -> None:
    doc = json.dumps({"signatures": [{"keyid": "x", "sig": "00"}], "signed": obj}).encode()
    try:
        verify_attestation(doc, pinned_key=b"\x01" * 32, filename=FN, sha256_hex=SHA)
    except TorfetchError:
        pass
