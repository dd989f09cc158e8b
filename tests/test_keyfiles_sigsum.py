"""--sigsum-key given the secret key file by mistake: told so, and which file to give instead."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from torfetch.errors import ConfigError
from torfetch.keyfiles import load_sigsum_key
from torfetch.operator.sigsum_common import load_public_key
from torfetch.verify.sigsum_key import format_public_key, parse_public_key


def _openssh_secret(k: Ed25519PrivateKey) -> bytes:
    return k.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.OpenSSH,
                           serialization.NoEncryption())


@pytest.mark.parametrize("loader", [load_sigsum_key, load_public_key], ids=["fetch", "monitor"])
def test_a_private_key_file_is_named_as_such_with_its_public_key(tmp_path: Path, loader) -> None:
    k = Ed25519PrivateKey.generate()
    secret = tmp_path / "submit.key"
    secret.write_bytes(_openssh_secret(k))
    (tmp_path / "submit.key.pub").write_text(format_public_key(
        k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)))
    with pytest.raises(ConfigError) as exc:
        loader(str(secret))
    msg = exc.value.message
    assert "this is a private key; give the public key" in msg and f"({secret}.pub)" in msg, msg
    assert "found" not in msg and "lines" not in msg
    assert loader(str(secret) + ".pub") == k.public_key().public_bytes(serialization.Encoding.Raw,
                                                                       serialization.PublicFormat.Raw)


def test_private_key_text_is_recognised_without_a_file() -> None:
    with pytest.raises(ConfigError, match="this is a private key; give the public key"):
        parse_public_key(_openssh_secret(Ed25519PrivateKey.generate()))
