"""in-toto v0.9 link attestations as rebuilderd signs them (Metablock, Ed25519): verification (pure).

A confirm from a rebuilder whose key the user pinned counts only with such an
attestation, signed by that key, for exactly the downloaded file. Formats:
``shared/notes/rebuilderd.md``.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import AttestationError, ConfigError
from .jsondoc import loads_limited

MAX_SIGNATURES = 64


def _check_cjson_value(obj: object, depth: int = 0) -> None:
    """in-toto-rs's canonical JSON has only i64/u64 numbers and valid UTF-8 strings."""
    if depth > 64:
        raise AttestationError("attestation is nested too deeply")
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, int):
        if not -(2**63) <= obj < 2**64:
            raise AttestationError("attestation has an integer out of range for canonical JSON")
        return
    if isinstance(obj, float):
        raise AttestationError("attestation has a floating-point number (not canonical JSON)")
    if isinstance(obj, str):
        return
    if isinstance(obj, list):
        for v in obj:
            _check_cjson_value(v, depth + 1)
        return
    if isinstance(obj, dict):
        for v in obj.values():
            _check_cjson_value(v, depth + 1)
        return
    raise AttestationError(f"attestation has an unexpected value ({type(obj).__name__})")


def in_toto_canonical(obj: object) -> bytes:
    """in-toto-rs canonical JSON: the bytes its Metablock signs and verifies.

    Keys sorted (by code point, which is UTF-8 byte order), no whitespace,
    strings escaped as serde_json does (``"``, ``\\``, ``\\n``, ``\\t``...,
    other control characters as ``\\u00xx``; non-ASCII raw), integers only.
    Then, as in-toto-rs does on the whole text, every ``\\n`` escape is turned
    back into a real newline; without that real signatures fail.
    """
    _check_cjson_value(obj)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.replace("\\n", "\n").encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from "\ud800"
        raise AttestationError("attestation has a string that is not valid Unicode") from exc


def ed25519_keyid(raw: bytes) -> str:
    """in-toto keyid: sha256 of the canonical JSON of the key (as in-toto-rs computes it)."""
    doc = {"keyid_hash_algorithms": ["sha256", "sha512"], "keytype": "ed25519",
           "keyval": {"public": raw.hex()}, "scheme": "ed25519"}
    return hashlib.sha256(in_toto_canonical(doc)).hexdigest()


@dataclass(frozen=True)
class AttestationCheck:
    keyid: str
    product_sha256: str


def verify_attestation(data: bytes, *, pinned_key: bytes, filename: str, sha256_hex: str,
                       max_bytes: int = 1024 * 1024) -> AttestationCheck:
    """Check a rebuilderd attestation against the pinned key and the downloaded file.

    (1) an in-toto Metablock ``{"signatures": [...], "signed": {...}}``;
    (2) one signature verifies under the pinned Ed25519 key over the canonical
        JSON of ``signed`` (every signature is tried: rebuilderd adds a worker
        key's, and a keyid is a hint, not a proof);
    (3) ``_type == "link"`` and ``name == "rebuild " + filename``;
    (4) ``products[filename].sha256`` is the downloaded file's sha256.
    Raises AttestationError (MalformedInputError for bytes that are not JSON).
    """
    doc = loads_limited(data, max_bytes=max_bytes, what="attestation")
    if not isinstance(doc, dict):
        raise AttestationError(f"attestation for {filename} is not an in-toto metablock")
    signed = doc.get("signed")
    sigs = doc.get("signatures")
    if not isinstance(signed, dict) or not isinstance(sigs, list) or not sigs:
        raise AttestationError(f"attestation for {filename} is not a signed in-toto metablock")
    if len(sigs) > MAX_SIGNATURES:
        raise AttestationError(f"attestation for {filename} has more than {MAX_SIGNATURES} signatures")
    if len(pinned_key) != 32:
        raise ConfigError("a pinned rebuilder key must be 32 bytes")
    keyid = ed25519_keyid(pinned_key)
    payload = in_toto_canonical(signed)
    pk = Ed25519PublicKey.from_public_bytes(pinned_key)
    # try the signature that names our key first, then every other one
    ordered = sorted((s for s in sigs if isinstance(s, dict)), key=lambda s: s.get("keyid") != keyid)
    ok = False
    for s in ordered:
        sig = s.get("sig")
        if not isinstance(sig, str) or len(sig) != 128:
            continue
        try:
            pk.verify(bytes.fromhex(sig), payload)
        except (InvalidSignature, ValueError):
            continue
        ok = True
        break
    if not ok:
        raise AttestationError(f"attestation for {filename} is not signed by the pinned key {keyid[:16]}…")
    if signed.get("_type") != "link":
        raise AttestationError(f"attestation for {filename} is not an in-toto link")
    if signed.get("name") != f"rebuild {filename}":
        shown = str(signed.get("name"))[:100]
        raise AttestationError(f"attestation is for {shown!r}, not 'rebuild {filename}'")
    products = signed.get("products")
    prod = products.get(filename) if isinstance(products, dict) else None
    digest = prod.get("sha256") if isinstance(prod, dict) else None
    if not isinstance(digest, str):
        raise AttestationError(f"attestation has no sha256 for the product {filename}")
    if digest.lower() != sha256_hex.lower():
        raise AttestationError(
            f"the rebuilt {filename} has sha256 {digest[:64]!r}, not the downloaded {sha256_hex}")
    return AttestationCheck(keyid, digest.lower())
