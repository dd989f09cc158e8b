"""verify/log_frontier.py: the frontier recomputes RFC 9162 roots; the monitor's leaf verdicts."""

from __future__ import annotations

import hashlib

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import StateError
from torfetch.verify import merkle
from torfetch.verify.log_frontier import (ALERT, BAD_SIGNATURE, EMPTY_ROOT, FOREIGN, OK, Frontier, classify_leaf,
                                          expected_checksum)


def leaves(n: int) -> list[bytes]:
    return [merkle.leaf_hash(i.to_bytes(4, "big")) for i in range(n)]


def test_the_empty_frontier_has_the_empty_tree_root() -> None:
    assert Frontier().root() == EMPTY_ROOT == hashlib.sha256(b"").digest()


@given(st.integers(min_value=1, max_value=300), st.integers(min_value=0, max_value=300))
@settings(max_examples=60, deadline=None)
def test_appending_in_two_runs_gives_the_root_of_the_whole_tree(n: int, cut: int) -> None:
    hs = leaves(n)
    cut = min(cut, n)
    first = Frontier().extend(hs[:cut])
    resumed = Frontier.from_bytes(first.size, first.to_bytes()).extend(hs[cut:])  # as stored between runs
    assert resumed.size == n
    assert resumed.root() == merkle.root_of(hs)
    assert len(resumed.nodes) == bin(n).count("1")


def test_one_changed_leaf_changes_the_root() -> None:
    hs = leaves(13)
    forged = hs[:7] + [merkle.leaf_hash(b"forged")] + hs[8:]
    assert Frontier().extend(forged).root() != merkle.root_of(hs)


@pytest.mark.parametrize("size,nodes", [(3, 1), (4, 2), (0, 1), (-1, 0)])
def test_a_stored_frontier_of_the_wrong_shape_is_refused(size: int, nodes: int) -> None:
    with pytest.raises(StateError):
        Frontier.from_bytes(size, b"\x00" * 32 * nodes)


def test_leaf_verdicts() -> None:
    me, other = b"\x01" * 32, b"\x02" * 32
    known = expected_checksum("ab" * 32)
    assert known == hashlib.sha256(bytes.fromhex("ab" * 32)).digest()
    kw = {"submitter_keyhash": me, "expected": {known}}
    assert classify_leaf(known, b"s" * 64, me, signature_ok=True, **kw) == OK
    assert classify_leaf(b"\x09" * 32, b"s" * 64, me, signature_ok=True, **kw) == ALERT
    assert classify_leaf(b"\x09" * 32, b"s" * 64, other, signature_ok=False, **kw) == FOREIGN
    assert classify_leaf(known, b"s" * 64, me, signature_ok=False, **kw) == BAD_SIGNATURE
