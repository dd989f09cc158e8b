"""A local Rekor v1 API server with real formats and real cryptography (tests and demo only).

RFC 6962 trees over canonical rekord bodies, ECDSA P-256 signed checkpoints
(signed notes, origin ``<name> - <tree id>``), signed entry timestamps,
consistency proofs per tree, and shards as Rekor has them: frozen (inactive)
trees before the active one, so the global logIndex differs from the inclusion
proof's shard-local index, ``GET /api/v1/log`` lists ``inactiveShards``, and
``rotate()`` freezes the active tree and starts a new one. Uploads are checked
the way Rekor checks them (the minisign signature over the artifact, legacy or
prehashed). Switches make it lie in the ways a log could.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from tests.servers.base import Handler, Serving, make_httpd
from torfetch.verify import merkle
from torfetch.verify.checkpoint import Checkpoint, sign_checkpoint


def _canon(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def _der(key: ec.EllipticCurvePrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)


@dataclass
class Misbehaviour:
    slow_seconds: float = 0.0
    huge: bool = False
    bad_set: bool = False
    checkpoint_key: ec.EllipticCurvePrivateKey | None = None  # sign checkpoints with another key
    proof_for_other_entry: bool = False
    wrong_body: bool = False
    wrong_log_id: bool = False
    present_size: int | None = None  # show only a prefix of the tree (rolled back)
    proofs_from_full_tree: bool = False  # ...but prove from the full tree (a lagging read replica)
    forked: bool = False  # a different history: leaf 0 replaced
    bad_consistency: bool = False
    refuse_uploads: bool = False
    accept_uploads_without_storing: bool = False  # says 201, never stores: a lying upload
    extra_checkpoint_lines: list[str] = field(default_factory=list)
    present_tree_id: int | None = None  # show the active tree's entries under another tree id (a fork's new "shard")
    origin: str | None = None  # checkpoint origin instead of "<name> - <tree id>"
    hide_inactive: bool = False  # GET /api/v1/log lists no inactive shards
    frozen_forked: bool = False  # frozen trees' final heads (and their proofs) over a different history
    upload_into: int | None = None  # append uploads to this (possibly frozen) tree


@dataclass
class Shard:
    tree_id: int
    bodies: list[bytes]
    times: list[int]
    final_size: int | None = None  # set when frozen


class RekorServer(Serving):
    def __init__(self, *, host: str = "127.0.0.1", port: int = 0, inactive_shard_size: int = 1000,
                 tree_id: int = 3904496407287907110, key: ec.EllipticCurvePrivateKey | None = None,
                 origin_host: str = "rekor.test") -> None:
        self.key = key or ec.generate_private_key(ec.SECP256R1())
        self.log_id = hashlib.sha256(_der(self.key)).hexdigest()
        self.origin_host = origin_host
        self.lie = Misbehaviour()
        self.requests: list[tuple[str, str]] = []
        self._lock = threading.Lock()
        self._leaf_cache: dict[bytes, bytes] = {}
        # a frozen shard first (real filler), so global and shard-local indexes differ
        old = Shard(1, [], [])
        for i in range(inactive_shard_size):
            self._append(old, _canon({"apiVersion": "0.0.1", "kind": "rekord", "spec": {"old-shard-filler": i}}))
        old.final_size = len(old.bodies)
        self.shards = [old, Shard(tree_id, [], [])]
        # some unrelated entries first, so proofs are not trivial
        for i in range(5):
            self._append(self.active, _canon({"apiVersion": "0.0.1", "kind": "rekord", "spec": {"filler": i}}))
        self._httpd = make_httpd(host, port, self._dispatch)

    # -- public helpers ------------------------------------------------------------

    @property
    def url(self) -> str:
        return self.base_url

    @property
    def active(self) -> Shard:
        return self.shards[-1]

    @property
    def tree_id(self) -> int:
        return self.active.tree_id

    @property
    def bodies(self) -> list[bytes]:
        return self.active.bodies

    @property
    def offset(self) -> int:
        """Global index of the active tree's first entry."""
        return self._offset(self.active)

    @property
    def origin(self) -> str:
        return f"{self.origin_host} - {self.tree_id}"

    @property
    def public_key_pem(self) -> bytes:
        return self.key.public_key().public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def add_filler(self, n: int, shard: Shard | None = None) -> None:
        with self._lock:
            sh = shard or self.active
            for _ in range(n):
                self._append(sh, _canon({"apiVersion": "0.0.1", "kind": "rekord",
                                         "spec": {"filler": len(sh.bodies), "tree": sh.tree_id}}))

    def rotate(self, new_tree_id: int) -> Shard:
        """Freeze the active tree at its current size and start an empty one, as a Rekor shard rotation does."""
        with self._lock:
            old = self.active
            old.final_size = len(old.bodies)
            self.shards.append(Shard(new_tree_id, [], []))
            return old

    def shard(self, tree_id: int) -> Shard:
        return next(s for s in self.shards if s.tree_id == tree_id)

    # -- trees ---------------------------------------------------------------------------

    def _append(self, shard: Shard, body: bytes) -> int:
        shard.bodies.append(body)
        shard.times.append(int(time.time()))
        return len(shard.bodies) - 1

    def _offset(self, shard: Shard) -> int:
        total = 0
        for s in self.shards:
            if s is shard:
                return total
            total += s.final_size if s.final_size is not None else len(s.bodies)
        raise KeyError(shard.tree_id)

    def _leaf(self, body: bytes) -> bytes:
        h = self._leaf_cache.get(body)
        if h is None:
            h = self._leaf_cache[body] = merkle.leaf_hash(body)
        return h

    def _leaves(self, shard: Shard | None = None, *, full: bool = False) -> list[bytes]:
        """What the log presents of a tree (the active one by default), lies applied."""
        shard = shard or self.active
        leaves = [self._leaf(b) for b in shard.bodies]
        if shard is self.active:
            if self.lie.forked and leaves:
                leaves[0] = merkle.leaf_hash(b"a different history")
            if self.lie.present_size is not None and not full:
                leaves = leaves[: self.lie.present_size]
        elif self.lie.frozen_forked and leaves:
            leaves[0] = merkle.leaf_hash(b"a different frozen history")
        return leaves

    def _final_leaves(self, shard: Shard) -> list[bytes]:
        leaves = self._leaves(shard)
        return leaves if shard.final_size is None else leaves[: shard.final_size]

    def _shown_id(self, shard: Shard) -> int:
        if shard is self.active and self.lie.present_tree_id is not None:
            return self.lie.present_tree_id
        return shard.tree_id

    def _checkpoint(self, size: int, root: bytes, shard: Shard | None = None, *, tree_id: int | None = None) -> str:
        origin = self.lie.origin or f"{self.origin_host} - {tree_id or self._shown_id(shard or self.active)}"
        cp = Checkpoint(origin, size, root, tuple(self.lie.extra_checkpoint_lines))
        note = sign_checkpoint(cp, self.origin_host, self.lie.checkpoint_key or self.key)
        # a witness's line from an unknown key: clients must tolerate it
        witness = ec.generate_private_key(ec.SECP256R1())
        other = sign_checkpoint(cp, "witness.test", witness).split("\n\n", 1)[1]
        return note + other

    def _entry(self, idx: int, shard: Shard | None = None) -> dict:
        shard = shard or self.active
        leaves = self._leaves(shard)
        size = len(leaves)
        body = shard.bodies[idx]
        if self.lie.wrong_body:
            body = shard.bodies[(idx + 1) % len(shard.bodies)]
        proof_idx = idx
        if self.lie.proof_for_other_entry:
            proof_idx = (idx + 1) % size
        proof = merkle.inclusion_proof(proof_idx, leaves)
        root = merkle.root_of(leaves)
        body_b64 = base64.b64encode(body).decode()
        log_id = self.log_id if not self.lie.wrong_log_id else "00" * 32
        global_index = self._offset(shard) + idx
        set_payload = _canon({"body": body_b64, "integratedTime": shard.times[idx], "logID": log_id, "logIndex": global_index})
        sig = self.key.sign(set_payload, ec.ECDSA(hashes.SHA256()))
        if self.lie.bad_set:
            sig = self.key.sign(set_payload + b" ", ec.ECDSA(hashes.SHA256()))
        uuid = f"{self._shown_id(shard):016x}" + self._leaf(shard.bodies[idx]).hex()
        return {uuid: {
            "body": body_b64, "integratedTime": shard.times[idx], "logID": log_id, "logIndex": global_index,
            "verification": {
                "inclusionProof": {"logIndex": idx, "treeSize": size, "rootHash": root.hex(),
                                   "hashes": [h.hex() for h in proof], "checkpoint": self._checkpoint(size, root, shard)},
                "signedEntryTimestamp": base64.b64encode(sig).decode(),
            },
        }}

    def _shard_info(self, shard: Shard) -> dict:
        leaves = self._final_leaves(shard)
        root = merkle.root_of(leaves)
        return {"rootHash": root.hex(), "treeSize": len(leaves), "treeID": str(shard.tree_id),
                "signedTreeHead": self._checkpoint(len(leaves), root, tree_id=shard.tree_id)}

    def _log_info(self) -> dict:
        info = self._shard_info(self.active)
        info["inactiveShards"] = [] if self.lie.hide_inactive else [self._shard_info(s) for s in reversed(self.shards[:-1])]
        return info

    # -- HTTP ----------------------------------------------------------------------------

    def _send(self, h: http.server.BaseHTTPRequestHandler, code: int, obj: object, headers: dict[str, str] | None = None) -> None:
        data = json.dumps(obj).encode() if not isinstance(obj, bytes) else obj
        if self.lie.huge:
            data = b'{"pad":"' + b"x" * (8 * 1024 * 1024) + b'"}'
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        for k, v in (headers or {}).items():
            h.send_header(k, v)
        h.end_headers()
        try:
            h.wfile.write(data)
        except OSError:
            pass

    def _dispatch(self, h: Handler, method: str) -> None:
        parts = urllib.parse.urlsplit(h.path)
        path, query = parts.path, urllib.parse.parse_qs(parts.query)
        body = b""
        if method == "POST":
            n = int(h.headers.get("Content-Length") or 0)
            body = h.rfile.read(min(n, 1 << 20))
        with self._lock:
            self.requests.append((method, path))
        if self.lie.slow_seconds:
            time.sleep(self.lie.slow_seconds)
        with self._lock:
            if method == "POST" and path == "/api/v1/log/entries":
                return self._post_entry(h, body)
            if method == "GET" and path.startswith("/api/v1/log/entries/"):
                return self._get_entry(h, path.rsplit("/", 1)[1].lower())
            if method == "GET" and path == "/api/v1/log":
                return self._send(h, 200, self._log_info())
            if method == "GET" and path == "/api/v1/log/proof":
                return self._proof(h, query)
            if method == "GET" and path == "/api/v1/log/publicKey":
                return self._send(h, 200, self.public_key_pem)
            if method == "POST" and path in ("/api/v1/index/retrieve", "/api/v1/log/entries/retrieve"):
                return self._search(h, path, body)  # the monitor's endpoints (operator tools)
        return self._send(h, 404, {"code": 404, "message": "not found"})

    # -- search, for the monitor: POST /api/v1/index/retrieve (SearchIndex by public key) and
    # POST /api/v1/log/entries/retrieve (SearchLogQuery, at most 10 entryUUIDs or logIndexes) ----------

    #: leaf hashes the index search leaves out (Rekor documents the index as possibly incomplete)
    index_hidden: frozenset[str] = frozenset()

    def _search(self, h: http.server.BaseHTTPRequestHandler, path: str, raw: bytes) -> None:
        try:
            req = json.loads(raw)
            if path == "/api/v1/index/retrieve":
                pk = req["publicKey"]
                assert pk["format"] == "minisign"
                text = base64.b64decode(pk["content"])
                want = next(ln.strip() for ln in text.replace(b"\r", b"").split(b"\n")
                            if ln.strip() and not ln.startswith(b"untrusted comment:"))
            else:
                uuids = [str(u).lower() for u in req.get("entryUUIDs", [])]
                indexes = [int(i) for i in req.get("logIndexes", [])]
                assert 0 < len(uuids) + len(indexes) <= 10
        except (ValueError, KeyError, TypeError, AssertionError, StopIteration):
            return self._send(h, 422, {"code": 422, "message": "invalid search"})
        visible = len(self._leaves())
        if path == "/api/v1/index/retrieve":
            found = []
            for i, b in enumerate(self.bodies[:visible]):
                try:
                    key = base64.b64decode(json.loads(b)["spec"]["signature"]["publicKey"]["content"])
                except (KeyError, ValueError, TypeError):
                    continue
                leaf = merkle.leaf_hash(b).hex()
                if key.strip() == want and leaf not in self.index_hidden:
                    found.append(f"{self.tree_id:016x}{leaf}")
            return self._send(h, 200, found)
        by_leaf = {merkle.leaf_hash(b).hex(): i for i, b in enumerate(self.bodies[:visible])}
        out = [self._entry(by_leaf[u[-64:]]) for u in uuids if u[-64:] in by_leaf]
        out += [self._entry(i - self.offset) for i in indexes if 0 <= i - self.offset < visible]
        return self._send(h, 200, out)

    def _get_entry(self, h: http.server.BaseHTTPRequestHandler, ident: str) -> None:
        leaf_hex = ident[-64:]
        if len(ident) not in (64, 80):
            return self._send(h, 400, {"code": 400, "message": "bad uuid"})
        for shard in reversed(self.shards):  # a 64-hex UUID is looked up in every shard, newest first
            if len(ident) == 80 and int(ident[:16], 16) != self._shown_id(shard):
                continue
            presented = len(self._leaves(shard))
            for i, b in enumerate(shard.bodies):
                if i < presented and self._leaf(b).hex() == leaf_hex:
                    return self._send(h, 200, self._entry(i, shard))
        return self._send(h, 404, {"code": 404, "message": "entry not found"})

    def _proof(self, h: http.server.BaseHTTPRequestHandler, q: dict[str, list[str]]) -> None:
        try:
            first, last = int(q["firstSize"][0]), int(q["lastSize"][0])
            tree_id = int(q["treeID"][0]) if "treeID" in q else self.tree_id
            shard = next(s for s in self.shards if self._shown_id(s) == tree_id)
        except (KeyError, ValueError, StopIteration):
            return self._send(h, 400, {"code": 400, "message": "bad sizes or tree"})
        leaves = self._leaves(shard, full=self.lie.proofs_from_full_tree)
        if first > last or last > len(leaves) or first < 1:
            return self._send(h, 400, {"code": 400, "message": "firstSize must be <= lastSize <= treeSize"})
        proof = merkle.consistency_proof(first, leaves[:last])
        if self.lie.bad_consistency and proof:
            proof[0] = hashlib.sha256(b"nope").digest()
        return self._send(h, 200, {"rootHash": merkle.root_of(leaves[:last]).hex(), "hashes": [p.hex() for p in proof]})

    def _post_entry(self, h: http.server.BaseHTTPRequestHandler, raw: bytes) -> None:
        if self.lie.refuse_uploads:
            return self._send(h, 500, {"code": 500, "message": "unavailable"})
        try:
            req = json.loads(raw)
            assert req["kind"] == "rekord" and req["apiVersion"] == "0.0.1"
            spec = req["spec"]
            assert spec["signature"]["format"] == "minisign"
            sig_file = base64.b64decode(spec["signature"]["content"])
            pub_file = base64.b64decode(spec["signature"]["publicKey"]["content"])
            artifact = base64.b64decode(spec["data"]["content"])
            sig_lines = [ln for ln in sig_file.replace(b"\r", b"").split(b"\n") if ln.strip()]
            sig_line = next(ln for ln in sig_lines if not ln.startswith((b"untrusted comment:", b"trusted comment:")))
            key_lines = [ln for ln in pub_file.replace(b"\r", b"").split(b"\n") if ln.strip() and not ln.startswith(b"untrusted")]
            key_line = key_lines[0].strip()
            sraw, kraw = base64.b64decode(sig_line), base64.b64decode(key_line)
            alg, sig = sraw[:2], sraw[10:74]
            msg = hashlib.blake2b(artifact, digest_size=64).digest() if alg == b"ED" else artifact
            Ed25519PublicKey.from_public_bytes(kraw[10:42]).verify(sig, msg)
        except (AssertionError, KeyError, ValueError, StopIteration, IndexError, TypeError, InvalidSignature):
            return self._send(h, 400, {"code": 400, "message": "invalid rekord: signature does not verify"})
        body = _canon({"apiVersion": "0.0.1", "kind": "rekord", "spec": {
            "data": {"hash": {"algorithm": "sha256", "value": hashlib.sha256(artifact).hexdigest()}},
            "signature": {"content": base64.b64encode(b"untrusted comment:\n" + sig_line.strip()).decode(),
                          "format": "minisign", "publicKey": {"content": base64.b64encode(key_line).decode()}}}})
        leaf = merkle.leaf_hash(body).hex()
        for shard in self.shards:
            if body in shard.bodies:
                uuid = f"{self._shown_id(shard):016x}" + leaf
                return self._send(h, 409, {"code": 409, "message": f"an equivalent entry already exists in the transparency log with UUID {uuid}"},
                                  {"Location": f"/api/v1/log/entries/{uuid}"})
        shard = self.active if self.lie.upload_into is None else self.shard(self.lie.upload_into)
        uuid = f"{self._shown_id(shard):016x}" + leaf
        if self.lie.accept_uploads_without_storing:
            return self._send(h, 201, {uuid: {"body": base64.b64encode(body).decode()}})
        idx = self._append(shard, body)
        return self._send(h, 201, self._entry(idx, shard), {"Location": f"/api/v1/log/entries/{uuid}"})


def main() -> None:
    ap = argparse.ArgumentParser(description="local Rekor v1 API test server (127.0.0.1)")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--key-out", help="write the log's public key (PEM) here")
    args = ap.parse_args()
    srv = RekorServer(port=args.port)
    if args.key_out:
        with open(args.key_out, "wb") as f:
            f.write(srv.public_key_pem)
    print(srv.url, flush=True)
    srv._httpd.serve_forever()


if __name__ == "__main__":
    main()
