"""The split-view and tree-pinning decisions, pure (no files, no sockets)."""

from __future__ import annotations

import os

import pytest

from torfetch.errors import CheckpointError, SplitViewError
from torfetch.verify import merkle
from torfetch.verify.logstate import (HistoryCheck, LogInfo, LogState, NeedConsistency, NeedLogInfo, SeenTree,
                                      ShardHead, TreeHead, TreeRecord, Trusted)

LEAVES = [merkle.leaf_hash(os.urandom(8)) for _ in range(20)]
FORKED = [merkle.leaf_hash(b"rewritten")] + LEAVES[1:]
A, B, C = 111, 222, 333
NAME = "rekor.test"


def head(n: int, leaves=LEAVES) -> TreeHead:
    return TreeHead(n, merkle.root_of(leaves[:n]))


def seen(tree: int, n: int, leaves=LEAVES, name: str = NAME) -> SeenTree:
    return SeenTree(tree, name, head(n, leaves))


def state(**trees: TreeRecord) -> LogState:
    return LogState(NAME, {int(k[1:]): v for k, v in trees.items()})


def shard(tree: int, n: int, leaves=LEAVES, name: str = NAME) -> ShardHead:
    return ShardHead(tree, name, head(n, leaves))


def run(check: HistoryCheck, *, info: LogInfo | None = None, leaves_by_tree: dict[int, list[bytes]] | None = None,
        ) -> tuple[Trusted, list[object]]:
    """Drive the check as the I/O layer would, answering honestly from ``leaves_by_tree``."""
    steps: list[object] = []
    for _ in range(20):
        step = check.next_step()
        steps.append(step)
        if isinstance(step, Trusted):
            return step, steps
        if isinstance(step, NeedLogInfo):
            assert info is not None, "log info was not expected"
            check.give_log_info(info)
        else:
            assert isinstance(step, NeedConsistency)
            leaves = (leaves_by_tree or {}).get(step.tree, LEAVES)
            check.give_consistency(step, merkle.consistency_proof(step.old.size, leaves[: step.new.size]))
    raise AssertionError("did not finish")


def test_first_view_is_trust_on_first_use_and_pins_the_name() -> None:
    done, steps = run(HistoryCheck(LogState(), seen(A, 5), pinned_name=None, log="L"))
    assert steps == [done]  # nothing fetched
    assert done.state == LogState(NAME, {A: TreeRecord(head(5))})
    assert any("first view" in n for n in done.notes)


def test_same_head_is_fine_same_size_other_root_is_split_view() -> None:
    done, _ = run(HistoryCheck(state(t111=TreeRecord(head(5))), seen(A, 5), pinned_name=None, log="L"))
    assert done.state.trees[A] == TreeRecord(head(5))
    with pytest.raises(SplitViewError) as ei:
        HistoryCheck(state(t111=TreeRecord(head(5))), seen(A, 5, FORKED), pinned_name=None, log="L")
    assert head(5).root_hash.hex() in ei.value.message and head(5, FORKED).root_hash.hex() in ei.value.message
    assert "report" in (ei.value.hint or "")


@pytest.mark.parametrize("old,new", [(5, 12), (12, 5)])
def test_growth_either_way_needs_a_proof_and_keeps_the_larger(old: int, new: int) -> None:
    check = HistoryCheck(state(t111=TreeRecord(head(old))), seen(A, new), pinned_name=None, log="L")
    step = check.next_step()
    small, large = sorted((old, new))
    assert step == NeedConsistency(A, head(small), head(large))
    done, _ = run(check)
    assert done.state.trees[A] == TreeRecord(head(large))


def test_forked_history_fails_consistency() -> None:
    forked = list(LEAVES)
    forked[2] = merkle.leaf_hash(b"rewritten")
    check = HistoryCheck(state(t111=TreeRecord(head(5))), seen(A, 12, forked), pinned_name=None, log="L")
    with pytest.raises(SplitViewError, match="inconsistent history"):
        run(check, leaves_by_tree={A: forked})


def test_origin_name_must_be_the_pinned_or_remembered_one() -> None:
    with pytest.raises(CheckpointError, match="pinned to 'rekor.sigstore.dev'"):
        HistoryCheck(LogState(), seen(A, 5), pinned_name="rekor.sigstore.dev", log="L")
    with pytest.raises(CheckpointError, match="pinned to 'rekor.test'"):
        HistoryCheck(state(t111=TreeRecord(head(5))), seen(A, 5, name="other.test"), pinned_name=None, log="L")


def test_unseen_tree_needs_log_info() -> None:
    check = HistoryCheck(state(t111=TreeRecord(head(5))), seen(B, 3), pinned_name=None, log="L")
    assert check.next_step() == NeedLogInfo(B)


