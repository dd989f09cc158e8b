"""RFC 9162 (RFC 6962) Merkle tree proofs: pure, stdlib only.

leaf = SHA-256(0x00 ‖ data), node = SHA-256(0x01 ‖ left ‖ right). Proof
lengths are checked before any hashing; every failure is a typed error.
"""

from __future__ import annotations

import hashlib

from ..errors import ConsistencyProofError, InclusionProofError

MAX_PROOF_HASHES = 64  # a tree of 2**64 leaves needs no more


def leaf_hash(data: bytes) -> bytes:
    return hashlib.sha256(b"\x00" + data).digest()


def node_hash(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _check_hashes(proof: list[bytes], err: type[Exception]) -> None:
    if len(proof) > MAX_PROOF_HASHES:
        raise err(f"proof has {len(proof)} hashes, more than any tree needs")
    for h in proof:
        if len(h) != 32:
            raise err("proof contains a hash that is not 32 bytes")


def _inner_border(index: int, size: int) -> tuple[int, int]:
    """RFC 9162 §2.1.3.2 split of a proof into inner and border parts."""
    inner = (index ^ (size - 1)).bit_length()
    border = bin(index >> inner).count("1")
    return inner, border


def root_from_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes]) -> bytes:
    if size <= 0 or index < 0 or index >= size:
        raise InclusionProofError(f"leaf index {index} is outside a tree of size {size}")
    if len(leaf) != 32:
        raise InclusionProofError("leaf hash is not 32 bytes")
    _check_hashes(proof, InclusionProofError)
    inner, border = _inner_border(index, size)
    if len(proof) != inner + border:
        raise InclusionProofError(f"inclusion proof has {len(proof)} hashes, expected {inner + border}")
    h = leaf
    for i, p in enumerate(proof[:inner]):
        h = node_hash(p, h) if (index >> i) & 1 else node_hash(h, p)
    for p in proof[inner:]:
        h = node_hash(p, h)
    return h


def verify_inclusion(index: int, size: int, leaf: bytes, proof: list[bytes], root: bytes) -> None:
    calculated = root_from_inclusion(index, size, leaf, proof)
    if calculated != root:
        raise InclusionProofError(
            f"inclusion proof for leaf {index} leads to root {calculated.hex()}, not the log's root {root.hex()}"
        )


def verify_consistency(old_size: int, new_size: int, old_root: bytes, new_root: bytes, proof: list[bytes]) -> None:
    """RFC 9162 §2.1.4.2: the tree of ``new_size`` extends the tree of ``old_size``."""
    if old_size < 1 or new_size < 1:
        # an empty tree has no signed head worth remembering; the reference rejects it too
        raise ConsistencyProofError("consistency proofs need two non-empty trees")
    if old_size > new_size:
        raise ConsistencyProofError(f"cannot prove size {old_size} consistent with smaller size {new_size}")
    _check_hashes(proof, ConsistencyProofError)
    if old_size == new_size:
        if proof:
            raise ConsistencyProofError("consistency proof between equal sizes must be empty")
        if old_root != new_root:
            raise ConsistencyProofError("two different roots for the same tree size")
        return
    if len(old_root) != 32 or len(new_root) != 32:
        raise ConsistencyProofError("tree roots must be 32 bytes")
    # The RFC's algorithm: if old_size is a power of two, old_root is the first node.
    inner, border = _inner_border(old_size - 1, new_size)
    shift = (old_size & -old_size).bit_length() - 1  # trailing zeros
    inner -= shift
    if old_size == 1 << shift:
        seed, start = old_root, 0
    else:
        if not proof:
            raise ConsistencyProofError("consistency proof is empty")
        seed, start = proof[0], 1
    if len(proof) != start + inner + border:
        raise ConsistencyProofError(f"consistency proof has {len(proof)} hashes, expected {start + inner + border}")
    rest = proof[start:]
    mask = (old_size - 1) >> shift
    # old root: fold only the left siblings
    h1 = seed
    for i, p in enumerate(rest[:inner]):
        if (mask >> i) & 1:
            h1 = node_hash(p, h1)
    for p in rest[inner:]:
        h1 = node_hash(p, h1)
    # new root: fold all
    h2 = seed
    for i, p in enumerate(rest[:inner]):
        h2 = node_hash(p, h2) if (mask >> i) & 1 else node_hash(h2, p)
    for p in rest[inner:]:
        h2 = node_hash(p, h2)
    if h1 != old_root:
        raise ConsistencyProofError(f"consistency proof does not lead to the remembered root {old_root.hex()}")
    if h2 != new_root:
        raise ConsistencyProofError(f"consistency proof does not lead to the log's new root {new_root.hex()}")


# --- building trees (used by the test log server and the tests) -----------------


def _split(n: int) -> int:
    """Largest power of two smaller than n (n > 1)."""
    return 1 << ((n - 1).bit_length() - 1)


def root_of(leaves: list[bytes]) -> bytes:
    """Merkle tree hash of leaf hashes (RFC 9162 §2.1.1), recursive."""
    n = len(leaves)
    if n == 0:
        return hashlib.sha256(b"").digest()
    if n == 1:
        return leaves[0]
    k = _split(n)
    return node_hash(root_of(leaves[:k]), root_of(leaves[k:]))


def inclusion_proof(index: int, leaves: list[bytes]) -> list[bytes]:
    n = len(leaves)
    if n <= 1:
        return []
    k = _split(n)
    if index < k:
        return inclusion_proof(index, leaves[:k]) + [root_of(leaves[k:])]
    return inclusion_proof(index - k, leaves[k:]) + [root_of(leaves[:k])]


def consistency_proof(old_size: int, leaves: list[bytes]) -> list[bytes]:
    def sub(m: int, ls: list[bytes], complete: bool) -> list[bytes]:
        n = len(ls)
        if m == n:
            return [] if complete else [root_of(ls)]
        k = _split(n)
        if m <= k:
            return sub(m, ls[:k], complete) + [root_of(ls[k:])]
        return sub(m - k, ls[k:], False) + [root_of(ls[:k])]

    if old_size == 0 or old_size == len(leaves):
        return []
    return sub(old_size, leaves, True)
