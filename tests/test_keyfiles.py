"""--rebuilder-key URL=KEY, KEY inline or in a file read with a size cap."""

from __future__ import annotations

from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.servers.rebuilderd import rebuilderd_pem
from torfetch.errors import ConfigError
from torfetch.keyfiles import MAX_KEY_FILE_BYTES, load_pinned_key, parse_rebuilder_key
from torfetch.verify.pinned_key import parse_pinned_key


def test_parse_rebuilder_key(tmp_path: Path) -> None:
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


def test_key_file_is_read_with_a_cap_and_decoded_with_a_typed_error(tmp_path: Path) -> None:
    k = Ed25519PrivateKey.generate()
    raw = parse_pinned_key(rebuilderd_pem(k))
    (tmp_path / "hex").write_text(raw.hex() + "\n")
    assert load_pinned_key(str(tmp_path / "hex")) == raw
    (tmp_path / "big").write_text(rebuilderd_pem(k) + "#" * MAX_KEY_FILE_BYTES)
    with pytest.raises(ConfigError, match="larger than"):
        load_pinned_key(str(tmp_path / "big"))
    with pytest.raises(ConfigError, match="larger than"):
        load_pinned_key("/dev/zero")  # an endless file costs 8 KiB, not the machine's memory
    (tmp_path / "latin1").write_bytes(b"\xff" * 64)
    with pytest.raises(ConfigError, match="nor a readable file"):
        load_pinned_key(str(tmp_path / "latin1"))
    with pytest.raises(ConfigError, match="nor a readable file"):
        load_pinned_key(str(tmp_path / "missing"))
