"""Remembered Sigsum tree heads: largest per log kept, older accepted, same size with another root refused."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import trio

from torfetch.errors import SigsumSplitViewError, SplitViewError, StateError
from torfetch.store.sigsumstate import STATE_FILE, SigsumStateStore, remember_async
from torfetch.verify.sigsum import MAX_REMEMBERED_HEADS, SigsumLogMemory, VerifiedTreeHead, remember_tree_head

LOG = bytes.fromhex("ab" * 32)
OTHER = bytes.fromhex("cd" * 32)


def head(size: int, root: int, log: bytes = LOG) -> VerifiedTreeHead:
    return VerifiedTreeHead(log, size, bytes([root]) * 32, frozenset())


def test_remembers_and_reads_back(tmp_path: Path) -> None:
    store = SigsumStateStore(tmp_path)
    store.remember(head(10, 1))
    store.remember(head(12, 2))
    store.remember(head(7, 3, OTHER))
    logs = SigsumStateStore(tmp_path).all_logs()
    assert logs[LOG].largest == (12, bytes([2]) * 32) and logs[OTHER].largest == (7, bytes([3]) * 32)
    doc = json.loads((tmp_path / STATE_FILE).read_text())
    assert doc == {"version": 1, "logs": {LOG.hex(): {"10": "01" * 32, "12": "02" * 32}, OTHER.hex(): {"7": "03" * 32}}}
    assert oct((tmp_path / STATE_FILE).stat().st_mode & 0o777) == "0o600"


def test_older_head_accepted_largest_kept(tmp_path: Path) -> None:
    store = SigsumStateStore(tmp_path)
    store.remember(head(20, 1))
    mem = store.remember(head(5, 9))  # a proof made earlier
    assert mem.largest == (20, bytes([1]) * 32)
    assert store.remember(head(20, 1)).largest == (20, bytes([1]) * 32)  # the same head again: fine


def test_same_size_other_root_is_a_split_view(tmp_path: Path) -> None:
    store = SigsumStateStore(tmp_path)
    store.remember(head(20, 1))
    store.remember(head(15, 4))
    before = (tmp_path / STATE_FILE).read_bytes()
    for h in (head(20, 2), head(15, 5)):
        with pytest.raises(SigsumSplitViewError, match=f"size {h.size} with root {h.root_hash.hex()}, but this machine "
                                                       "saw that size with root"):
            store.remember(h, filename="foo.pkg.tar.zst")
    assert (tmp_path / STATE_FILE).read_bytes() == before  # nothing of the fork remembered
    assert issubclass(SigsumSplitViewError, SplitViewError)
    # another log may have any root at that size
    store.remember(head(20, 2, OTHER))


def test_split_view_message_names_the_file() -> None:
    mem = remember_tree_head(SigsumLogMemory({}), head(3, 1))
    with pytest.raises(SigsumSplitViewError, match=r"^proof for x\.pkg\.tar\.zst: log abababab"):
        remember_tree_head(mem, head(3, 2), filename="x.pkg.tar.zst")


def test_memory_is_bounded_and_keeps_the_largest() -> None:
    mem = SigsumLogMemory({})
    for size in range(1, MAX_REMEMBERED_HEADS + 50):
        mem = remember_tree_head(mem, head(size, size % 251))
    assert len(mem.heads) == MAX_REMEMBERED_HEADS
    assert mem.largest is not None and mem.largest[0] == MAX_REMEMBERED_HEADS + 49
    assert min(mem.heads) == 50  # the smallest sizes go first


@pytest.mark.parametrize("content", [
    b"not json", b"[]", b'{"version": 1}', b'{"version": 1, "logs": {"xyz": {}}}',
    b'{"version": 1, "logs": {"' + b"ab" * 32 + b'": {"0": "' + b"00" * 32 + b'"}}}',
    b'{"version": 1, "logs": {"' + b"ab" * 32 + b'": {"01": "' + b"00" * 32 + b'"}}}',
    b'{"version": 1, "logs": {"' + b"ab" * 32 + b'": {"3": "' + b"0" * 63 + b'"}}}',
    b'{"version": 1, "logs": {"' + b"ab" * 32 + b'": {"3": 5}}}',
    b'{"version": "1", "logs": {}}', b'{"version": 0, "logs": {}}', b"[" * 100000,
])
def test_corrupt_state_is_an_error_never_reset(tmp_path: Path, content: bytes) -> None:
    (tmp_path / STATE_FILE).write_bytes(content)
    with pytest.raises(StateError, match="corrupt"):
        SigsumStateStore(tmp_path).remember(head(1, 1))
    assert (tmp_path / STATE_FILE).read_bytes() == content


def test_newer_version_is_named(tmp_path: Path) -> None:
    (tmp_path / STATE_FILE).write_text('{"version": 7, "logs": {}}')
    with pytest.raises(StateError, match="version 7, newer than this torfetch"):
        SigsumStateStore(tmp_path).all_logs()


def test_symlink_refused(tmp_path: Path) -> None:
    target = tmp_path / "elsewhere.json"
    target.write_text('{"version": 1, "logs": {}}')
    os.symlink(target, tmp_path / STATE_FILE)
    with pytest.raises(StateError, match="symbolic link"):
        SigsumStateStore(tmp_path).remember(head(1, 1))


def test_locked_by_another_run_is_waited_for(tmp_path: Path) -> None:
    store = SigsumStateStore(tmp_path)
    with store.locked():
        with pytest.raises(BlockingIOError):
            store.remember(head(1, 1), wait=False)

    async def main() -> None:
        # the lock is free: the async path remembers at once
        mem = await remember_async(store, head(4, 4))
        assert mem.largest == (4, bytes([4]) * 32)

    trio.run(main)
