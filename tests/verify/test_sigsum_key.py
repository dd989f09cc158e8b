"""Sigsum submitter keys: OpenSSH ssh-ed25519 lines as sigsum-key writes them, or 64 hex digits."""

from __future__ import annotations

import base64
import hashlib
from pathlib import Path

import pytest

from tests.sigsum_vectors import Key
from torfetch.errors import ConfigError
from torfetch.verify.sigsum_key import format_public_key, key_hash, looks_like_key_text, parse_public_key

VECTORS = Path(__file__).parent.parent / "vectors" / "sigsum"
# `sigsum-key to-hex -k submit.key.pub`, printed by the real tool when the vectors were made
SUBMIT_HEX = "a253a681df2de891e01190b342336756cae5297883383428d8f25f7f4612e753"


def test_real_sigsum_key_file() -> None:
    assert parse_public_key((VECTORS / "submit.key.pub").read_bytes()).hex() == SUBMIT_HEX


def test_hex_and_line_forms_agree() -> None:
    k = Key(1)
    assert parse_public_key(k.pub.hex()) == k.pub
    assert parse_public_key(k.pub.hex().upper() + "\n") == k.pub
    assert parse_public_key(format_public_key(k.pub)) == k.pub
    assert parse_public_key(format_public_key(k.pub).encode()) == k.pub
    line = format_public_key(k.pub).strip()
    assert parse_public_key(line.replace(" ", "\t")) == k.pub
    assert parse_public_key(" ".join(line.split()[:2])) == k.pub  # no comment
    assert parse_public_key(f'sigsum-policy="sigsum-test" {line}') == k.pub
    assert parse_public_key(f"# the repo's key\n\n{line}\r\n") == k.pub


def test_key_hash_is_sha256_of_raw_key() -> None:
    k = Key(2)
    assert key_hash(k.pub) == hashlib.sha256(k.pub).digest() == k.keyhash


def test_looks_like_key_text() -> None:
    assert looks_like_key_text(Key(1).pub.hex())
    assert looks_like_key_text(format_public_key(Key(1).pub))
    assert not looks_like_key_text("/etc/torfetch/sigsum.pub")
    assert not looks_like_key_text("~/keys/repo.pub")


@pytest.mark.parametrize("bad", [
    "", "\n", "abc", "00" * 31, "00" * 33, "zz" * 32,
    "ssh-rsa AAAAB3NzaC1yc2EAAAADAQABAAABAQ comment",
    "ssh-ed25519", "ssh-ed25519 !!!notbase64",
    # a valid blob of another type, and an Ed25519 blob one byte short or long
    "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x07ssh-rsa" + b"\x00" * 36).decode(),
    "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"\x01" * 31).decode(),
    "ssh-ed25519 " + base64.b64encode(b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20" + b"\x01" * 33).decode(),
])
def test_refused(bad: str) -> None:
    with pytest.raises(ConfigError, match="--sigsum-key"):
        parse_public_key(bad)


def test_two_keys_refused() -> None:
    text = format_public_key(Key(1).pub) + format_public_key(Key(2).pub)
    with pytest.raises(ConfigError, match="one key"):
        parse_public_key(text)


def test_binary_and_huge_refused() -> None:
    with pytest.raises(ConfigError):
        parse_public_key(b"\xff" * 40)
    with pytest.raises(ConfigError, match="8192"):
        parse_public_key(b"a" * 10000)
    with pytest.raises(ConfigError):
        parse_public_key("ssh-ed25519 AAAA\x00")
