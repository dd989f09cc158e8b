"""minisign public keys and signature files (torfetch/verify/minisign.py): only typed errors, whatever the bytes."""

from __future__ import annotations

import base64
import hashlib

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import FUZZ_EXAMPLES, mutated_bytes, typed_errors_only
from torfetch.errors import MalformedInputError, SignatureError, TorfetchError
from torfetch.verify import minisign
from torfetch.verify.transparency import check_transparency_signature

FILENAME = "foo-1.0-1-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"package").hexdigest()
_SK = Ed25519PrivateKey.from_private_bytes(bytes(range(32)))
_KEYID = bytes.fromhex("0123456789abcdef")
_PK = _SK.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
PUB_FILE = b"untrusted comment: minisign public key\n" + base64.b64encode(b"Ed" + _KEYID + _PK) + b"\n"


def _sig_file(message: bytes, comment: bytes, prehashed: bool) -> bytes:
    """A signature file as minisign -S writes it (prehashed "ED", or legacy "Ed")."""
    signed = hashlib.blake2b(message, digest_size=64).digest() if prehashed else message
    sig = _SK.sign(signed)
    glob = _SK.sign(sig + comment)
    return (b"untrusted comment: signature from minisign secret key\n"
            + base64.b64encode((b"ED" if prehashed else b"Ed") + _KEYID + sig) + b"\n"
            + b"trusted comment: " + comment + b"\n" + base64.b64encode(glob) + b"\n")


SIG_FILES = [_sig_file(SHA.encode(), FILENAME.encode(), True), _sig_file(SHA.encode(), b"timestamp:1 file:x", False)]
PUBKEY = minisign.PublicKey.parse(PUB_FILE)
# hypothesis's text() never draws lone surrogates; undecodable command-line bytes become exactly those
_CHARS = st.characters() | st.sampled_from(["\udcff", "\ud800", "\udc80"])


def test_seeds_are_valid() -> None:
    # the fuzzing below starts from inputs that pass every check
    for sig in SIG_FILES:
        check_transparency_signature(filename=FILENAME, sha256_hex=SHA, sig_bytes=sig, pubkey=PUBKEY)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(mutated_bytes(PUB_FILE), st.binary(max_size=200),
                 st.just(PUB_FILE.splitlines()[1]).flatmap(lambda line: mutated_bytes(line, max_ops=2))))
def test_fuzz_public_key_bytes(data: bytes) -> None:
    got = typed_errors_only(minisign.PublicKey.parse, data)
    if isinstance(got, TorfetchError):
        assert isinstance(got, MalformedInputError)
    else:
        assert len(got.raw) == 32 and len(got.key_id) == 8


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(st.text(_CHARS, max_size=120), st.just(PUB_FILE.decode()).flatmap(
    lambda t: st.tuples(st.integers(min_value=0, max_value=len(t)), st.text(_CHARS, max_size=4)).map(
        lambda p: t[: p[0]] + p[1] + t[p[0] + 1 :]))))
def test_fuzz_public_key_text(text: str) -> None:
    # --pubkey and --pubkey-file text: any str, even with lone surrogates from undecodable argv bytes
    got = typed_errors_only(minisign.PublicKey.parse, text)
    assert isinstance(got, (minisign.PublicKey, MalformedInputError))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(st.sampled_from(SIG_FILES).flatmap(mutated_bytes), st.binary(max_size=300)))
def test_fuzz_signature_file(data: bytes) -> None:
    sig = typed_errors_only(minisign.Signature.parse, data)
    if isinstance(sig, TorfetchError):
        assert isinstance(sig, MalformedInputError)
        return
    assert len(sig.signature) == 64 and len(sig.global_signature) == 64 and sig.algorithm in (b"Ed", b"ED")
    assert "\n" not in sig.trusted_comment_text() and len(sig.trusted_comment_text()) <= 200
    res = typed_errors_only(check_transparency_signature, filename=FILENAME, sha256_hex=SHA, sig_bytes=data,
                            pubkey=PUBKEY)
    if isinstance(res, TorfetchError):
        assert isinstance(res, SignatureError)
    else:  # a mutation that still verifies changed nothing that is signed
        assert sig.signature_line() in (minisign.Signature.parse(s).signature_line() for s in SIG_FILES)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.binary(max_size=200), st.binary(max_size=64), st.booleans())
def test_fuzz_well_formed_signature_over_anything(message: bytes, comment: bytes, prehashed: bool) -> None:
    # well-formed files with any comment bytes (newlines excepted: they end the line) over any message
    comment = comment.replace(b"\n", b"").replace(b"\r", b"")
    data = _sig_file(message, comment, prehashed)
    res = typed_errors_only(check_transparency_signature, filename=FILENAME, sha256_hex=SHA, sig_bytes=data,
                            pubkey=PUBKEY)
    if message != SHA.encode():
        assert isinstance(res, SignatureError)
