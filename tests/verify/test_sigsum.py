"""Offline Sigsum proof verification: genuine proofs pass; every refusal of issue 11 item 1 is refused, by name."""

from __future__ import annotations

import base64
import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from tests.sigsum_vectors import Key, TestLog, message_of, serialize_v1, submit_leaf, with_tree_head
from torfetch.errors import (
    InclusionProofError,
    SigsumError,
    SigsumInclusionError,
    SigsumQuorumError,
    SigsumSignatureError,
    VerificationError,
)
from torfetch.verify.sigsum import (
    check_sigsum_proof,
    cosignature_text,
    leaf_signed_data,
    sigsum_leaf_hash,
    tree_head_text,
    verify_proof,
    verify_tree_head,
)
from torfetch.verify.sigsum_key import parse_public_key
from torfetch.verify.sigsum_policy import parse_policy
from torfetch.verify.sigsum_proof import Cosignature, CosignedTreeHead, parse_proof, parse_tree_head_body

VECTORS = Path(__file__).parent.parent / "vectors" / "sigsum"
REAL_POLICY = parse_policy((VECTORS / "policy").read_bytes())
REAL_KEY = parse_public_key((VECTORS / "submit.key.pub").read_bytes())
OTHER_KEY = parse_public_key((VECTORS / "other.key.pub").read_bytes())
FILE = "foo-1.0-1-x86_64.pkg.tar.zst"
PKG = b"the package bytes"
SUB = Key(5)


def _real(name: str) -> tuple[bytes, bytes]:
    return (VECTORS / name).read_bytes(), (VECTORS / f"{name}.proof").read_bytes()


# --- byte formats ---------------------------------------------------------------------


def test_signed_texts() -> None:
    kh = bytes(range(32))
    root = bytes(32)
    assert leaf_signed_data(b"\x01" * 32) == b"sigsum.org/v1/tree-leaf\x00" + b"\x01" * 32
    th = tree_head_text(kh, 7, root)
    assert th == f"sigsum.org/v1/tree/{kh.hex()}\n7\n{base64.b64encode(root).decode()}\n".encode()
    assert cosignature_text(kh, 7, root, 123) == b"cosignature/v1\ntime 123\n" + th


def test_real_leaf_hash_matches_the_logs_inclusion_answer() -> None:
    # get-inclusion-proof/5/<hash of leaf 1> answered; the leaf hash we compute is the one the real log hashed
    from torfetch.verify import merkle
    from torfetch.verify.sigsum_proof import parse_inclusion_body, parse_leaves_body

    leaves = parse_leaves_body((VECTORS / "get-leaves.body").read_bytes())
    cth = parse_tree_head_body((VECTORS / "get-tree-head.body").read_bytes())
    index, path = parse_inclusion_body((VECTORS / "get-inclusion-proof.body").read_bytes())
    merkle.verify_inclusion(index, 5, sigsum_leaf_hash(leaves[index]), list(path), cth.tree_head.root_hash)
    assert merkle.root_of([sigsum_leaf_hash(lf) for lf in leaves]) == cth.tree_head.root_hash


# --- genuine proofs -----------------------------------------------------------------------


@pytest.mark.parametrize("name", ["pkg1.pkg.tar.zst", "pkg2.pkg.tar.zst", "pkg3.pkg.tar.zst", "pkg4.pkg.tar.zst",
                                  "solo.pkg.tar.zst"])
def test_real_proofs_verify(name: str) -> None:
    pkg, proof = _real(name)
    got = check_sigsum_proof(filename=name, proof_bytes=proof, sha256=hashlib.sha256(pkg).digest(),
                             submitter_pub=REAL_KEY, policy=REAL_POLICY)
    assert got.checksum == hashlib.sha256(hashlib.sha256(pkg).digest()).digest()
    assert got.tree_head.witnesses == frozenset(REAL_POLICY.witnesses)
    assert got.tree_head.log_keyhash in REAL_POLICY.logs


def test_real_tampered_package_refused() -> None:
    pkg, proof = _real("pkg2.pkg.tar.zst")
    with pytest.raises(SigsumSignatureError, match=r"proof for pkg2\.pkg\.tar\.zst: the leaf signature does not"):
        check_sigsum_proof(filename="pkg2.pkg.tar.zst", proof_bytes=proof,
                           sha256=hashlib.sha256(pkg + b"x").digest(), submitter_pub=REAL_KEY, policy=REAL_POLICY)


