"""Pinned rebuilder keys in every form rebuilderd and users write them, pure (no file is read)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.servers.rebuilderd import rebuilderd_pem
from torfetch.errors import ConfigError
from torfetch.verify.pinned_key import parse_pinned_key


def test_pinned_key_formats() -> None:
    k = Ed25519PrivateKey.generate()
    pem = rebuilderd_pem(k)
    raw = parse_pinned_key(pem)
    assert parse_pinned_key(raw.hex()) == raw
    for bad in ("nope", "zz" * 32, "MCowBQYDK2VwAyEA", "/etc/hostname"):  # no file is ever read here
        with pytest.raises(ConfigError):
            parse_pinned_key(bad)


def test_pinned_key_standard_spki_and_base64() -> None:
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


def test_broken_pem_block_is_a_config_error() -> None:
    pem = rebuilderd_pem(Ed25519PrivateKey.generate())
    for broken in (pem.replace("-----BEGIN", "----BEGIN"), pem.replace("-----END PUBLIC KEY-----", "")):
        with pytest.raises(ConfigError, match="BEGIN or END"):
            parse_pinned_key(broken)
