"""What the monitor decides about log entries (pure): search/retrieve requests, streamed UUID lists, entry bodies.

A package's transparency entry is a ``rekord`` whose artifact is the 64 hex
characters of the package sha256, so the entry's ``spec.data.hash.value`` is
``sha256(hex sha256 of the package)``: ``artifact_hash`` computes it for every
db package, and an entry made with the operator's key whose artifact hash is
none of them is an alert (a signature over something the operator never
released: a stolen or coerced key). Rekor keeps no trusted comment, so the log
alone never tells which file that was.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from collections.abc import Container
from dataclasses import dataclass

from ..errors import MalformedInputError, TransparencyLogError
from .checkpoint import Checkpoint, LogKey, verify_checkpoint
from .rekor import verify_entry

MAX_UUIDS = 50_000_000
UUID_LENGTHS = (64, 80)
RETRIEVE_BATCH = 10  # Rekor's SearchLogQuery allows at most 10 entryUUIDs per request
MAX_RETRIEVE_BYTES = RETRIEVE_BATCH * 256 * 1024
OK, ALERT, FOREIGN = "ok", "alert", "foreign"
_HEX = frozenset(b"0123456789abcdefABCDEF")


def artifact_hash(package_sha256_hex: str) -> str:
    """The ``data.hash`` of the entry for a package with this sha256."""
    return hashlib.sha256(package_sha256_hex.lower().encode()).hexdigest()


def search_request(pub_file: bytes) -> bytes:
    """``POST /api/v1/index/retrieve`` body (SearchIndex): entries made with this minisign key."""
    return json.dumps({"publicKey": {"format": "minisign", "content": base64.b64encode(pub_file).decode()}}).encode()


def retrieve_request(uuids: list[str]) -> bytes:
    """``POST /api/v1/log/entries/retrieve`` body (SearchLogQuery)."""
    if not 0 < len(uuids) <= RETRIEVE_BATCH:
        raise ValueError("1 to 10 UUIDs per request")
    return json.dumps({"entryUUIDs": uuids}).encode()


class UuidListParser:
    """A JSON array of hex strings (the index search's answer), parsed as it streams: memory stays flat.

    Strict: only ``[``, ``]``, commas, whitespace and quoted hex of 64 or 80
    digits. Anything else is MalformedInputError.
    """

    def __init__(self, max_items: int = MAX_UUIDS) -> None:
        self.max_items = max_items
        self.count = 0
        self._state = 0  # 0 before '[', 1 expect value or ']', 2 in string, 3 expect ',' or ']', 4 done, 5 after ','
        self._cur = bytearray()

    def feed(self, chunk: bytes) -> list[str]:
        out: list[str] = []
        st = self._state
        cur = self._cur
        i, n = 0, len(chunk)
        while i < n:
            c = chunk[i]
            if st == 2:
                j = chunk.find(b'"', i)
                piece = chunk[i:] if j < 0 else chunk[i:j]
                if len(cur) + len(piece) > 80 or not _HEX.issuperset(piece):
                    raise MalformedInputError("the log's search answer has an entry that is not a UUID")
                cur += piece
                if j < 0:
                    break
                if len(cur) not in UUID_LENGTHS:
                    raise MalformedInputError(f"the log's search answer has a UUID of {len(cur)} characters")
                self.count += 1
                if self.count > self.max_items:
                    raise MalformedInputError(f"the log's search answer has more than {self.max_items} entries")
                out.append(cur.decode().lower())
                cur.clear()
                st = 3
                i = j + 1
                continue
            if c in b" \t\r\n":
                i += 1
                continue
            if st == 0 and c == 0x5B:  # [
                st = 1
            elif st in (1, 5) and c == 0x22:  # "
                st = 2
            elif st == 1 and c == 0x5D or st == 3 and c == 0x5D:  # ]
                st = 4
            elif st == 3 and c == 0x2C:  # ,
                st = 5
            elif st == 4 and c == 0x0A:
                pass
            else:
                raise MalformedInputError("the log's search answer is not a JSON list of UUIDs")
            i += 1
        self._state = st
        return out

    def finish(self) -> None:
        if self._state != 4:
            raise MalformedInputError("the log's search answer ended early (not a complete JSON list)")


def split_retrieve_response(data: bytes) -> list[tuple[str, dict]]:
    """``[{uuid: LogEntry}, ...]`` → (uuid, entry)."""
    # json.loads directly (size-capped; deep nesting ends in RecursionError): the generic depth pre-scan of
    # loads_limited is pure Python per byte, and this runs for every batch of ten entries
    if len(data) > MAX_RETRIEVE_BYTES:
        raise MalformedInputError(f"log entries answer is {len(data)} bytes, over the limit of {MAX_RETRIEVE_BYTES}")
    try:
        doc = json.loads(data)
    except (ValueError, RecursionError) as exc:
        raise MalformedInputError("the log's entries/retrieve answer is not JSON") from exc
    if not isinstance(doc, list) or len(doc) > RETRIEVE_BATCH * 2:
        raise MalformedInputError("the log's entries/retrieve answer is not a list of entries")
    out = []
    for item in doc:
        if not isinstance(item, dict):
            raise MalformedInputError("the log's entries/retrieve answer has a non-object item")
        for uuid, entry in item.items():
            if not isinstance(entry, dict):
                raise MalformedInputError("the log's entries/retrieve answer has a non-object entry")
            out.append((str(uuid).lower(), entry))
    return out


@dataclass(frozen=True)
class RekordSummary:
    """What a verified entry's body says: whose key, which artifact hash."""

    kind: str
    key_line: bytes | None  # base64("Ed" ‖ keyid ‖ pk) for a minisign rekord, else None
    artifact_hash: str | None

    def made_with(self, key_line: bytes) -> bool:
        return self.key_line is not None and self.key_line == key_line.strip()


def summarise_body(body: bytes) -> RekordSummary:
    """Read the (already verified) canonical body; never raises on a well-formed entry of another kind."""
    try:
        doc = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise MalformedInputError("log entry body is not JSON") from exc
    if not isinstance(doc, dict):
        raise MalformedInputError("log entry body is not a JSON object")
    kind = doc.get("kind") if isinstance(doc.get("kind"), str) else "?"
    spec = doc.get("spec")
    if kind != "rekord" or not isinstance(spec, dict):
        return RekordSummary(kind=kind[:40], key_line=None, artifact_hash=None)
    sig = spec.get("signature") if isinstance(spec.get("signature"), dict) else {}
    data = spec.get("data") if isinstance(spec.get("data"), dict) else {}
    h = data.get("hash") if isinstance(data.get("hash"), dict) else {}
    art = h.get("value") if h.get("algorithm") == "sha256" and isinstance(h.get("value"), str) else None
    key_line = None
    pk = sig.get("publicKey") if isinstance(sig.get("publicKey"), dict) else {}
    if sig.get("format") == "minisign" and isinstance(pk.get("content"), str):
        try:
            text = base64.b64decode(pk["content"], validate=True)
        except (binascii.Error, ValueError):
            text = b""
        lines = [ln.strip() for ln in text.replace(b"\r", b"").split(b"\n")
                 if ln.strip() and not ln.startswith(b"untrusted comment:")]
        key_line = lines[0] if len(lines) == 1 else None
    if art is not None and (len(art) != 64 or not _HEX.issuperset(art.encode())):
        art = None
    return RekordSummary(kind=kind, key_line=key_line, artifact_hash=art.lower() if art else None)


def classify(summary: RekordSummary, key_line: bytes, expected: "Container[str]") -> str:
    """ok: the operator's key over a package in a db; alert: the operator's key over anything else;
    foreign: not made with the operator's key (the index search answered loosely)."""
    if not summary.made_with(key_line):
        return FOREIGN
    if summary.artifact_hash is not None and summary.artifact_hash in expected:
        return OK
    return ALERT


# --- inclusion at scale ---------------------------------------------------------------------------


class CheckpointCache:
    """Checkpoint bodies already verified under the pinned key, so a batch of 10^6 entries costs one
    ECDSA verification per distinct tree head, not one per entry.

    Keyed by the signed *body* (origin, size, root), not by the signature: Rekor re-signs checkpoints on
    every read (randomized ECDSA), and a body whose authenticity is already established learns nothing
    from one more signature over it. Bounded; a miss is simply verified again.
    """

    def __init__(self, key: LogKey, max_items: int = 4096) -> None:
        self.key = key
        self.max_items = max_items
        self._bodies: dict[str, Checkpoint] = {}
        self.verifications = 0

    def verify(self, note: str) -> Checkpoint:
        sep = note.find("\n\n") if isinstance(note, str) else -1
        body = note[: sep + 1] if sep >= 0 else None
        if body is not None and body in self._bodies:
            return self._bodies[body]
        cp = verify_checkpoint(note, self.key)
        self.verifications += 1
        if body is not None:
            if len(self._bodies) >= self.max_items:
                self._bodies.clear()
            self._bodies[body] = cp
        return cp


@dataclass(frozen=True)
class IncludedEntry:
    uuid: str
    leaf: str
    body: bytes
    log_index: int  # global, as the entry states it (authenticated only by the SET)
    shard_index: int
    integrated_time: int  # as stated (authenticated only by the SET)
    checkpoint: Checkpoint
    tree: int  # the UUID's 16-hex prefix, equal to the checkpoint origin's tree id
    origin_name: str


def _hex32(value: object, what: str) -> bytes:
    if not isinstance(value, str) or len(value) != 64:
        raise MalformedInputError(f"log entry: {what} is not 64 hex digits")
    try:
        return bytes.fromhex(value)
    except ValueError as exc:
        raise MalformedInputError(f"log entry: {what} is not hex") from exc


def verify_inclusion(uuid: str, entry: dict, cache: CheckpointCache) -> IncludedEntry:
    """Everything ``verify.rekor.verify_entry`` checks (the same code: UUID and tree, logID, the RFC 9162
    inclusion proof to a checkpoint signed by the pinned key, cached per body, the origin's tree) except the
    signed entry timestamp, which the monitor verifies in full for every entry it reports."""
    if not isinstance(uuid, str):
        raise TransparencyLogError("log entry UUID is not a string")
    v = verify_entry(uuid, entry, log_key=cache.key, checkpoint_verifier=cache.verify, check_set=False)
    return IncludedEntry(uuid.lower(), uuid[-64:].lower(), v.body, v.log_index, v.shard_index, v.integrated_time,
                         v.checkpoint, v.tree, v.origin_name)


class ExpectedArtifacts:
    """The artifact hashes of every db package, compactly: 16-byte digest prefixes in a set (~90 bytes a
    package instead of ~300 for hex strings and filenames), so 10^6 packages fit in the monitor's budget.
    Finding a package whose artifact hash shares a 128-bit prefix with a released one is a second-preimage
    search of 2^128 / (number of packages) work."""

    def __init__(self) -> None:
        self._set: set[bytes] = set()

    def add_package(self, package_sha256_hex: str) -> None:
        self._set.add(bytes.fromhex(artifact_hash(package_sha256_hex))[:16])

    def __contains__(self, artifact_hex: object) -> bool:
        if not isinstance(artifact_hex, str) or len(artifact_hex) != 64:
            return False
        try:
            return bytes.fromhex(artifact_hex)[:16] in self._set
        except ValueError:
            return False

    def __len__(self) -> int:
        return len(self._set)
