"""``--rebuilder-key URL=KEY``, where KEY may name a key file: read with a size cap, decoded with a typed error.

The key formats themselves are parsed in ``torfetch.verify.pinned_key`` (pure).
"""

from __future__ import annotations

import os
from typing import TYPE_CHECKING

from .errors import ConfigError
from .net.rebuilder_url import normalise_rebuilder_url
from .verify.pinned_key import looks_like_key_text, parse_pinned_key

if TYPE_CHECKING:
    from .verify.sigsum_policy import Policy

MAX_KEY_FILE_BYTES = 8192  # a PEM block is ~120 bytes; /dev/zero must not be read for ever


def load_pinned_key(text: str) -> bytes:
    """KEY as ``parse_pinned_key`` takes it, or a path to a file holding it. Raises ConfigError."""
    if looks_like_key_text(text):
        return parse_pinned_key(text)
    try:
        with open(os.path.expanduser(text.strip()), "rb") as f:
            data = f.read(MAX_KEY_FILE_BYTES + 1)
        if len(data) > MAX_KEY_FILE_BYTES:
            raise ConfigError(f"--rebuilder-key: {text[:80]!r} is larger than {MAX_KEY_FILE_BYTES} bytes: not a key file")
        content = data.decode("ascii")
    except (OSError, UnicodeError, ValueError) as exc:
        raise ConfigError(
            f"--rebuilder-key: {text[:80]!r} is neither 64 hex digits, a PEM/base64 Ed25519 key, nor a readable file"
        ) from exc
    return parse_pinned_key(content)


def parse_rebuilder_key(text: str) -> tuple[str, str]:
    """``URL=KEY`` (the --rebuilder-key value) → (normalised URL, 64 hex digits of the raw key).

    The split is at the first ``=`` (rebuilder URLs have no query; a base64
    key may end in ``=``). KEY is any form ``parse_pinned_key`` accepts: raw
    hex, a PEM block (rebuilderd's /api/v1/meta/public-keys format) or base64
    SPKI, or a file holding one. Raises ConfigError, so a bad key is a usage
    error before anything is fetched.
    """
    url, sep, key = text.partition("=")
    if not sep or not url.strip() or not key.strip():
        raise ConfigError(f"--rebuilder-key wants URL=KEY, got {text[:100]!r}")
    return normalise_rebuilder_url(url), load_pinned_key(key).hex()


def load_sigsum_key(text: str) -> bytes:
    """--sigsum-key KEY: an ``ssh-ed25519`` line, 64 hex digits, or a file holding one → 32 raw bytes. ConfigError."""
    from .localfile import read_local_file
    from .verify.sigsum_key import PRIVATE_KEY_MESSAGE, is_private_key, looks_like_key_text, parse_public_key

    if looks_like_key_text(text):
        return parse_public_key(text)
    f = read_local_file(text.strip(), what="--sigsum-key file", max_bytes=MAX_KEY_FILE_BYTES)
    if is_private_key(f.data):
        # the secret half (submit.key) where its public half (submit.key.pub) was meant: say which to give
        pub = f"{f.path}.pub" if f.path.suffix != ".pub" else "the ssh-ed25519 line sigsum-key generate wrote"
        raise ConfigError(f"--sigsum-key {f.path}: {PRIVATE_KEY_MESSAGE} ({pub})")
    try:
        return parse_public_key(f.data)
    except ConfigError as exc:
        raise ConfigError(f"{exc.message} (in {f.path})") from exc


def load_sigsum_policy(path: str | os.PathLike[str]) -> Policy:
    """--sigsum-policy FILE, read capped and parsed; every error a ConfigError naming the file."""
    from .errors import SigsumPolicyError
    from .localfile import read_local_file
    from .verify.sigsum_policy import MAX_POLICY_BYTES, parse_policy

    f = read_local_file(path, what="--sigsum-policy", max_bytes=MAX_POLICY_BYTES)
    try:
        return parse_policy(f.data)
    except SigsumPolicyError as exc:
        raise SigsumPolicyError(f"{f.path}: {exc.message}") from exc
