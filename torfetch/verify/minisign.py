"""minisign public keys and signatures: parse with limits, verify, sanitise.

Our own verifier on ``cryptography`` rather than py-minisign's: we need size
limits, a typed result, key-id mismatch messages that name both ids, and a
trusted comment that is never printed raw. Formats (minisign 0.11):

* key:        base64("Ed" ‖ keyid[8] ‖ ed25519_pk[32])
* signature:  untrusted comment line, base64(alg[2] ‖ keyid[8] ‖ sig[64]),
              "trusted comment: <text>", base64(global_sig[64])
* alg "Ed": Ed25519 over the message (legacy); "ED": over BLAKE2b-512(message).
* global signature: Ed25519 over sig[64] ‖ trusted-comment bytes.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import MalformedInputError, SignatureError

MAX_SIGNATURE_BYTES = 1024  # pacman-bintrans's cap on a .t file
MAX_KEY_BYTES = 1024
_TRUSTED_PREFIX = b"trusted comment: "
_UNTRUSTED_PREFIX = b"untrusted comment:"


def _b64(data: bytes, what: str, length: int) -> bytes:
    try:
        raw = base64.b64decode(data.strip(), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedInputError(f"{what} is not valid base64") from exc
    if len(raw) != length:
        raise MalformedInputError(f"{what} has {len(raw)} bytes, expected {length}")
    return raw


def sanitise(text: str | bytes, max_len: int = 200) -> str:
    """Make untrusted text safe for one terminal line (no control chars, bounded)."""
    if isinstance(text, bytes):
        text = text.decode("utf-8", "replace")
    out = "".join(ch if ch.isprintable() else "?" for ch in text)
    return out if len(out) <= max_len else out[: max_len - 1] + "…"


@dataclass(frozen=True)
class PublicKey:
    key_id: bytes  # 8 bytes, as stored (little-endian in minisign's display)
    raw: bytes  # 32-byte Ed25519 public key

    @property
    def key_id_hex(self) -> str:
        # minisign displays the key id as the little-endian 64-bit number in hex
        return self.key_id[::-1].hex().upper()

    def key_line(self) -> bytes:
        """The base64 line as in a .pub file: what Rekor stores as publicKey."""
        return base64.b64encode(b"Ed" + self.key_id + self.raw)

    def pub_file(self) -> bytes:
        return b"untrusted comment: minisign public key " + self.key_id_hex.encode() + b"\n" + self.key_line() + b"\n"

    @classmethod
    def parse(cls, text: str | bytes) -> "PublicKey":
        """Accept the bare base64 line (``--pubkey RWS...``) or a whole .pub file."""
        if isinstance(text, str):
            if len(text) > MAX_KEY_BYTES:
                raise MalformedInputError("minisign public key is too long")
            try:
                data = text.encode("utf-8")
            except UnicodeEncodeError as exc:  # undecodable argv bytes arrive as lone surrogates
                raise MalformedInputError("minisign public key is not valid text") from exc
        else:
            data = text
        if len(data) > MAX_KEY_BYTES:
            raise MalformedInputError("minisign public key is too long")
        lines = [ln.strip() for ln in data.replace(b"\r", b"").split(b"\n") if ln.strip()]
        if lines and lines[0].startswith(_UNTRUSTED_PREFIX):
            lines = lines[1:]
        if len(lines) != 1:
            raise MalformedInputError("minisign public key must be one base64 line (optionally after an untrusted comment)")
        raw = _b64(lines[0], "minisign public key", 42)
        if raw[:2] != b"Ed":
            raise MalformedInputError(f"minisign public key has unknown algorithm {raw[:2]!r}")
        return cls(key_id=raw[2:10], raw=raw[10:])


@dataclass(frozen=True)
class Signature:
    algorithm: bytes  # b"Ed" legacy or b"ED" prehashed
    key_id: bytes
    signature: bytes  # 64 bytes
    trusted_comment: bytes
    global_signature: bytes
    untrusted_comment: bytes

    @property
    def key_id_hex(self) -> str:
        return self.key_id[::-1].hex().upper()

    @property
    def prehashed(self) -> bool:
        return self.algorithm == b"ED"

    def signature_line(self) -> bytes:
        """base64(alg ‖ keyid ‖ sig): the part Rekor stores and checks."""
        return base64.b64encode(self.algorithm + self.key_id + self.signature)

    def trusted_comment_text(self) -> str:
        return sanitise(self.trusted_comment)

    @classmethod
    def parse(cls, data: bytes, *, max_bytes: int = MAX_SIGNATURE_BYTES) -> "Signature":
        if len(data) > max_bytes:
            raise MalformedInputError(f"signature file is {len(data)} bytes, over the limit of {max_bytes}")
        # minisign tolerates CRLF and a missing final newline
        lines = data.replace(b"\r\n", b"\n").split(b"\n")
        if lines and lines[-1] == b"":
            lines.pop()
        if len(lines) != 4:
            raise MalformedInputError(f"signature file has {len(lines)} lines, expected 4")
        untrusted, sig_line, trusted, global_line = lines
        if not untrusted.startswith(_UNTRUSTED_PREFIX):
            raise MalformedInputError("signature file does not start with 'untrusted comment:'")
        raw = _b64(sig_line, "signature line", 74)
        alg = raw[:2]
        if alg not in (b"Ed", b"ED"):
            raise MalformedInputError(f"signature uses unknown algorithm {sanitise(alg)!r}")
        if not trusted.startswith(_TRUSTED_PREFIX):
            raise MalformedInputError("signature file lacks the 'trusted comment:' line")
        glob = _b64(global_line, "global signature", 64)
        return cls(
            algorithm=alg,
            key_id=raw[2:10],
            signature=raw[10:],
            trusted_comment=trusted[len(_TRUSTED_PREFIX):],
            global_signature=glob,
            untrusted_comment=untrusted,
        )


def verify(pubkey: PublicKey, sig: Signature, message: bytes, *, subject: str) -> None:
    """Check key id, the signature over ``message`` and the global signature.

    ``subject`` names the file in error messages. Raises SignatureError.
    """
    if sig.key_id != pubkey.key_id:
        raise SignatureError(
            f"signature for {subject} was made by key {sig.key_id_hex}, expected {pubkey.key_id_hex}",
            hint="check --pubkey, or whether the repository operator rotated keys",
        )
    pk = Ed25519PublicKey.from_public_bytes(pubkey.raw)
    signed = hashlib.blake2b(message, digest_size=64).digest() if sig.prehashed else message
    try:
        pk.verify(sig.signature, signed)
    except InvalidSignature as exc:
        raise SignatureError(
            f"signature for {subject} does not match the downloaded file (key {pubkey.key_id_hex})",
            hint="the package, or its transparency signature, was altered",
        ) from exc
    try:
        pk.verify(sig.global_signature, sig.signature + sig.trusted_comment)
    except InvalidSignature as exc:
        raise SignatureError(f"trusted comment of the signature for {subject} was altered (global signature invalid)") from exc
