"""Rebuilder answers, attestations and the N-of-M tally, pure."""

from __future__ import annotations

import hashlib
import json

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.servers.rebuilderd import Pkg, RebuilderdServer, rebuilderd_pem
from torfetch.errors import AttestationError, ConfigError, MalformedInputError, TorfetchError
from torfetch.verify.rebuilder import (Answer, RebuildTally, Record, Verdict, decode_body, ed25519_keyid, endpoint,
                                       in_toto_canonical, match, normalise_rebuilder_url, parse_pinned_key,
                                       parse_rebuilder_key, parse_records, parse_v0, parse_v1, verify_attestation)

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
    t = RebuildTally(required=2, n_rebuilders=3)
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


# --- added: in-toto-rs canonical JSON details, keys on the command line, odd answers ------------


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


def test_pinned_key_standard_spki_and_base64(tmp_path) -> None:
    from cryptography.hazmat.primitives import serialization

    k = Ed25519PrivateKey.generate()
    raw = k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    std_pem = k.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    assert parse_pinned_key(std_pem.decode()) == raw
    b64 = "".join(rebuilderd_pem(k).splitlines()[1:-1])
    assert parse_pinned_key(b64) == raw
    assert parse_pinned_key(raw) == raw
    p256 = ("MFkwEwYHKoZIzj0CAQYIKoZIzj0DAQcDQgAEWn5ClvMxZg1ZSYS0bqUpUFhNTeEPoTQx2U0"
            "Ykh0rHPahDNwtdvmwHSGdFdsS3fkRL0W0CvqHqxKo0RqmpBlbOA==")
    with pytest.raises(ConfigError):
        parse_pinned_key(p256)  # a valid SPKI, but not Ed25519


def test_parse_rebuilder_key(tmp_path) -> None:
    k = Ed25519PrivateKey.generate()
    pem = rebuilderd_pem(k)
    raw = parse_pinned_key(pem)
    assert parse_rebuilder_key(f"https://Wolfpit.test/rebuild={raw.hex()}") == ("https://wolfpit.test/rebuild/", raw.hex())
    b64 = "".join(pem.splitlines()[1:-1])
    assert b64.endswith("=")
    assert parse_rebuilder_key(f"http://127.0.0.1:8484/={b64}") == ("http://127.0.0.1:8484/", raw.hex())
    (tmp_path / "k.pem").write_text(pem)
    assert parse_rebuilder_key(f"https://r.test={tmp_path / 'k.pem'}")[1] == raw.hex()
    for bad in ("https://r.test", "=" + raw.hex(), "https://r.test=", "ftp://r.test=" + raw.hex(),
                "https://r.test/?a=" + raw.hex(), "https://r.test=" + "ab" * 31):
        with pytest.raises(ConfigError):
            parse_rebuilder_key(bad)


def test_base_url_keeps_its_path() -> None:
    assert normalise_rebuilder_url("HTTPS://Wolfpit.TEST/rebuild") == "https://wolfpit.test/rebuild/"
    assert endpoint("https://wolfpit.test/rebuild/", "api/v0/pkgs/list", {"distro": "archlinux", "name": "a+b"}) == (
        "https://wolfpit.test/rebuild/api/v0/pkgs/list?distro=archlinux&name=a%2Bb")
    assert endpoint("https://r.test", "/api/v1/meta/public-keys") == "https://r.test/api/v1/meta/public-keys"


def test_match_edge_cases() -> None:
    assert match([Record("foo", "1-1", "FAIL")], "foo", "1-1")[0] is Verdict.UNKNOWN
    v, rec, _ = match([Record("foo", "1-1", "GOOD"), Record("foo", "1-1", "GOOD", 4, 5)], "foo", "1-1")
    assert v is Verdict.CONFIRMED and rec is not None and rec.build_id == 4  # the row that can be attested
    v, _, detail = match([Record("foo", "1-1", "BAD"), Record("foo", "1-1", "GOOD")], "foo", "1-1")
    assert v is Verdict.CONFIRMED and "BAD" in detail
    assert match([Record("Foo", "1-1", "GOOD"), Record("foo", "1-1 ", "GOOD"), Record("foo", "1-1", "good")],
                 "foo", "1-1")[0] is Verdict.UNKNOWN  # exact strings only


def test_records_real_shapes() -> None:
    v1 = {"total": 2, "records": [
        {"id": 1, "name": "foo", "version": "1-1", "distribution": "archlinux", "release": None, "component": "core",
         "architecture": "x86_64", "url": "https://x/foo", "status": None, "build_id": None, "artifact_id": None,
         "diffoscope_log_id": None, "attestation_log_id": None, "last_seen": "2025-01-01T00:00:00",
         "seen_in_last_sync": True},
        {"id": 2, "name": "foo", "version": "1-2", "status": "GOOD", "build_id": 9, "artifact_id": True}]}
    recs = parse_records(json.dumps(v1).encode(), 100_000)
    assert recs[0].status == "UNKWN" and recs[1].artifact_id is None  # null status; bool is no id
    v0 = [{"name": "foo", "version": "1-1", "status": "UNKWN", "distro": "archlinux", "suite": "core",
           "architecture": "x86_64", "artifact_url": "u", "build_id": None, "built_at": None,
           "has_diffoscope": False, "has_attestation": False}]
    assert parse_records(json.dumps(v0).encode(), 100_000) == [Record("foo", "1-1", "UNKWN", None, None, False)]
    for bad in (b"{}", b'{"records": {}}', b"3", b"<html>"):
        with pytest.raises(MalformedInputError):
            parse_records(bad, 1000)


def test_decode_body() -> None:
    import gzip

    import zstandard

    body = b'{"a": 1}'
    assert decode_body(zstandard.ZstdCompressor().compress(body), "zstd", 100) == body
    assert decode_body(gzip.compress(body), "gzip", 100) == body
    assert decode_body(body, None, 100) == body
    bomb = zstandard.ZstdCompressor().compress(b"\0" * 10_000_000)
    for enc, data in (("zstd", bomb), ("gzip", gzip.compress(b"\0" * 10_000_000)), ("br", body), ("zstd", b"xx")):
        with pytest.raises(MalformedInputError):
            decode_body(data, enc, 1_000_000)


def test_tally_counts_each_rebuilder_once() -> None:
    t = RebuildTally(2, 2)
    t.add(Answer("a", Verdict.CONFIRMED, ""))
    t.add(Answer("a", Verdict.CONFIRMED, ""))
    assert t.confirmed == 1 and not t.reached() and t.pending == 1 and t.total == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["foo", "fo", "foo-git"]), st.sampled_from(["1-1", "1:1-1", "1-2"]),
                          st.sampled_from(["GOOD", "BAD", "UNKWN", "FAIL", "good"])), max_size=8))
def test_fuzz_match_confirms_only_exact_good(rows) -> None:
    recs = [Record(*r) for r in rows]
    verdict = match(recs, "foo", "1-1")[0]
    assert (verdict is Verdict.CONFIRMED) == (("foo", "1-1", "GOOD") in rows)
    if verdict is Verdict.BAD:
        assert ("foo", "1-1", "BAD") in rows


@settings(max_examples=200, deadline=None)
@given(st.text(max_size=200))
def test_fuzz_parse_rebuilder_key(text: str) -> None:
    try:
        url, key = parse_rebuilder_key(text)
    except TorfetchError:
        return
    assert len(bytes.fromhex(key)) == 32 and url.endswith("/")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=400))
def test_fuzz_parse_records(data: bytes) -> None:
    try:
        parse_records(data, 10_000)
    except TorfetchError:
        pass