def test_real_proof_of_another_package_refused() -> None:
    pkg1, _ = _real("pkg1.pkg.tar.zst")
    _, proof3 = _real("pkg3.pkg.tar.zst")
    with pytest.raises(SigsumSignatureError, match="leaf signature does not verify"):
        check_sigsum_proof(filename="pkg1.pkg.tar.zst", proof_bytes=proof3, sha256=hashlib.sha256(pkg1).digest(),
                           submitter_pub=REAL_KEY, policy=REAL_POLICY)


def test_real_other_submitter_refused() -> None:
    pkg5, proof5 = _real("pkg5.pkg.tar.zst")
    sha = hashlib.sha256(pkg5).digest()
    with pytest.raises(SigsumSignatureError, match="submitted by key .*not the repository's Sigsum key"):
        check_sigsum_proof(filename="pkg5", proof_bytes=proof5, sha256=sha, submitter_pub=REAL_KEY, policy=REAL_POLICY)
    # with the key that did submit it, the same proof verifies: the refusal was about the key
    check_sigsum_proof(filename="pkg5", proof_bytes=proof5, sha256=sha, submitter_pub=OTHER_KEY, policy=REAL_POLICY)


def test_real_unmet_quorum_and_unknown_log() -> None:
    pkg, proof = _real("pkg1.pkg.tar.zst")
    sha = hashlib.sha256(pkg).digest()
    text = (VECTORS / "policy").read_text()
    three = text.replace("group both all W1 W2", f"witness W3 {Key(3).pub.hex()}\ngroup both all W1 W2 W3")
    with pytest.raises(SigsumQuorumError, match="pkg1: 2 of 3 required witness cosignatures"):
        check_sigsum_proof(filename="pkg1", proof_bytes=proof, sha256=sha, submitter_pub=REAL_KEY,
                           policy=parse_policy(three.encode()))
    other_log = "\n".join(f"log {Key(9).pub.hex()}" if ln.startswith("log ") else ln for ln in text.splitlines())
    with pytest.raises(SigsumQuorumError, match="pkg1: log 6ec6b028.* is not in the Sigsum policy"):
        check_sigsum_proof(filename="pkg1", proof_bytes=proof, sha256=sha, submitter_pub=REAL_KEY,
                           policy=parse_policy(other_log.encode()))


# --- hand-made vectors, one field at a time --------------------------------------------------


def _setup(size: int = 6, index: int = 2, witnesses: int = 2) -> tuple[TestLog, int]:
    log = TestLog(witnesses=[Key(200 + i) for i in range(witnesses)])
    log.add_filler(index)
    i = log.add_message(SUB, message_of(PKG))
    log.add_filler(size - index - 1)
    return log, i


def _verify(log: TestLog, proof, policy_text: bytes | None = None, pkg: bytes = PKG, pub: bytes | None = None):  # type: ignore[no-untyped-def]
    policy = parse_policy(policy_text if policy_text is not None else log.policy_text())
    return verify_proof(proof, message_of(pkg), SUB.pub if pub is None else pub, policy, FILE)


@pytest.mark.parametrize(("size", "index"), [(1, 0), (2, 0), (2, 1), (3, 2), (8, 5), (13, 12)])
def test_hand_made_proofs_verify(size: int, index: int) -> None:
    log, i = _setup(size, index)
    got = _verify(log, log.proof(i))
    assert got.leaf_index == index and got.tree_head.size == size and got.filename == FILE


def test_v1_proof_verifies_and_its_short_checksum_is_checked() -> None:
    log, i = _setup()
    proof = parse_proof(serialize_v1(log.proof(i, version=1)))
    assert _verify(log, proof).leaf_index == i
    with pytest.raises(SigsumSignatureError, match="the proof is of another file"):
        _verify(log, proof, pkg=b"another package")
    # a v1 proof whose short checksum was forged to match still fails on the signature
    forged = replace(proof, short_checksum=hashlib.sha256(message_of(b"x")).digest()[:2])
    with pytest.raises(SigsumSignatureError, match="leaf signature"):
        _verify(log, forged, pkg=b"x")


