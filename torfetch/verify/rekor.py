"""Rekor v1 entries for minisign-signed packages: body reconstruction and full verification (pure).

The entry is a ``rekord`` v0.0.1 whose artifact is the 64 hex characters of the
package's sha256 (what pacman-bintrans-sign uploads). Rekor stores only the
signature line and the key line, as RFC 8785 canonical JSON; we rebuild that
body byte for byte, so the log is asked about exactly this signature, and
every field the log returns is checked, never trusted:

(1) the body is the one we built; (2) the UUID ends in its leaf hash; (3) the
inclusion proof (shard-local index) leads to the root; (4) that root and size
are in a checkpoint signed by the pinned key; (5) the signed entry timestamp
verifies over body, integratedTime, logID and the *global* logIndex; (6) logID
is the SHA-256 of the pinned key.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass

from ..errors import InclusionProofError, MalformedInputError, TransparencyLogError
from . import merkle
from .checkpoint import Checkpoint, LogKey, verify_checkpoint
from .jsondoc import expect_dict, expect_field, loads_limited

MAX_ENTRY_BYTES = 256 * 1024


def canonical_json(obj: object) -> bytes:
    """RFC 8785 for the values Rekor uses here (strings, integers, objects)."""
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def rekord_body(signature_line: bytes, key_line: bytes, artifact: bytes) -> bytes:
    """The canonical body Rekor stores for a minisign rekord.

    ``signature_line``: base64(alg ‖ keyid ‖ sig) as in the .t file;
    ``key_line``: base64("Ed" ‖ keyid ‖ pk); ``artifact``: the signed bytes
    (the 64 lowercase hex characters of the package sha256).
    """
    body = {
        "apiVersion": "0.0.1",
        "kind": "rekord",
        "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}},
            "signature": {
                "content": base64.b64encode(b"untrusted comment:\n" + signature_line.strip()).decode(),
                "format": "minisign",
                "publicKey": {"content": base64.b64encode(key_line.strip()).decode()},
            },
        },
    }
    return canonical_json(body)


def upload_request(signature_file: bytes, pub_file: bytes, artifact: bytes) -> bytes:
    """The POST /api/v1/log/entries body (the server hashes the artifact itself)."""
    return canonical_json({
        "apiVersion": "0.0.1",
        "kind": "rekord",
        "spec": {
            "data": {"content": base64.b64encode(artifact).decode()},
            "signature": {
                "content": base64.b64encode(signature_file).decode(),
                "format": "minisign",
                "publicKey": {"content": base64.b64encode(pub_file).decode()},
            },
        },
    })


@dataclass(frozen=True)
class VerifiedEntry:
    uuid: str
    log_index: int  # global
    shard_index: int  # inclusion proof's, shard-local
    integrated_time: int
    checkpoint: Checkpoint

    @property
    def tree_id(self) -> str:
        return self.checkpoint.tree_id


def _hex(value: object, what: str, length: int | None = 32) -> bytes:
    if not isinstance(value, str) or len(value) > 200:
        raise MalformedInputError(f"log entry: {what} is not a hex string")
    try:
        raw = bytes.fromhex(value)
    except ValueError as exc:
        raise MalformedInputError(f"log entry: {what} is not hex") from exc
    if length is not None and len(raw) != length:
        raise MalformedInputError(f"log entry: {what} has {len(raw)} bytes, expected {length}")
    return raw


def parse_consistency_proof(data: bytes, *, max_bytes: int = MAX_ENTRY_BYTES) -> list[bytes]:
    """``{"rootHash": hex, "hashes": [hex, ...]}`` as GET /api/v1/log/proof returns it."""
    doc = expect_dict(loads_limited(data, max_bytes=max_bytes, what="consistency proof"), "consistency proof")
    hashes = expect_field(doc, "hashes", list, "consistency proof")
    if len(hashes) > merkle.MAX_PROOF_HASHES:
        raise MalformedInputError("consistency proof is too long")
    return [_hex(h, "consistency proof hash") for h in hashes]


def parse_entry_response(data: bytes) -> tuple[str, dict]:
    """``{"<uuid>": {...}}`` as GET /api/v1/log/entries/<uuid> returns it (a list of one is tolerated)."""
    doc = loads_limited(data, max_bytes=MAX_ENTRY_BYTES, what="log entry")
    if isinstance(doc, list) and len(doc) == 1:
        doc = doc[0]
    doc = expect_dict(doc, "log entry")
    if len(doc) != 1:
        raise MalformedInputError(f"log entry: expected exactly one entry, got {len(doc)}")
    uuid, entry = next(iter(doc.items()))
    return uuid, expect_dict(entry, "log entry")


def verify_log_entry(data: bytes, *, log_key: LogKey, expected_body: bytes | None = None) -> VerifiedEntry:
    uuid, entry = parse_entry_response(data)
    w = "log entry"
    body_b64 = expect_field(entry, "body", str, w)
    integrated_time = expect_field(entry, "integratedTime", int, w)
    log_id = expect_field(entry, "logID", str, w)
    log_index = expect_field(entry, "logIndex", int, w)
    verification = expect_dict(expect_field(entry, "verification", dict, w), "verification")
    try:
        body = base64.b64decode(body_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedInputError("log entry: body is not base64") from exc

    # (1) exactly the entry we asked about
    if expected_body is not None and body != expected_body:
        raise TransparencyLogError(
            "the log returned an entry for a different signature, key or package hash",
            hint="the log (or someone in between) answered with another entry",
        )
    # (2) the UUID names this leaf
    leaf = merkle.leaf_hash(body)
    if not isinstance(uuid, str) or len(uuid) not in (64, 80) or uuid[-64:].lower() != leaf.hex():
        raise TransparencyLogError(f"log entry UUID {uuid[:80]!r} does not match the entry's leaf hash {leaf.hex()}")
    # (6) logID is the pinned key
    if log_id.lower() != log_key.log_id:
        raise TransparencyLogError(f"log entry names log {log_id[:64]!r}, but the pinned key is log {log_key.log_id}")
    # (3) + (4) inclusion proof to a root in a signed checkpoint
    proof = expect_dict(expect_field(verification, "inclusionProof", dict, "verification"), "inclusionProof")
    p = "inclusionProof"
    shard_index = expect_field(proof, "logIndex", int, p)
    tree_size = expect_field(proof, "treeSize", int, p)
    root = _hex(expect_field(proof, "rootHash", str, p), "rootHash")
    hashes_raw = expect_field(proof, "hashes", list, p)
    if len(hashes_raw) > merkle.MAX_PROOF_HASHES:
        raise InclusionProofError("inclusion proof is too long")
    hashes = [_hex(h, "proof hash") for h in hashes_raw]
    note = expect_field(proof, "checkpoint", str, p)
    merkle.verify_inclusion(shard_index, tree_size, leaf, hashes, root)
    checkpoint = verify_checkpoint(note, log_key)
    if checkpoint.size != tree_size or checkpoint.root_hash != root:
        raise InclusionProofError(
            f"the inclusion proof's tree (size {tree_size}, root {root.hex()}) is not the signed checkpoint's "
            f"({checkpoint.describe()})"
        )
    if log_index < shard_index:
        raise TransparencyLogError(f"global log index {log_index} is smaller than the shard index {shard_index}")
    # (5) signed entry timestamp over the global index
    set_b64 = expect_field(verification, "signedEntryTimestamp", str, "verification")
    try:
        set_sig = base64.b64decode(set_b64, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise MalformedInputError("log entry: signedEntryTimestamp is not base64") from exc
    payload = canonical_json({"body": body_b64, "integratedTime": integrated_time, "logID": log_id, "logIndex": log_index})
    if not log_key.verify(set_sig, payload):
        raise TransparencyLogError(f"signed entry timestamp of log entry {log_index} does not verify under the pinned log key")
    return VerifiedEntry(uuid=uuid, log_index=log_index, shard_index=shard_index, integrated_time=integrated_time,
                         checkpoint=checkpoint)