def test_unannounced_tree_is_a_split_view_printing_both_heads() -> None:
    check = HistoryCheck(state(t111=TreeRecord(head(5))), seen(B, 3, FORKED), pinned_name=None, log="L")
    with pytest.raises(SplitViewError, match="does not announce") as ei:
        check.give_log_info(LogInfo(shard(A, 9)))
    assert head(5).root_hash.hex() in ei.value.message and head(3, FORKED).root_hash.hex() in ei.value.message


def test_rotation_proves_the_old_tree_grew_then_freezes_it() -> None:
    new_leaves = [merkle.leaf_hash(os.urandom(8)) for _ in range(4)]
    check = HistoryCheck(state(t111=TreeRecord(head(5))), seen(B, 3, new_leaves), pinned_name=None, log="L")
    check.give_log_info(LogInfo(shard(B, 4, new_leaves), (shard(A, 9), shard(C, 7))))
    done, steps = run(check, leaves_by_tree={B: new_leaves})
    assert NeedConsistency(A, head(5), head(9)) in steps
    assert NeedConsistency(B, head(3, new_leaves), head(4, new_leaves)) in steps
    assert done.state.trees == {A: TreeRecord(head(9), frozen=True), B: TreeRecord(head(4, new_leaves))}


@pytest.mark.parametrize("final", [head(4), head(5, FORKED), head(9, FORKED)])
def test_old_tree_frozen_at_an_inconsistent_head_is_refused(final: TreeHead) -> None:
    check = HistoryCheck(state(t111=TreeRecord(head(5))), seen(B, 3), pinned_name=None, log="L")
    with pytest.raises(SplitViewError):
        check.give_log_info(LogInfo(shard(B, 3), (ShardHead(A, NAME, final),)))
        run(check, leaves_by_tree={A: FORKED})


def test_remembered_tree_missing_from_log_info_is_refused() -> None:
    check = HistoryCheck(state(t111=TreeRecord(head(5))), seen(B, 3), pinned_name=None, log="L")
    with pytest.raises(SplitViewError, match="no longer lists"):
        check.give_log_info(LogInfo(shard(B, 3), (shard(C, 2),)))


def test_log_info_under_another_name_is_refused() -> None:
    check = HistoryCheck(state(t111=TreeRecord(head(5))), seen(B, 3), pinned_name=None, log="L")
    with pytest.raises(CheckpointError, match="pinned"):
        check.give_log_info(LogInfo(shard(B, 3, name="evil.test"), (shard(A, 5),)))


def test_frozen_tree_beyond_its_final_size_is_refused_below_is_proven() -> None:
    st = state(t111=TreeRecord(head(9), frozen=True))
    with pytest.raises(SplitViewError, match="beyond the final head"):
        HistoryCheck(st, seen(A, 10), pinned_name=None, log="L")
    done, steps = run(HistoryCheck(st, seen(A, 6), pinned_name=None, log="L"))
    assert steps[0] == NeedConsistency(A, head(6), head(9))
    assert done.state == st  # still frozen at its final head


def test_frozen_tree_cannot_be_reactivated_or_refrozen_elsewhere() -> None:
    st = state(t111=TreeRecord(head(9), frozen=True), t222=TreeRecord(head(3)))
    check = HistoryCheck(st, seen(C, 2), pinned_name=None, log="L")
    with pytest.raises(SplitViewError, match="active"):
        check.give_log_info(LogInfo(shard(A, 9), (shard(B, 3), shard(C, 2))))
    check = HistoryCheck(st, seen(C, 2), pinned_name=None, log="L")
    with pytest.raises(SplitViewError, match="frozen at"):
        check.give_log_info(LogInfo(shard(C, 2), (shard(A, 10), shard(B, 3))))


def test_never_seen_inactive_tree_is_refused_even_when_announced() -> None:
    # only the active tree may be new: an unseen tree the log lists as inactive could be a fork for this user alone
    check = HistoryCheck(state(t222=TreeRecord(head(3))), seen(A, 5), pinned_name=None, log="L")
    with pytest.raises(SplitViewError, match="not the log's active tree"):
        check.give_log_info(LogInfo(shard(B, 4), (shard(A, 9),)))
    check = HistoryCheck(state(t222=TreeRecord(head(3))), seen(A, 10), pinned_name=None, log="L")
    with pytest.raises(SplitViewError, match="not the log's active tree"):
        check.give_log_info(LogInfo(shard(B, 3), (shard(A, 9),)))


def test_unasked_answers_are_refused() -> None:
    check = HistoryCheck(state(t111=TreeRecord(head(5))), seen(A, 7), pinned_name=None, log="L")
    with pytest.raises(ValueError):
        check.give_log_info(LogInfo(shard(A, 7)))
    with pytest.raises(ValueError):
        check.give_consistency(NeedConsistency(A, head(1), head(2)), [])