def test_tampered_package() -> None:
    log, i = _setup()
    with pytest.raises(SigsumSignatureError, match=f"proof for {FILE}: the leaf signature does not verify"):
        _verify(log, log.proof(i), pkg=PKG + b"\x00")


def test_another_submitter() -> None:
    log, _ = _setup()
    j = log.add_message(Key(6), message_of(PKG))  # someone else logged the same package
    with pytest.raises(SigsumSignatureError, match="not the repository's Sigsum key"):
        _verify(log, log.proof(j))
    # a proof claiming the repository's keyhash over another key's signature
    forged = replace(log.proof(j), leaf_keyhash=SUB.keyhash)
    with pytest.raises(SigsumSignatureError, match="leaf signature"):
        _verify(log, forged)


def test_another_packages_proof() -> None:
    log, _ = _setup()
    j = log.add_message(SUB, message_of(b"another package"))
    with pytest.raises(SigsumSignatureError, match="leaf signature does not verify"):
        _verify(log, log.proof(j))


def test_unmet_quorum_names_counts() -> None:
    log, i = _setup(witnesses=2)
    proof = with_tree_head(log.proof(i), log.cosigned_tree_head(witnesses=log.witnesses[:1]))
    with pytest.raises(SigsumQuorumError, match=f"^proof for {FILE}: 1 of 2 required witness cosignatures$"):
        _verify(log, proof)
    proof0 = with_tree_head(log.proof(i), log.cosigned_tree_head(witnesses=[]))
    with pytest.raises(SigsumQuorumError, match="0 of 2 required"):
        _verify(log, proof0)
    # with a 1-of-2 policy, the same one cosignature is enough
    names = "W1 W2"
    any_text = log.policy_text(quorum="g", extra=f"group g any {names}\n")
    assert _verify(log, proof, any_text).tree_head.witnesses == {log.witnesses[0].keyhash}


def test_quorum_structure_not_met_with_enough_count() -> None:
    # X1 and X2 cosigned (two), but the quorum wants one X and one Y: the count alone is not enough
    log, i = _setup(witnesses=3)
    extra = "group X any W1 W2\ngroup Y any W3\ngroup q all X Y\n"
    proof = with_tree_head(log.proof(i), log.cosigned_tree_head(witnesses=log.witnesses[:2]))
    with pytest.raises(SigsumQuorumError, match="2 witness cosignatures do not meet the policy's quorum 'q'"):
        _verify(log, proof, log.policy_text(quorum="q", extra=extra))


def test_duplicate_cosignature_counted_once() -> None:
    log, i = _setup(witnesses=2)
    good = log.proof(i)
    cs = good.cosigned_tree_head.cosignatures
    # the first witness twice (another timestamp, so another valid signature) and the second not at all
    w = log.witnesses[0]
    th = good.cosigned_tree_head.tree_head
    again = Cosignature(w.keyhash, 5, w.sign(cosignature_text(log.key.keyhash, th.size, th.root_hash, 5)))
    cth = CosignedTreeHead(th, (cs[0], again))
    with pytest.raises(SigsumQuorumError, match="1 of 2 required"):
        _verify(log, with_tree_head(good, cth))
    policy = parse_policy(log.policy_text())
    with pytest.raises(SigsumQuorumError, match="1 of 2 required"):
        verify_tree_head(policy, log.key.keyhash, cth)


def test_unknown_witness_ignored() -> None:
    log, i = _setup(witnesses=2)
    stranger = Key(777)
    cth = log.cosigned_tree_head(witnesses=[log.witnesses[0], stranger])
    with pytest.raises(SigsumQuorumError, match="1 of 2 required"):
        _verify(log, with_tree_head(log.proof(i), cth))
    # the stranger's cosignature beside a full quorum changes nothing
    cth = log.cosigned_tree_head(witnesses=[stranger, *log.witnesses])
    assert _verify(log, with_tree_head(log.proof(i), cth)).tree_head.witnesses == {w.keyhash for w in log.witnesses}


