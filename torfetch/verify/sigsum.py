"""Sigsum proof verification, offline (pure): bytes and keys in, a typed result or a typed error out.

The checks of sigsum-go doc/sigsum-proof.md, in order, for a package whose
message is its raw sha256 (as ``sigsum-submit FILE`` makes it):

1. checksum = sha256(message);
2. the leaf's keyhash is the repository's submitter key's, and the log is one
   in the policy (keyhashes compared bit for bit);
3. the leaf signature verifies over "sigsum.org/v1/tree-leaf" NUL checksum;
4. the log's signature over its tree head verifies;
5. the cosignatures of the policy's witnesses over that tree head meet the
   quorum (unknown witnesses ignored, each witness counted once);
6. the inclusion path leads from the leaf hash to the tree head's root
   (RFC 9162; for size 1 the leaf hash is the root).

No log or witness is contacted: the proof travels beside the package.
"""

from __future__ import annotations

import base64
import hashlib
from dataclasses import dataclass

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import (
    InclusionProofError,
    SigsumError,
    SigsumInclusionError,
    SigsumQuorumError,
    SigsumSignatureError,
    SigsumSplitViewError,
)
from . import merkle
from .sigsum_key import key_hash
from .sigsum_policy import Policy
from .sigsum_proof import CosignedTreeHead, SigsumLeaf, SigsumProof, parse_proof

LEAF_NAMESPACE = b"sigsum.org/v1/tree-leaf"
TREE_ORIGIN_PREFIX = "sigsum.org/v1/tree/"
COSIGNATURE_NAMESPACE = "cosignature/v1"


def leaf_signed_data(checksum: bytes) -> bytes:
    """What a submitter signs: the namespace, a NUL, the 32-byte checksum (sigsum-go crypto.AttachNamespace)."""
    return LEAF_NAMESPACE + b"\x00" + checksum


def tree_head_text(log_keyhash: bytes, size: int, root: bytes) -> bytes:
    """The checkpoint body a log signs: origin, size and base64 root, each on its own line."""
    return f"{TREE_ORIGIN_PREFIX}{log_keyhash.hex()}\n{size}\n{base64.b64encode(root).decode()}\n".encode()


def cosignature_text(log_keyhash: bytes, size: int, root: bytes, timestamp: int) -> bytes:
    """What a witness signs: "cosignature/v1", "time <t>", then the tree head text."""
    return f"{COSIGNATURE_NAMESPACE}\ntime {timestamp}\n".encode() + tree_head_text(log_keyhash, size, root)


def sigsum_leaf_hash(leaf: SigsumLeaf) -> bytes:
    """RFC 6962 leaf hash of checksum ‖ signature ‖ keyhash (128 bytes)."""
    return merkle.leaf_hash(leaf.checksum + leaf.signature + leaf.keyhash)


def ed25519_ok(pub: bytes, data: bytes, sig: bytes) -> bool:
    try:
        Ed25519PublicKey.from_public_bytes(pub).verify(sig, data)
    except (InvalidSignature, ValueError):
        return False
    return True


@dataclass(frozen=True)
class VerifiedTreeHead:
    log_keyhash: bytes
    size: int
    root_hash: bytes
    witnesses: frozenset[bytes]  # keyhashes of the policy witnesses whose cosignature verified


@dataclass(frozen=True)
class SigsumVerified:
    filename: str
    checksum: bytes
    leaf_index: int
    tree_head: VerifiedTreeHead


def _short(kh: bytes) -> str:
    return kh.hex()[:16]


def policy_cosigners(policy: Policy, log_keyhash: bytes, cth: CosignedTreeHead) -> tuple[set[bytes], list[str]]:
    """(keyhashes of the policy's witnesses whose cosignature verifies, names of those whose does not)."""
    th = cth.tree_head
    verified: set[bytes] = set()
    failed: list[str] = []
    for cs in cth.cosignatures:
        witness = policy.witnesses.get(cs.keyhash)
        if witness is None or cs.keyhash in verified:
            continue  # unknown witnesses count for nothing; a witness counts once however often it appears
        if ed25519_ok(witness.pubkey, cosignature_text(log_keyhash, th.size, th.root_hash, cs.timestamp), cs.signature):
            verified.add(cs.keyhash)
        else:
            failed.append(witness.name)
    return verified, failed


def verify_tree_head(policy: Policy, log_keyhash: bytes, cth: CosignedTreeHead, *, what: str = "tree head") -> VerifiedTreeHead:
    """The log is in the policy, its signature verifies, and the policy's witnesses' cosignatures meet the quorum."""
    log = policy.logs.get(log_keyhash)
    if log is None:
        raise SigsumQuorumError(f"{what}: log {log_keyhash.hex()} is not in the Sigsum policy")
    th = cth.tree_head
    if not ed25519_ok(log.pubkey, tree_head_text(log_keyhash, th.size, th.root_hash), th.signature):
        raise SigsumSignatureError(f"{what}: the log's signature over its tree head (size {th.size}) does not verify")
    verified, failed = policy_cosigners(policy, log_keyhash, cth)
    if not policy.quorum_met(verified):
        need = policy.required_cosignatures()
        bad = f"; bad cosignature from {', '.join(sorted(failed))[:200]}" if failed else ""
        if len(verified) < need:
            raise SigsumQuorumError(f"{what}: {len(verified)} of {need} required witness cosignatures{bad}")
        raise SigsumQuorumError(
            f"{what}: {len(verified)} witness cosignatures do not meet the policy's quorum {policy.quorum_name!r}{bad}")
    return VerifiedTreeHead(log_keyhash, th.size, th.root_hash, frozenset(verified))


