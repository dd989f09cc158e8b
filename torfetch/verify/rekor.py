"""Rekor v1 entries for minisign-signed packages: body reconstruction and full verification (pure).

The entry is a ``rekord`` v0.0.1 whose artifact is the 64 hex characters of the
package's sha256 (what pacman-bintrans-sign uploads). Rekor stores only the
signature line and the key line, as RFC 8785 canonical JSON; we rebuild that
body byte for byte, so the log is asked about exactly this signature, and
every field the log returns is checked, never trusted:

(1) the body is the one we built; (2) the UUID (entryID) is the 16-hex tree id
of the checkpoint's origin ``<name> - <decimal tree id>`` followed by the
leaf hash; (3) the
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
from collections.abc import Callable
from dataclasses import dataclass

from ..errors import CheckpointError, InclusionProofError, MalformedInputError, TransparencyLogError
from . import merkle
from .checkpoint import Checkpoint, LogKey, parse_origin, safe_text, verify_checkpoint
from .checkpoint import ascii_decimal
from .jsondoc import expect_dict, expect_field, loads_limited
from .logstate import LogInfo, ShardHead, TreeHead

MAX_ENTRY_BYTES = 256 * 1024
MAX_SHARDS = 64


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
    tree: int  # the shard: the UUID's 16-hex prefix, equal to the checkpoint origin's tree id
    origin_name: str  # the checkpoint origin before " - <tree id>"
    body: bytes = b""  # the canonical entry body the leaf hash was computed over

    @property
    def tree_id(self) -> str:
        return str(self.tree)


def _hex(value: object, what: str, length: int | None = 32) -> bytes:
    if not isinstance(value, str) or len(value) > 200:
        raise MalformedInputError(f"log entry: {what} is not a hex string")
    # bytes.fromhex also takes whitespace between bytes: any makes the text longer than twice the bytes
    try:
        raw = bytes.fromhex(value)
    except ValueError:
        raw = None
    if raw is None or 2 * len(raw) != len(value):
        raise MalformedInputError(f"log entry: {what} is not hex")
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


def parse_log_info(data: bytes, *, log_key: LogKey, max_bytes: int = MAX_ENTRY_BYTES) -> LogInfo:
    """``GET /api/v1/log``: the active tree and ``inactiveShards``, each signed tree head verified by ``log_key``.

    Every shard is ``{"treeID": "<decimal>", "treeSize": n, "rootHash": hex, "signedTreeHead": note}``;
    the note's origin must name the same tree, and its size and root must be the fields'.
    """
    doc = expect_dict(loads_limited(data, max_bytes=max_bytes, what="log info"), "log info")
    active = _shard(doc, log_key, "log info")
    raw_inactive = doc.get("inactiveShards") or []
    if not isinstance(raw_inactive, list) or len(raw_inactive) > MAX_SHARDS:
        raise MalformedInputError(f"log info: inactiveShards is not a list of at most {MAX_SHARDS} shards")
    inactive = tuple(_shard(expect_dict(s, "inactive shard"), log_key, "inactive shard") for s in raw_inactive)
    ids = [s.tree for s in (active, *inactive)]
    if len(set(ids)) != len(ids):
        raise MalformedInputError("log info lists a tree twice")
    return LogInfo(active, inactive)


def _shard(doc: dict, log_key: LogKey, what: str) -> ShardHead:
    tree_s = expect_field(doc, "treeID", str, what)
    tree = ascii_decimal(tree_s, max_digits=19)
    if tree is None or tree == 0:
        raise MalformedInputError(f"{what}: treeID {safe_text(tree_s)} is not a decimal tree id")
    size = expect_field(doc, "treeSize", int, what)
    root = _hex(expect_field(doc, "rootHash", str, what), f"{what} rootHash")
    checkpoint = verify_checkpoint(expect_field(doc, "signedTreeHead", str, what), log_key)
    name, cp_tree = parse_origin(checkpoint.origin)
    if cp_tree != tree or checkpoint.size != size or checkpoint.root_hash != root:
        raise CheckpointError(
            f"{what} of tree {tree} (size {size}, root {root.hex()}) does not match its signed tree head "
            f"(tree {cp_tree}, {checkpoint.describe()})")
    return ShardHead(tree, name, TreeHead(size, root))


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
    """A LogEntry as GET /api/v1/log/entries/<id> returns it: every check, the signed entry timestamp included."""
    uuid, entry = parse_entry_response(data)
    return verify_entry(uuid, entry, log_key=log_key, expected_body=expected_body)


def verify_entry(uuid: str, entry: dict, *, log_key: LogKey, expected_body: bytes | None = None,
                 checkpoint_verifier: Callable[[str], Checkpoint] | None = None,
                 check_set: bool = True) -> VerifiedEntry:
    """(1)-(6) below on one parsed entry. The monitor passes a caching ``checkpoint_verifier`` (same check,
    done once per checkpoint body) and, for entries it does not report, ``check_set=False``."""
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
    # (2) the UUID names this leaf, in a tree
    leaf = merkle.leaf_hash(body)
    if len(uuid) != 80 or uuid[-64:].lower() != leaf.hex():
        raise TransparencyLogError(
            f"log entry UUID {safe_text(uuid, 80)} is not a 16-hex tree id followed by the entry's leaf hash {leaf.hex()}")
    tree = uuid_tree(uuid[:16])
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
    checkpoint = checkpoint_verifier(note) if checkpoint_verifier is not None else verify_checkpoint(note, log_key)
    origin_name, origin_tree = parse_origin(checkpoint.origin)
    if origin_tree != tree:
        raise TransparencyLogError(
            f"log entry UUID names tree {tree} (0x{uuid[:16]}), but its checkpoint is of tree {origin_tree}",
            hint="the log mixed up its shards, or is presenting one tree's entry under another",
        )
    if checkpoint.size != tree_size or checkpoint.root_hash != root:
        raise InclusionProofError(
            f"the inclusion proof's tree (size {tree_size}, root {root.hex()}) is not the signed checkpoint's "
            f"({checkpoint.describe()})"
        )
    if log_index < shard_index:
        raise TransparencyLogError(f"global log index {log_index} is smaller than the shard index {shard_index}")
    if not check_set:
        return VerifiedEntry(uuid=uuid, log_index=log_index, shard_index=shard_index, integrated_time=integrated_time,
                             checkpoint=checkpoint, tree=tree, origin_name=origin_name, body=body)
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
                         checkpoint=checkpoint, tree=tree, origin_name=origin_name, body=body)


def uuid_tree(prefix: str) -> int:
    """The entryID's first 16 hex digits: the Trillian tree id, as a number."""
    if len(prefix) != 16 or not set(prefix.lower()) <= set("0123456789abcdef"):
        raise TransparencyLogError(f"log entry UUID prefix {safe_text(prefix)} is not 16 hex digits")
    tree = int(prefix, 16)
    if not 0 < tree < 2**63:
        raise TransparencyLogError(f"log entry UUID names tree {tree}, which is not a valid tree id")
    return tree