def test_bad_cosignature_named() -> None:
    log, i = _setup(witnesses=2)
    good = log.proof(i)
    cs = good.cosigned_tree_head.cosignatures
    bad = replace(cs[1], timestamp=cs[1].timestamp + 1)  # signature no longer covers the timestamp
    cth = CosignedTreeHead(good.cosigned_tree_head.tree_head, (cs[0], bad))
    with pytest.raises(SigsumQuorumError, match="1 of 2 required witness cosignatures; bad cosignature from W2"):
        _verify(log, with_tree_head(good, cth))


def test_cosignature_over_another_tree_head_refused() -> None:
    log, i = _setup(size=6)
    good = log.proof(i)
    older = log.cosigned_tree_head(5)  # valid cosignatures, of size 5
    cth = CosignedTreeHead(good.cosigned_tree_head.tree_head, older.cosignatures)
    with pytest.raises(SigsumQuorumError, match="0 of 2 required"):
        _verify(log, with_tree_head(good, cth))


def test_log_not_in_policy() -> None:
    log, i = _setup()
    other = TestLog(key=Key(101), witnesses=log.witnesses)
    with pytest.raises(SigsumQuorumError, match=f"proof for {FILE}: log .* is not in the Sigsum policy"):
        _verify(log, log.proof(i), other.policy_text())


def test_log_signature() -> None:
    log, i = _setup()
    good = log.proof(i)
    th = good.cosigned_tree_head.tree_head
    forged = CosignedTreeHead(replace(th, signature=Key(101).sign(tree_head_text(log.key.keyhash, th.size,
                                                                                   th.root_hash))),
                              good.cosigned_tree_head.cosignatures)
    with pytest.raises(SigsumSignatureError, match="the log's signature over its tree head .* does not verify"):
        _verify(log, with_tree_head(good, forged))
    # a tree head signed for another size than it says
    resized = CosignedTreeHead(replace(th, size=th.size + 1), good.cosigned_tree_head.cosignatures)
    with pytest.raises(SigsumSignatureError, match="does not verify"):
        _verify(log, with_tree_head(good, resized))


def test_bad_paths() -> None:
    log, i = _setup(size=8, index=3)
    good = log.proof(i)
    flipped = (bytes([good.path[0][0] ^ 1]) + good.path[0][1:],) + good.path[1:]
    with pytest.raises(SigsumInclusionError, match=f"proof for {FILE}: inclusion proof for leaf 3 leads to root"):
        _verify(log, replace(good, path=flipped))
    with pytest.raises(SigsumInclusionError, match="expected 3"):
        _verify(log, replace(good, path=good.path[:-1]))
    with pytest.raises(SigsumInclusionError, match="expected 3"):
        _verify(log, replace(good, path=good.path + good.path[:1]))
    with pytest.raises(SigsumInclusionError, match="leads to root"):
        _verify(log, replace(good, leaf_index=2))
    with pytest.raises(SigsumInclusionError, match="outside a tree of size 8"):
        _verify(log, replace(good, leaf_index=8))
    assert issubclass(SigsumInclusionError, InclusionProofError)


def test_size_one_tree() -> None:
    log, i = _setup(size=1, index=0)
    good = log.proof(i)
    assert good.path == () and good.cosigned_tree_head.tree_head.root_hash == sigsum_leaf_hash(log.leaves[0])
    assert _verify(log, good).tree_head.size == 1
    # a size-1 tree whose root is another leaf: signed and cosigned, but not of this package
    other = submit_leaf(SUB, message_of(b"other"))
    cth = log.cosigned_tree_head(1, root=sigsum_leaf_hash(other))
    with pytest.raises(SigsumInclusionError, match="size 1 is not this leaf"):
        _verify(log, with_tree_head(good, cth))
    with pytest.raises(SigsumInclusionError, match="size 1 has leaf 0 and no path"):
        _verify(log, replace(good, path=(bytes(32),)))


def test_bad_lengths_refused() -> None:
    log, i = _setup()
    with pytest.raises(SigsumError, match="32 bytes"):
        verify_proof(log.proof(i), message_of(PKG)[:31], SUB.pub, parse_policy(log.policy_text()), FILE)


def test_every_refusal_is_a_verification_error() -> None:
    # exit code 1 for the CLI; none of them is a usage or network error
    for cls in (SigsumSignatureError, SigsumQuorumError, SigsumInclusionError):
        assert issubclass(cls, VerificationError) and cls("x").exit_code == 1