def verify_proof(proof: SigsumProof, message: bytes, submitter_pub: bytes, policy: Policy, filename: str) -> SigsumVerified:
    """Every check of a Sigsum proof for ``filename`` whose message (its raw sha256) is ``message``."""
    what = f"proof for {filename}"
    if len(message) != 32 or len(submitter_pub) != 32:
        raise SigsumError(f"{what}: the message and the submitter key must be 32 bytes")
    checksum = hashlib.sha256(message).digest()
    if proof.short_checksum is not None and proof.short_checksum != checksum[:2]:
        # version 1 carries the checksum's first 2 bytes: the clear message for a proof beside the wrong file
        raise SigsumSignatureError(f"{what}: the proof is of another file (checksum {proof.short_checksum.hex()}…, "
                                   f"this file's is {checksum[:2].hex()}…)")
    want = key_hash(submitter_pub)
    if proof.leaf_keyhash != want:
        raise SigsumSignatureError(f"{what}: the leaf was submitted by key {_short(proof.leaf_keyhash)}…, "
                                   f"not the repository's Sigsum key {_short(want)}…")
    if proof.log_keyhash not in policy.logs:
        raise SigsumQuorumError(f"{what}: log {proof.log_keyhash.hex()} is not in the Sigsum policy")
    if not ed25519_ok(submitter_pub, leaf_signed_data(checksum), proof.leaf_signature):
        raise SigsumSignatureError(f"{what}: the leaf signature does not verify over this file's checksum "
                                   "(the file was altered, or the proof is of another file)")
    cth = proof.cosigned_tree_head
    verified = verify_tree_head(policy, proof.log_keyhash, cth, what=what)
    leaf = SigsumLeaf(checksum, proof.leaf_signature, proof.leaf_keyhash)
    lh = sigsum_leaf_hash(leaf)
    size = cth.tree_head.size
    try:
        if size == 1:
            if proof.leaf_index != 0 or proof.path:
                raise InclusionProofError("a tree of size 1 has leaf 0 and no path")
            if lh != cth.tree_head.root_hash:
                raise InclusionProofError("the tree of size 1 is not this leaf (its root is another leaf hash)")
        else:
            merkle.verify_inclusion(proof.leaf_index, size, lh, list(proof.path), cth.tree_head.root_hash)
    except InclusionProofError as exc:
        raise SigsumInclusionError(f"{what}: {exc.message}") from exc
    return SigsumVerified(filename, checksum, proof.leaf_index, verified)


def check_sigsum_proof(*, filename: str, proof_bytes: bytes, sha256: bytes, submitter_pub: bytes,
                       policy: Policy) -> SigsumVerified:
    """Parse and verify ``<filename>.proof`` against the downloaded file's raw sha256; every error names the file."""
    proof = parse_proof(proof_bytes, what=f"proof for {filename}")
    return verify_proof(proof, sha256, submitter_pub, policy, filename)


def split_view_signers(policy: Policy, seen: VerifiedTreeHead) -> str:
    """Who vouched for the rejected tree head: the log, and the policy's witnesses that cosigned it (none may
    have had to, under ``quorum none``)."""
    names = sorted(w.name for kh, w in policy.witnesses.items() if kh in seen.witnesses)
    if policy.required_cosignatures() == 0:
        also = f" (witnesses {', '.join(names)[:200]} cosigned it too)" if names else ""
        return (f"the log alone signed both histories{also}: under the policy's quorum {policy.quorum_name} "
                "no witness had to cosign")
    return (f"the log and witnesses {', '.join(names)[:200]} signed this history (and a quorum of the policy "
            "signed the one seen before)")


# --- what this machine saw before (the decision; store/sigsumstate.py keeps it on disk) -------------------------

MAX_REMEMBERED_HEADS = 512  # per log: the largest head always, then the largest sizes seen


@dataclass(frozen=True)
class SigsumLogMemory:
    """Cosigned tree heads of one log this machine verified before: size → root (the largest always among them)."""

    heads: dict[int, bytes]

    @property
    def largest(self) -> tuple[int, bytes] | None:
        if not self.heads:
            return None
        size = max(self.heads)
        return size, self.heads[size]


def remember_tree_head(memory: SigsumLogMemory, seen: VerifiedTreeHead, *, filename: str = "") -> SigsumLogMemory:
    """Accept a verified tree head against what was seen before; the memory to store next.

    Proofs are made at different times, so a head older (smaller) than the
    largest is accepted; but a head of a size seen before with another root is
    a split view (the log signed two histories and witnesses cosigned both), refused.
    """
    old = memory.heads.get(seen.size)
    if old is not None and old != seen.root_hash:
        what = f"proof for {filename}: " if filename else ""
        raise SigsumSplitViewError(
            f"{what}log {seen.log_keyhash.hex()[:16]}… shows a tree of size {seen.size} with root "
            f"{seen.root_hash.hex()}, but this machine saw that size with root {old.hex()}",
            hint="the log signed two histories (and, if the policy requires any, witnesses cosigned both): "
                 "report both tree heads to the repository's and the log's operators")
    heads = dict(memory.heads)
    heads[seen.size] = seen.root_hash
    if len(heads) > MAX_REMEMBERED_HEADS:
        keep = sorted(heads)[-MAX_REMEMBERED_HEADS:]
        heads = {s: heads[s] for s in keep}
    return SigsumLogMemory(heads)
