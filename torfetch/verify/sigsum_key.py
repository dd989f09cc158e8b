"""Sigsum public keys (a submitter's, as --sigsum-key takes it) → 32 raw Ed25519 bytes (pure).

Sigsum keys are OpenSSH ``ssh-ed25519`` lines as ``sigsum-key generate`` writes
them (``ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAI… sigsum key``), optionally
preceded by a ``sigsum-policy="name"`` option, or the 64 hex digits
``sigsum-key to-hex`` prints. Reading a key *file* is the caller's job
(torfetch.keyfiles); this module takes its content.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import re
import string

from ..errors import ConfigError

MAX_KEY_TEXT = 8192  # a key line is ~100 characters
# the SSH wire blob of an Ed25519 key: string "ssh-ed25519", then string of 32 bytes (RFC 8709)
_SSH_PREFIX = b"\x00\x00\x00\x0bssh-ed25519\x00\x00\x00\x20"


def key_hash(pub: bytes) -> bytes:
    """Sigsum's keyhash: sha256 of the 32 raw key bytes (names logs, witnesses and submitters)."""
    return hashlib.sha256(pub).digest()


PRIVATE_KEY_MARKER = "-----BEGIN OPENSSH PRIVATE KEY-----"  # what sigsum-key generate writes to the secret file
PRIVATE_KEY_MESSAGE = "this is a private key; give the public key"
_PEM_PRIVATE = re.compile(r"-----BEGIN [A-Z0-9 ]*PRIVATE KEY-----")


def is_private_key(text: str | bytes) -> bool:
    """A (PEM-armoured) private key, OpenSSH's as ``sigsum-key generate`` writes it or any other."""
    t = text.decode("ascii", "replace") if isinstance(text, bytes) else text
    return PRIVATE_KEY_MARKER in t or bool(_PEM_PRIVATE.search(t))


def _is_hex_key(t: str) -> bool:
    return len(t) == 64 and all(c in string.hexdigits for c in t)


def looks_like_key_text(text: str) -> bool:
    """Key material rather than a file name: 64 hex digits or an ``ssh-ed25519`` line."""
    t = text.strip()
    return _is_hex_key(t) or "ssh-ed25519 " in t or "ssh-ed25519\t" in t


def _parse_ssh_line(line: str) -> bytes:
    fields = line.replace("\t", " ").split(" ")
    fields = [f for f in fields if f]
    if fields and fields[0].startswith("sigsum-policy="):
        fields = fields[1:]  # sigsum-go's per-key policy name: meaningless here, the policy comes from --sigsum-policy
    if len(fields) < 2 or fields[0] != "ssh-ed25519":
        kind = fields[0][:30] if fields else ""
        raise ConfigError(f"--sigsum-key: not an ssh-ed25519 key line (key type {kind!r})")
    try:
        blob = base64.b64decode(fields[1], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError("--sigsum-key: the ssh-ed25519 key's base64 does not decode") from exc
    if not blob.startswith(_SSH_PREFIX) or len(blob) != len(_SSH_PREFIX) + 32:
        raise ConfigError("--sigsum-key: the ssh-ed25519 key blob is not a 32-byte Ed25519 key")
    return blob[len(_SSH_PREFIX):]


def parse_public_key(text: str | bytes) -> bytes:
    """An OpenSSH ``ssh-ed25519`` line or 64 hex digits (str, or a key file's bytes) → 32 raw bytes.

    Blank lines and ``#`` comment lines around the key are skipped; more than
    one key is refused (which one would be meant?). Raises ConfigError.
    """
    if is_private_key(text[:MAX_KEY_TEXT]):
        raise ConfigError(f"--sigsum-key: {PRIVATE_KEY_MESSAGE} (the .pub file beside it)")
    if isinstance(text, bytes):
        if len(text) > MAX_KEY_TEXT:
            raise ConfigError(f"--sigsum-key: more than {MAX_KEY_TEXT} bytes: not a key")
        try:
            text = text.decode("ascii")
        except UnicodeDecodeError as exc:
            raise ConfigError("--sigsum-key: the key is not ASCII text") from exc
    if len(text) > MAX_KEY_TEXT:
        raise ConfigError(f"--sigsum-key: more than {MAX_KEY_TEXT} characters: not a key")
    lines = [ln.strip() for ln in text.replace("\r\n", "\n").split("\n")]
    lines = [ln for ln in lines if ln and not ln.startswith("#")]
    if len(lines) != 1:
        raise ConfigError(f"--sigsum-key: expected one key, found {len(lines)} lines")
    line = lines[0]
    if _is_hex_key(line):
        return bytes.fromhex(line)
    if not line.isascii() or not line.replace("\t", " ").isprintable():
        raise ConfigError("--sigsum-key: the key contains control or non-ASCII characters")
    return _parse_ssh_line(line)


def format_public_key(pub: bytes, comment: str = "sigsum key") -> str:
    """The OpenSSH line ``sigsum-key`` writes for ``pub`` (for messages, tests and operator tools)."""
    blob = _SSH_PREFIX + pub
    return f"ssh-ed25519 {base64.b64encode(blob).decode()} {comment}\n"
