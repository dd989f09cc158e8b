"""Rebuilder answers and in-toto attestations (torfetch/verify/rebuilder.py, intoto.py): only typed errors come out."""

from __future__ import annotations

import copy
import hashlib
import json

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import FUZZ_EXAMPLES, mutated_bytes, mutated_json, mutated_json_bytes, typed_errors_only
from tests.servers.rebuilderd import Pkg, RebuilderdServer
from torfetch.errors import AttestationError, MalformedInputError, TorfetchError, VerificationError
from torfetch.verify.intoto import AttestationCheck, in_toto_canonical, verify_attestation
from torfetch.verify.rebuilder import Record, Verdict, match, parse_records, parse_v0, parse_v1

NAME, VERSION = "foo", "1:2.0-3"
FN = f"{NAME}-{VERSION}-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"pkg").hexdigest()
_ROW = {"name": NAME, "version": VERSION, "status": "GOOD", "build_id": 7, "artifact_id": 9, "has_attestation": True,
        "architecture": "x86_64", "distribution": "archlinux"}
V1 = {"total": 3, "records": [_ROW, dict(_ROW, status="BAD", build_id=8), dict(_ROW, version="1:2.0-2", status=None)]}
V0 = [dict(_ROW, status="UNKWN"), dict(_ROW, status="FAIL")]
KEY = Ed25519PrivateKey.from_private_bytes(bytes(range(1, 33)))
PINNED = KEY.public_key().public_bytes_raw()


def _seed_attestation() -> dict:
    srv = RebuilderdServer()  # rebuilderd's own Metablock, as the local server signs it
    try:
        srv.daemon_key = KEY
        srv.add(Pkg(NAME, VERSION, sha256=SHA, filename=FN))
        return srv.attestation(0)
    finally:
        srv._httpd.server_close()


ATTESTATION = _seed_attestation()


def test_seeds_are_valid() -> None:
    assert match(parse_v1(json.dumps(V1).encode(), 1 << 20), NAME, VERSION)[0] is Verdict.CONFIRMED
    assert len(parse_v0(json.dumps(V0).encode(), 1 << 20)) == 2
    got = verify_attestation(json.dumps(ATTESTATION).encode(), pinned_key=PINNED, filename=FN, sha256_hex=SHA)
    assert got.product_sha256 == SHA


def _records_then_match(parse, data: bytes) -> None:
    recs = typed_errors_only(parse, data, 1 << 20)
    if isinstance(recs, TorfetchError):
        assert isinstance(recs, MalformedInputError)
        return
    assert all(isinstance(r, Record) for r in recs)
    verdict, row, detail = match(recs, NAME, VERSION)  # the pure decision on whatever parsed: no exception either
    assert isinstance(verdict, Verdict) and detail.isprintable()
    assert (row is not None) == (verdict is Verdict.CONFIRMED)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(mutated_json_bytes(V1), mutated_json_bytes(V0), st.binary(max_size=200)))
def test_fuzz_records(data: bytes) -> None:
    for parse in (parse_v1, parse_v0, parse_records):
        _records_then_match(parse, data)


@st.composite
def _resigned(draw: st.DrawFn) -> bytes:
    """The attestation with its signed part changed and signed again by the pinned key: reaches every later check."""
    doc = copy.deepcopy(ATTESTATION)
    doc["signed"] = draw(mutated_json(doc["signed"]))
    try:
        payload = in_toto_canonical(doc["signed"])
    except TorfetchError:
        pass  # not canonical JSON: stays unsigned, refused earlier
    else:
        doc["signatures"][-1]["sig"] = KEY.sign(payload).hex()
    return json.dumps(doc).encode()


def _attested_or_typed(data: bytes) -> None:
    got = typed_errors_only(verify_attestation, data, pinned_key=PINNED, filename=FN, sha256_hex=SHA)
    if isinstance(got, TorfetchError):
        assert isinstance(got, VerificationError), got
        assert isinstance(got, (AttestationError, MalformedInputError)), got
    else:
        assert isinstance(got, AttestationCheck) and got.product_sha256 == SHA


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(mutated_json_bytes(ATTESTATION), mutated_bytes(json.dumps(ATTESTATION).encode())))
def test_fuzz_attestation(data: bytes) -> None:
    _attested_or_typed(data)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(_resigned())
def test_fuzz_attestation_signed_part(data: bytes) -> None:
    _attested_or_typed(data)
