"""A Merkle tree's right frontier (compact range [0, size)), and the Sigsum monitor's verdict on a leaf (pure).

The frontier holds the roots of the perfect subtrees that make up the first ``size`` leaves (one per set bit of
``size``, largest first), so leaves appended one by one recompute the RFC 6962/9162 root without keeping every
leaf: a monitor that read leaves [0, n) from ``get-leaves`` checks that they really are the tree the log signed
(root of the frontier == the verified tree head's root), in O(log n) memory between runs.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

from ..errors import StateError
from . import merkle

EMPTY_ROOT = hashlib.sha256(b"").digest()  # RFC 6962: the hash of an empty tree
MAX_NODES = 64


@dataclass(frozen=True)
class Frontier:
    size: int = 0
    nodes: tuple[bytes, ...] = ()

    def append(self, leaf_hash: bytes) -> "Frontier":
        nodes = list(self.nodes)
        node, s = leaf_hash, self.size
        while s & 1:  # each trailing one bit is a perfect subtree the new leaf completes
            node = merkle.node_hash(nodes.pop(), node)
            s >>= 1
        nodes.append(node)
        return Frontier(self.size + 1, tuple(nodes))

    def extend(self, leaf_hashes: list[bytes]) -> "Frontier":
        f = self
        for h in leaf_hashes:
            f = f.append(h)
        return f

    def root(self) -> bytes:
        if not self.nodes:
            return EMPTY_ROOT
        r = self.nodes[-1]
        for n in reversed(self.nodes[:-1]):
            r = merkle.node_hash(n, r)
        return r

    def to_bytes(self) -> bytes:
        return b"".join(self.nodes)

    @classmethod
    def from_bytes(cls, size: int, data: bytes) -> "Frontier":
        """The frontier as stored; its shape must match ``size`` (one node per set bit)."""
        if size < 0 or len(data) % 32 or len(data) // 32 != bin(size).count("1") or len(data) // 32 > MAX_NODES:
            raise StateError(f"the remembered Merkle frontier does not fit a tree of {size} leaves")
        return cls(size, tuple(data[i:i + 32] for i in range(0, len(data), 32)))


OK, ALERT, FOREIGN, BAD_SIGNATURE = "ok", "alert", "foreign", "bad-signature"


def classify_leaf(checksum: bytes, signature: bytes, keyhash: bytes, *, submitter_keyhash: bytes,
                  signature_ok: bool, expected: "set[bytes] | frozenset[bytes]") -> str:
    """A leaf of the log, for the operator: another submitter's (``foreign``), the operator's over a package of
    the dbs (``ok``), over anything else (``alert``), or one whose signature does not verify (``bad-signature``:
    the log must refuse such a leaf, so serving one is the log misbehaving)."""
    if keyhash != submitter_keyhash:
        return FOREIGN
    if not signature_ok:
        return BAD_SIGNATURE
    return OK if checksum in expected else ALERT


def expected_checksum(package_sha256_hex: str) -> bytes:
    """The checksum a package's leaf carries: sha256 of its raw sha256 (the message)."""
    return hashlib.sha256(bytes.fromhex(package_sha256_hex)).digest()
