"""Signed checkpoints (C2SP signed-note / tlog-checkpoint) as Rekor v1 writes them; pure.

    <origin>\n<size>\n<base64 root>\n[extension lines, e.g. "Timestamp: <ns>"]\n
    \n
    — <name> <base64(key hint[4] ‖ DER ECDSA signature)>\n   (one or more)

The key hint is the first 4 bytes of SHA-256 over the key's DER SPKI. The
signature is ECDSA P-256 / SHA-256 over the text up to and including the first
newline of the blank line. Lines from unknown keys are ignored; one valid line
from the pinned key is required.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

from ..errors import CheckpointError, ConfigError, MalformedInputError

MAX_CHECKPOINT_BYTES = 16 * 1024
MAX_SIG_LINES = 32
_DASH = "\u2014 "


@dataclass(frozen=True)
class LogKey:
    """A transparency log's ECDSA P-256 public key, pinned by the user."""

    public_key: ec.EllipticCurvePublicKey
    der: bytes

    @property
    def key_hint(self) -> bytes:
        return hashlib.sha256(self.der).digest()[:4]

    @property
    def log_id(self) -> str:
        """Rekor's logID: hex SHA-256 of the DER SPKI."""
        return hashlib.sha256(self.der).hexdigest()

    @classmethod
    def from_pem(cls, pem: bytes) -> "LogKey":
        try:
            key = serialization.load_pem_public_key(pem)
        except (ValueError, TypeError) as exc:
            raise ConfigError(f"log key is not a PEM public key: {exc}") from exc
        if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
            raise ConfigError("log key must be an ECDSA P-256 public key (as Rekor v1 uses)")
        der = key.public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        return cls(key, der)

    def verify(self, signature: bytes, data: bytes) -> bool:
        try:
            self.public_key.verify(signature, data, ec.ECDSA(hashes.SHA256()))
            return True
        except (InvalidSignature, ValueError):
            return False


@dataclass(frozen=True)
class Checkpoint:
    origin: str
    size: int
    root_hash: bytes
    extensions: tuple[str, ...]

    @property
    def tree_id(self) -> str:
        """Rekor's origin is '<host> - <treeID>'; the tree id names the shard."""
        _, sep, tid = self.origin.rpartition(" - ")
        return tid if sep and tid.isdigit() else ""

    def describe(self) -> str:
        return f"size {self.size}, root {self.root_hash.hex()}"


def parse_checkpoint_body(body: str) -> Checkpoint:
    lines = body.split("\n")
    # body ends with "\n" so the last element is ""
    if len(lines) < 4 or lines[-1] != "":
        raise MalformedInputError("malformed checkpoint: too few lines")
    origin, size_s, root_s, *ext = lines[:-1]
    if not origin or len(origin) > 512:
        raise MalformedInputError("malformed checkpoint: bad origin line")
    if not (size_s.isascii() and size_s.isdigit()) or len(size_s) > 20 or (size_s.startswith("0") and size_s != "0"):
        raise MalformedInputError("malformed checkpoint: invalid tree size")
    try:
        root = base64.b64decode(root_s, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedInputError("malformed checkpoint: root hash is not base64") from exc
    if len(root) != 32:
        raise MalformedInputError("malformed checkpoint: root hash is not 32 bytes")
    for e in ext:
        if not e:
            raise MalformedInputError("malformed checkpoint: empty extension line")
    return Checkpoint(origin, int(size_s), root, tuple(ext))


def verify_checkpoint(note: str | bytes, key: LogKey) -> Checkpoint:
    """Parse a signed note and require a valid signature line from ``key``."""
    if isinstance(note, bytes):
        if len(note) > MAX_CHECKPOINT_BYTES:
            raise MalformedInputError("checkpoint is too large")
        try:
            note = note.decode("utf-8")
        except UnicodeDecodeError as exc:
            raise MalformedInputError("checkpoint is not UTF-8") from exc
    if len(note) > MAX_CHECKPOINT_BYTES:
        raise MalformedInputError("checkpoint is too large")
    sep = note.find("\n\n")
    if sep < 0:
        raise MalformedInputError("malformed checkpoint: no blank line before the signatures")
    body = note[: sep + 1]
    checkpoint = parse_checkpoint_body(body)
    sig_lines = note[sep + 2 :].split("\n")
    if sig_lines and sig_lines[-1] == "":
        sig_lines.pop()
    if not sig_lines or len(sig_lines) > MAX_SIG_LINES:
        raise MalformedInputError("malformed checkpoint: no signature lines (or too many)")
    signed = body.encode("utf-8")
    for line in sig_lines:
        if not line.startswith(_DASH):
            raise MalformedInputError("malformed checkpoint: signature line does not start with an em dash")
        name, _, b64 = line[len(_DASH):].rpartition(" ")
        if not name:
            raise MalformedInputError("malformed checkpoint: signature line without a key name")
        try:
            raw = base64.b64decode(b64, validate=True)
        except (binascii.Error, ValueError) as exc:
            raise MalformedInputError("malformed checkpoint: signature is not base64") from exc
        if len(raw) < 5:
            raise MalformedInputError("malformed checkpoint: signature too short")
        if raw[:4] != key.key_hint:
            continue  # a witness or another key: tolerated, not trusted
        if key.verify(raw[4:], signed):
            return checkpoint
        raise CheckpointError(
            f"checkpoint ({checkpoint.describe()}) carries an invalid signature from the pinned log key"
        )
    raise CheckpointError(
        f"checkpoint ({checkpoint.describe()}) is not signed by the pinned log key (hint {key.key_hint.hex()})",
        hint="the log answered with another key: check --log-url / --log-key",
    )


def sign_checkpoint(checkpoint: Checkpoint, name: str, private_key: ec.EllipticCurvePrivateKey) -> str:
    """Produce a signed note (for the local test log and tests)."""
    body = f"{checkpoint.origin}\n{checkpoint.size}\n{base64.b64encode(checkpoint.root_hash).decode()}\n"
    body += "".join(e + "\n" for e in checkpoint.extensions)
    der = private_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    sig = private_key.sign(body.encode(), ec.ECDSA(hashes.SHA256()))
    hint = hashlib.sha256(der).digest()[:4]
    return body + "\n" + _DASH + name + " " + base64.b64encode(hint + sig).decode() + "\n"
