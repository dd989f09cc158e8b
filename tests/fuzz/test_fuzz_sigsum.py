"""Sigsum proof files, log answers, policies and keys: only typed errors, whatever the bytes; forgeries never verify."""

from __future__ import annotations

import hashlib
from pathlib import Path

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import FUZZ_EXAMPLES, mutated_bytes, typed_errors_only
from tests.sigsum_vectors import Key, TestLog, message_of, serialize_v1
from torfetch.errors import ConfigError, MalformedInputError, SigsumError, SigsumPolicyError, TorfetchError
from torfetch.verify.sigsum import check_sigsum_proof
from torfetch.verify.sigsum_key import format_public_key, parse_public_key
from torfetch.verify.sigsum_policy import Policy, parse_policy
from torfetch.verify.sigsum_proof import (
    SigsumProof,
    parse_consistency_body,
    parse_inclusion_body,
    parse_leaves_body,
    parse_proof,
    parse_tree_head_body,
    serialize_proof,
)

VECTORS = Path(__file__).parent.parent / "vectors" / "sigsum"
SUB = Key(5)
PKG = b"fuzzed package"


def _log() -> tuple[TestLog, list[bytes]]:
    log = TestLog(witnesses=[Key(1), Key(2)])
    log.add_filler(3)
    i = log.add_message(SUB, message_of(PKG))
    log.add_filler(2)
    return log, [serialize_proof(log.proof(i)), serialize_v1(log.proof(i, version=1))]


LOG, HAND_MADE = _log()
SOLO = TestLog(witnesses=[Key(1), Key(2)])
SOLO.add_message(SUB, message_of(PKG))
HAND_MADE.append(serialize_proof(SOLO.proof(0)))
POLICY = parse_policy(LOG.policy_text())
SEEDS = HAND_MADE + [p.read_bytes() for p in sorted(VECTORS.glob("*.proof"))]
BODIES = [(parse_tree_head_body, "get-tree-head.body"), (parse_leaves_body, "get-leaves.body"),
          (parse_inclusion_body, "get-inclusion-proof.body"), (parse_consistency_body, "get-consistency-proof.body")]
POLICY_SEEDS = [(VECTORS / "policy").read_bytes(), LOG.policy_text(),
                LOG.policy_text(quorum="q", extra="group x any W1\ngroup q 2 x W2\n")]


def test_seeds_are_valid() -> None:
    for data in HAND_MADE[:2]:
        check_sigsum_proof(filename="f", proof_bytes=data, sha256=message_of(PKG), submitter_pub=SUB.pub, policy=POLICY)
    solo_policy = parse_policy(SOLO.policy_text())
    check_sigsum_proof(filename="f", proof_bytes=HAND_MADE[2], sha256=message_of(PKG), submitter_pub=SUB.pub,
                       policy=solo_policy)
    for fn, name in BODIES:
        fn((VECTORS / name).read_bytes())
    for p in POLICY_SEEDS:
        parse_policy(p)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(st.sampled_from(SEEDS).flatmap(mutated_bytes), st.binary(max_size=400)))
def test_fuzz_parse_proof(data: bytes) -> None:
    got = typed_errors_only(parse_proof, data)
    if isinstance(got, TorfetchError):
        assert isinstance(got, MalformedInputError) and isinstance(got, SigsumError)
        return
    assert isinstance(got, SigsumProof) and got.version in (1, 2)
    assert got.cosigned_tree_head.tree_head.size >= 1 and len(got.path) <= 63
    # what parses is written back in the canonical form, which parses to the same proof (v1: minus short checksum)
    again = parse_proof(serialize_proof(got))
    assert again.cosigned_tree_head == got.cosigned_tree_head and again.path == got.path
    if got.version == 2:  # hex is read in either case, as sigsum-go reads it, and written in lowercase
        assert serialize_proof(got) == data.lower()


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.sampled_from(HAND_MADE[:2]).flatmap(mutated_bytes))
def test_fuzz_mutated_proof_never_verifies_unless_unchanged(data: bytes) -> None:
    # a mutation that still verifies must have changed nothing that is signed or hashed
    res = typed_errors_only(check_sigsum_proof, filename="foo.pkg.tar.zst", proof_bytes=data, sha256=message_of(PKG),
                            submitter_pub=SUB.pub, policy=POLICY)
    if isinstance(res, TorfetchError):
        assert isinstance(res, SigsumError) and res.message.startswith("proof for foo.pkg.tar.zst")
        return
    proof = parse_proof(data)
    ref = parse_proof(HAND_MADE[0])
    assert (proof.log_keyhash, proof.leaf_keyhash, proof.leaf_signature, proof.leaf_index, proof.path) == (
        ref.log_keyhash, ref.leaf_keyhash, ref.leaf_signature, ref.leaf_index, ref.path)
    assert proof.cosigned_tree_head.tree_head == ref.cosigned_tree_head.tree_head


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.sampled_from(range(len(BODIES))).flatmap(
    lambda i: st.tuples(st.just(i), mutated_bytes((VECTORS / BODIES[i][1]).read_bytes()) | st.binary(max_size=300))))
def test_fuzz_log_answers(case: tuple[int, bytes]) -> None:
    i, data = case
    got = typed_errors_only(BODIES[i][0], data)
    if isinstance(got, TorfetchError):
        assert isinstance(got, MalformedInputError)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(st.sampled_from(POLICY_SEEDS).flatmap(mutated_bytes), st.binary(max_size=300)))
def test_fuzz_parse_policy(data: bytes) -> None:
    got = typed_errors_only(parse_policy, data)
    if isinstance(got, TorfetchError):
        assert isinstance(got, SigsumPolicyError) and got.exit_code == 2
        return
    assert isinstance(got, Policy) and got.logs
    need = got.required_cosignatures()
    assert got.quorum_met(set(got.witnesses))  # every group's threshold is at most its size
    assert need <= len(got.witnesses) and (need == 0) == got.quorum_met(set())


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(mutated_bytes(format_public_key(SUB.pub).encode()), mutated_bytes(SUB.pub.hex().encode()),
                 st.binary(max_size=120), st.text(max_size=120)))
def test_fuzz_public_key(data: bytes | str) -> None:
    got = typed_errors_only(parse_public_key, data)
    if isinstance(got, TorfetchError):
        assert isinstance(got, ConfigError)
    else:
        assert len(got) == 32


def test_digest_of_the_real_vectors_is_what_the_fuzzers_start_from() -> None:
    # the genuine proofs are among the seeds (not only hand-made ones)
    assert any(hashlib.sha256(s).digest() == hashlib.sha256((VECTORS / "pkg1.pkg.tar.zst.proof").read_bytes()).digest()
               for s in SEEDS)
