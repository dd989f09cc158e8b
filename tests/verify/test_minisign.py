"""minisign parsing and verification, interoperating with Debian's minisign binary."""

from __future__ import annotations

import base64
import hashlib
import shutil
import subprocess
from pathlib import Path

import pytest

from torfetch.errors import MalformedInputError, SignatureError
from torfetch.verify import minisign
from torfetch.verify.transparency import check_transparency_signature

needs_minisign = pytest.mark.skipif(shutil.which("minisign") is None, reason="Debian's minisign not installed")
FILENAME = "foo-1.0-1-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"package bytes").hexdigest()


def _keygen(d: Path, name: str = "k") -> tuple[Path, Path]:
    pub, sec = d / f"{name}.pub", d / f"{name}.key"
    subprocess.run(["minisign", "-G", "-W", "-p", pub, "-s", sec], check=True, capture_output=True, timeout=30)
    return pub, sec


def _sign(d: Path, sec: Path, message: bytes, comment: str, legacy: bool) -> bytes:
    m = d / "msg"
    m.write_bytes(message)
    cmd = ["minisign", "-S", "-s", sec, "-m", m, "-x", d / "msg.t", "-t", comment] + (["-l"] if legacy else [])
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    return (d / "msg.t").read_bytes()


@needs_minisign
@pytest.mark.parametrize("legacy", [False, True])
def test_debian_minisign_signature_verifies(tmp_path: Path, legacy: bool) -> None:
    pub, sec = _keygen(tmp_path)
    sig = _sign(tmp_path, sec, SHA.encode(), FILENAME, legacy)
    pk = minisign.PublicKey.parse(pub.read_bytes())
    res = check_transparency_signature(filename=FILENAME, sha256_hex=SHA, sig_bytes=sig, pubkey=pk)
    assert res.prehashed is (not legacy)
    assert res.trusted_comment == FILENAME
    # the bare base64 line (what --pubkey takes) parses to the same key
    assert minisign.PublicKey.parse(pub.read_text().splitlines()[1]) == pk


@needs_minisign
def test_wrong_message_key_and_comment_fail(tmp_path: Path) -> None:
    pub, sec = _keygen(tmp_path, "a")
    pub2, _ = _keygen(tmp_path, "b")
    sig = _sign(tmp_path, sec, SHA.encode(), FILENAME, False)
    pk = minisign.PublicKey.parse(pub.read_bytes())
    other = minisign.PublicKey.parse(pub2.read_bytes())
    with pytest.raises(SignatureError, match="does not match"):
        check_transparency_signature(filename=FILENAME, sha256_hex=hashlib.sha256(b"x").hexdigest(), sig_bytes=sig, pubkey=pk)
    with pytest.raises(SignatureError, match=f"made by key {pk.key_id_hex}, expected {other.key_id_hex}"):
        check_transparency_signature(filename=FILENAME, sha256_hex=SHA, sig_bytes=sig, pubkey=other)
    # a valid signature replayed for another package name
    with pytest.raises(SignatureError, match="another package"):
        check_transparency_signature(filename="bar-1.0-1-x86_64.pkg.tar.zst", sha256_hex=SHA, sig_bytes=sig, pubkey=pk)
    # uppercase hex is a different message: we always sign/verify lowercase
    res = check_transparency_signature(filename=FILENAME, sha256_hex=SHA.upper(), sig_bytes=sig, pubkey=pk)
    assert res.sha256_hex == SHA


@needs_minisign
def test_altered_trusted_comment_fails_global_signature(tmp_path: Path) -> None:
    pub, sec = _keygen(tmp_path)
    sig = _sign(tmp_path, sec, SHA.encode(), FILENAME, False)
    forged = sig.replace(FILENAME.encode(), b"foo-1.0-2-x86_64.pkg.tar.zst")
    with pytest.raises(SignatureError, match="global signature"):
        check_transparency_signature(filename="foo-1.0-2-x86_64.pkg.tar.zst", sha256_hex=SHA, sig_bytes=forged,
                                     pubkey=minisign.PublicKey.parse(pub.read_bytes()))


@needs_minisign
def test_our_signatures_verify_with_debian_minisign(tmp_path: Path) -> None:
    """The other direction: what torfetch's tooling signs (py-minisign) passes `minisign -V`."""
    import minisign as pyminisign

    kp = pyminisign.KeyPair.generate()
    (tmp_path / "k.pub").write_bytes(b"untrusted comment: py-minisign key\n" + kp.public_key.to_base64() + b"\n")
    m = tmp_path / "m"
    m.write_bytes(SHA.encode())
    sig = kp.secret_key.sign(SHA.encode(), prehash=True, trusted_comment=FILENAME)
    (tmp_path / "m.minisig").write_bytes(bytes(sig))
    r = subprocess.run(["minisign", "-V", "-p", tmp_path / "k.pub", "-m", m], capture_output=True, text=True, timeout=30)
    assert r.returncode == 0, r.stderr
    # and our own verifier agrees
    pk = minisign.PublicKey.parse((tmp_path / "k.pub").read_bytes())
    check_transparency_signature(filename=FILENAME, sha256_hex=SHA, sig_bytes=(tmp_path / "m.minisig").read_bytes(), pubkey=pk)


def test_size_limit_and_crlf() -> None:
    with pytest.raises(MalformedInputError, match="over the limit"):
        minisign.Signature.parse(b"x" * 1025)
    line = base64.b64encode(b"ED" + b"\x01" * 8 + b"\x02" * 64)
    glob = base64.b64encode(b"\x03" * 64)
    text = b"untrusted comment: x\r\n" + line + b"\r\ntrusted comment: t\r\n" + glob
    sig = minisign.Signature.parse(text)  # CRLF, no final newline: accepted like minisign
    assert sig.trusted_comment == b"t" and sig.prehashed


def test_sanitise_strips_control_characters() -> None:
    assert minisign.sanitise("a\x1b[31mb\nc") == "a?[31mb?c"
    assert len(minisign.sanitise("x" * 1000)) == 200


def test_public_key_text_with_undecodable_bytes_is_a_typed_error() -> None:
    # `--pubkey $'\xff'` reaches the parser as a lone surrogate (argv's surrogateescape)
    with pytest.raises(MalformedInputError, match="not valid text"):
        minisign.PublicKey.parse("RWQ\udcff")
