"""A pinned rebuilder key given as text or bytes → its 32 raw Ed25519 bytes (pure; key files: torfetch.keyfiles)."""

from __future__ import annotations

import base64
import binascii
import string

from ..errors import ConfigError

# Ed25519 SubjectPublicKeyInfo DER prefixes: RFC 8410's, and rebuilderd's with
# a NULL algorithm parameter (which `cryptography` refuses to load).
_SPKI_PREFIXES = (bytes.fromhex("302a300506032b6570032100"), bytes.fromhex("302c300706032b65700500032100"))


def looks_like_key_text(text: str) -> bool:
    """Key material rather than a file name: 64 hex digits, a PEM block, or base64 of an Ed25519 SPKI ("MC...")."""
    t = text.strip()
    return (len(t) == 64 and all(c in string.hexdigits for c in t)) or "BEGIN PUBLIC KEY" in t or t.startswith("MC")


def parse_pinned_key(text: str | bytes) -> bytes:
    """A pinned rebuilder key → 32 raw Ed25519 bytes. Raises ConfigError.

    Accepted:
      * 32 raw bytes (already parsed);
      * 64 hex digits: the raw Ed25519 public key;
      * a PEM ``PUBLIC KEY`` block, as rebuilderd serves at /api/v1/meta/public-keys
        (its non-standard SPKI with a NULL parameter, or the RFC 8410 one): the
        last 32 bytes of the DER are the key;
      * the base64 of such a DER (one line, as inside the PEM).
    """
    if isinstance(text, bytes):
        if len(text) != 32:
            raise ConfigError("a raw rebuilder key must be 32 bytes")
        return text
    t = text.strip()
    if len(t) == 64 and all(c in string.hexdigits for c in t):  # bytes.fromhex would also take spaces
        return bytes.fromhex(t)
    if "BEGIN PUBLIC KEY" in t:
        _, begin, rest = t.partition("-----BEGIN PUBLIC KEY-----")
        body, end, _ = rest.partition("-----END PUBLIC KEY-----")
        if not begin or not end:
            raise ConfigError("--rebuilder-key: the PEM block lacks its BEGIN or END line")
        t = "".join(body.split())
    try:
        der = base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"--rebuilder-key: cannot decode key {text[:40]!r}") from exc
    for prefix in _SPKI_PREFIXES:
        if der.startswith(prefix) and len(der) == len(prefix) + 32:
            return der[len(prefix):]
    raise ConfigError("--rebuilder-key: not an Ed25519 public key (SubjectPublicKeyInfo)")
