"""A tiny Sigsum log in pure Python for tests: real Ed25519 keys, RFC 6962 trees, proofs in sigsum-submit's format.

Built on torfetch.verify.merkle's tree helpers (root_of, inclusion_proof) and
the byte formats in torfetch.verify.sigsum, so every test vector carries real
signatures; tests then break one field at a time.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field, replace

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from torfetch.verify import merkle
from torfetch.verify.sigsum import cosignature_text, leaf_signed_data, sigsum_leaf_hash, tree_head_text
from torfetch.verify.sigsum_key import key_hash
from torfetch.verify.sigsum_proof import Cosignature, CosignedTreeHead, SigsumLeaf, SigsumProof, TreeHead


@dataclass(frozen=True)
class Key:
    """A deterministic Ed25519 key (seeded), so vectors are reproducible."""

    seed: int

    @property
    def sk(self) -> Ed25519PrivateKey:
        return Ed25519PrivateKey.from_private_bytes(hashlib.sha256(b"sigsum test key %d" % self.seed).digest())

    @property
    def pub(self) -> bytes:
        return self.sk.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)

    @property
    def keyhash(self) -> bytes:
        return key_hash(self.pub)

    def sign(self, data: bytes) -> bytes:
        return self.sk.sign(data)


def message_of(package: bytes) -> bytes:
    """The Sigsum message of a package: its raw sha256 (as sigsum-submit FILE makes it)."""
    return hashlib.sha256(package).digest()


def submit_leaf(submitter: Key, message: bytes) -> SigsumLeaf:
    checksum = hashlib.sha256(message).digest()
    return SigsumLeaf(checksum, submitter.sign(leaf_signed_data(checksum)), submitter.keyhash)


@dataclass
class TestLog:
    """An append-only list of leaves with a signing log key and cosigning witnesses."""

    key: Key = field(default_factory=lambda: Key(100))
    witnesses: list[Key] = field(default_factory=lambda: [Key(200)])
    leaves: list[SigsumLeaf] = field(default_factory=list)
    timestamp: int = 1_700_000_000

    __test__ = False  # not a pytest class

    def add(self, leaf: SigsumLeaf) -> int:
        self.leaves.append(leaf)
        return len(self.leaves) - 1

    def add_message(self, submitter: Key, message: bytes) -> int:
        return self.add(submit_leaf(submitter, message))

    def add_filler(self, n: int) -> None:
        for i in range(n):
            self.add_message(Key(900 + i % 7), hashlib.sha256(b"filler %d" % len(self.leaves)).digest())

    def hashes(self, size: int | None = None) -> list[bytes]:
        return [sigsum_leaf_hash(lf) for lf in self.leaves[: size if size is not None else len(self.leaves)]]

    def cosigned_tree_head(self, size: int | None = None, *, witnesses: list[Key] | None = None,
                           root: bytes | None = None) -> CosignedTreeHead:
        size = len(self.leaves) if size is None else size
        root = merkle.root_of(self.hashes(size)) if root is None else root
        sig = self.key.sign(tree_head_text(self.key.keyhash, size, root))
        cos = tuple(Cosignature(w.keyhash, self.timestamp, w.sign(cosignature_text(self.key.keyhash, size, root,
                                                                                   self.timestamp)))
                    for w in (self.witnesses if witnesses is None else witnesses))
        return CosignedTreeHead(TreeHead(size, root, sig), cos)

    def proof(self, index: int, size: int | None = None, *, witnesses: list[Key] | None = None,
              version: int = 2) -> SigsumProof:
        size = len(self.leaves) if size is None else size
        leaf = self.leaves[index]
        cth = self.cosigned_tree_head(size, witnesses=witnesses)
        path = tuple(merkle.inclusion_proof(index, self.hashes(size)))
        return SigsumProof(version, self.key.keyhash, leaf.keyhash, leaf.signature, cth, index if size > 1 else 0,
                           path, leaf.checksum[:2] if version == 1 else None)

    def policy_text(self, *, quorum: str | None = None, extra: str = "") -> bytes:
        lines = [f"log {self.key.pub.hex()} http://127.0.0.1:1/"]
        lines += [f"witness W{i + 1} {w.pub.hex()}" for i, w in enumerate(self.witnesses)]
        if quorum is None:
            names = " ".join(f"W{i + 1}" for i in range(len(self.witnesses)))
            lines.append(f"group all-witnesses all {names}" if self.witnesses else "")
            quorum = "all-witnesses" if self.witnesses else "none"
        return ("\n".join(lines) + "\n" + extra + f"quorum {quorum}\n").encode()


def serialize_v1(proof: SigsumProof) -> bytes:
    """A version-1 proof file (the leaf line carries the checksum's first 2 bytes), as older sigsum-submit wrote."""
    from torfetch.verify.sigsum_proof import serialize_proof

    assert proof.short_checksum is not None
    text = serialize_proof(proof).decode()
    head, _, rest = text.partition("\n")
    log_line, leaf_line, rest = rest.split("\n", 2)
    leaf_line = leaf_line.replace("leaf=", f"leaf={proof.short_checksum.hex()} ", 1)
    return f"version=1\n{log_line}\n{leaf_line}\n{rest}".encode()


def with_tree_head(proof: SigsumProof, cth: CosignedTreeHead) -> SigsumProof:
    return replace(proof, cosigned_tree_head=cth)
