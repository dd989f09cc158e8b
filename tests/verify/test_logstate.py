"""The split-view decision, pure (no files, no sockets)."""

from __future__ import annotations

import os

import pytest

from torfetch.errors import SplitViewError
from torfetch.verify import merkle
from torfetch.verify.logstate import ConsistencyNeeded, TreeHead, apply_consistency, check_against_remembered

LEAVES = [merkle.leaf_hash(os.urandom(8)) for _ in range(20)]


def head(n: int, leaves=LEAVES) -> TreeHead:
    return TreeHead(n, merkle.root_of(leaves[:n]))


def test_first_view_is_remembered() -> None:
    assert check_against_remembered(None, head(5), log="L") == head(5)


def test_same_head_is_fine_same_size_other_root_is_split_view() -> None:
    assert check_against_remembered(head(5), head(5), log="L") == head(5)
    forked = TreeHead(5, merkle.leaf_hash(b"other"))
    with pytest.raises(SplitViewError) as ei:
        check_against_remembered(head(5), forked, log="L")
    msg = str(ei.value)
    assert head(5).root_hash.hex() in msg and forked.root_hash.hex() in msg
    assert "report" in (ei.value.hint or "")


@pytest.mark.parametrize("old,new", [(5, 12), (12, 5)])
def test_growth_either_way_needs_a_proof_and_keeps_the_larger(old: int, new: int) -> None:
    d = check_against_remembered(head(old), head(new), log="L")
    assert isinstance(d, ConsistencyNeeded)
    small, large = sorted((old, new))
    assert (d.old.size, d.new.size) == (small, large)
    assert apply_consistency(d, merkle.consistency_proof(small, LEAVES[:large]), log="L") == head(large)


def test_forked_history_fails_consistency() -> None:
    forked = list(LEAVES)
    forked[2] = merkle.leaf_hash(b"rewritten")
    d = check_against_remembered(head(5), head(12, forked), log="L")
    assert isinstance(d, ConsistencyNeeded)
    with pytest.raises(SplitViewError, match="inconsistent history"):
        apply_consistency(d, merkle.consistency_proof(5, forked[:12]), log="L")
