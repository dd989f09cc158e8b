"""minisign secret keys as Debian's minisign writes them: parsing, libsodium's scrypt parameters, signing."""

from __future__ import annotations

import base64
import hashlib
import subprocess
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.repo import MinisignKey
from torfetch.errors import ConfigError
from torfetch.verify.minisign import PublicKey, Signature, verify
from torfetch.verify.minisign_secret import EncryptedSecretKey, _pickparams


def test_pickparams_matches_libsodium() -> None:
    # minisign's OPSLIMIT/MEMLIMIT_SENSITIVE → scrypt N=2^20, r=8, p=1 (1 GiB), as libsodium picks them
    assert _pickparams(33554432, 1073741824) == (1 << 20, 8, 1)
    # libsodium's interactive limits (524288, 16 MiB) → N=2^14, r=8, p=1
    assert _pickparams(524288, 16777216) == (1 << 14, 8, 1)


@pytest.fixture(scope="module")
def plain(tmp_path_factory) -> MinisignKey:
    return MinisignKey.generate(tmp_path_factory.mktemp("k"))


def test_unencrypted_key_signs_what_minisign_accepts(plain, tmp_path) -> None:
    sk = EncryptedSecretKey.parse(plain.sec.read_bytes()).decrypt(None)
    pub = PublicKey.parse(plain.pub.read_bytes())
    sk.check_matches(pub, pub_path="k.pub")
    sha = hashlib.sha256(b"package").hexdigest()
    for prehash in (True, False):
        sig = sk.sign(sha.encode(), "foo-1-1-any.pkg.tar.zst", prehash=prehash)
        verify(pub, Signature.parse(sig), sha.encode(), subject="foo")
        (tmp_path / "m").write_bytes(sha.encode())
        (tmp_path / "m.minisig").write_bytes(sig)
        r = subprocess.run(["minisign", "-V", "-p", str(plain.pub), "-m", str(tmp_path / "m")] + ([] if prehash else ["-l"]),
                           capture_output=True, text=True, timeout=30)
        assert r.returncode == 0 and "Trusted comment: foo-1-1-any.pkg.tar.zst" in r.stdout, r.stderr


def test_other_public_key_is_refused(plain, tmp_path) -> None:
    other = MinisignKey.generate(tmp_path, "other")
    sk = EncryptedSecretKey.parse(plain.sec.read_bytes()).decrypt(None)
    with pytest.raises(ConfigError, match="does not match the public key"):
        sk.check_matches(PublicKey.parse(other.pub.read_bytes()), pub_path=str(other.pub))


def _mutate(data: bytes, pos: int) -> bytes:
    lines = data.splitlines()
    raw = bytearray(base64.b64decode(lines[1]))
    raw[pos] ^= 0x01
    return lines[0] + b"\n" + base64.b64encode(bytes(raw)) + b"\n"


def test_corrupt_unencrypted_key_is_refused(plain) -> None:
    data = plain.sec.read_bytes()
    # a flipped secret byte: the public half no longer matches (the checksum of -W keys is zero)
    with pytest.raises(ConfigError, match="corrupt"):
        EncryptedSecretKey.parse(_mutate(data, 54 + 8 + 3)).decrypt(None)
    with pytest.raises(ConfigError, match="unsupported"):
        EncryptedSecretKey.parse(_mutate(data, 0))


def test_control_characters_in_trusted_comment_are_refused(plain) -> None:
    sk = EncryptedSecretKey.parse(plain.sec.read_bytes()).decrypt(None)
    with pytest.raises(ConfigError):
        sk.sign(b"x", "a\nb")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=400))
def test_parse_raises_only_config_errors(data) -> None:
    try:
        EncryptedSecretKey.parse(data)
    except ConfigError:
        pass
