"""Remembered log trees: atomic, locked across processes, never through a symlink, never silently reset."""

from __future__ import annotations

import fcntl
import json
import multiprocessing
import os
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torfetch.errors import StateError
from torfetch.store.logstate import LogStateStore
from torfetch.verify.logstate import LogState, TreeHead, TreeRecord

LOG = "ab" * 32
OTHER = "cd" * 32


def _worker(directory: str, start: int, n: int) -> None:
    store = LogStateStore(Path(directory))
    for size in range(start, start + n):
        with store.locked() as st:
            cur = st.get(LOG)
            trees = dict(cur.trees)
            if 1 not in trees or size > trees[1].head.size:
                trees[1] = TreeRecord(TreeHead(size, size.to_bytes(32, "big")))
            # a second tree updated in the same critical section
            mine = 1000 + start
            trees[mine] = TreeRecord(TreeHead((trees[mine].head.size if mine in trees else 0) + 1, b"\x00" * 32))
            st.put(LOG, LogState("o", trees))


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    procs = [multiprocessing.get_context("fork").Process(target=_worker, args=(str(tmp_path), i * 100 + 1, 40))
             for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    trees = LogStateStore(tmp_path).all_logs()[LOG].trees
    assert trees[1].head.size == 340  # the largest any process saw
    for i in range(4):
        assert trees[1000 + i * 100 + 1].head.size == 40  # no lost update
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


def test_round_trip_keeps_trees_frozen_flags_and_name(tmp_path: Path) -> None:
    state = LogState("rekor.test", {5: TreeRecord(TreeHead(3, b"\x01" * 32), frozen=True),
                                    7: TreeRecord(TreeHead(1, b"\x02" * 32))})
    with LogStateStore(tmp_path).locked() as st:
        st.put(LOG, state)
        st.put(OTHER, LogState(None, {9: TreeRecord(TreeHead(2, b"\x03" * 32))}))
    logs = LogStateStore(tmp_path).all_logs()
    assert logs[LOG] == state and logs[OTHER].origin_name is None
    assert json.loads((tmp_path / "log-heads.json").read_text())["version"] == 2


def _v1(heads: dict) -> bytes:
    return json.dumps({"version": 1, "heads": heads}).encode()


def test_version_1_file_is_migrated(tmp_path: Path) -> None:
    (tmp_path / "log-heads.json").write_bytes(_v1({
        f"{LOG}/42": {"size": 7, "root": "11" * 32, "origin": "rekor.test - 42"},
        f"{LOG}/43": {"size": 2, "root": "22" * 32, "origin": "rekor.test - 43"},
    }))
    store = LogStateStore(tmp_path)
    expected = LogState("rekor.test", {42: TreeRecord(TreeHead(7, b"\x11" * 32)),
                                       43: TreeRecord(TreeHead(2, b"\x22" * 32))})
    assert store.all_logs() == {LOG: expected}
    with store.locked() as st:  # the next update writes version 2
        st.put(OTHER, LogState("x", {1: TreeRecord(TreeHead(1, b"\x00" * 32))}))
    doc = json.loads((tmp_path / "log-heads.json").read_text())
    assert doc["version"] == 2 and store.all_logs()[LOG] == expected


@pytest.mark.parametrize("heads,why", [
    ({f"{LOG}/rekor.test": {"size": 7, "root": "11" * 32, "origin": "rekor.test"}}, "cannot be migrated"),
    ({f"{LOG}/1": {"size": 7, "root": "11" * 32, "origin": "a.test - 1"},
      f"{LOG}/2": {"size": 7, "root": "11" * 32, "origin": "b.test - 2"}}, "two origin names"),
])
def test_version_1_that_cannot_be_migrated_is_named(tmp_path: Path, heads: dict, why: str) -> None:
    (tmp_path / "log-heads.json").write_bytes(_v1(heads))
    with pytest.raises(StateError, match=why):
        LogStateStore(tmp_path).all_logs()


def _v2(size: object, *, frozen: object = False, tree: str = "42", log: str = LOG) -> bytes:
    return json.dumps({"version": 2, "logs": {log: {"origin": "o", "trees": {
        tree: {"size": size, "root": "00" * 32, "frozen": frozen}}}}}).encode()


@pytest.mark.parametrize("content", [
    b"{not json", b"[]", b'{"version": 1, "heads": {"x": {"size": "1", "root": "00"}}}', b'{"version": "2"}',
    b'{"version": true, "logs": {}}', _v2("1"), _v2(1.0), _v2(1, frozen="no"), _v2(1, tree="042"), _v2(1, tree="\u0664\u0662"),
    _v2(1, log="AB" * 32), b"[" * 100_000 + b"]" * 100_000, b'{"version": 2, "logs": {}, "extra": 1}',
])
def test_corrupt_state_is_an_error_not_a_reset(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "log-heads.json").write_bytes(content)
    store = LogStateStore(tmp_path)
    with pytest.raises(StateError, match="corrupt"):
        with store.locked():
            pass
    assert (tmp_path / "log-heads.json").read_bytes() == content  # untouched


@pytest.mark.parametrize("size", [0, -1, True, False, 2**64])
def test_zero_negative_or_boolean_size_is_named_corrupt(tmp_path: Path, size: object) -> None:
    (tmp_path / "log-heads.json").write_bytes(_v2(size))
    with pytest.raises(StateError, match="corrupt .*remembered size .* is not a positive integer"):
        LogStateStore(tmp_path).all_logs()
    (tmp_path / "log-heads.json").write_bytes(_v1({f"{LOG}/42": {"size": size, "root": "00" * 32, "origin": "o - 42"}}))
    with pytest.raises(StateError, match="remembered size"):
        LogStateStore(tmp_path).all_logs()


def test_newer_version_is_refused_with_advice(tmp_path: Path) -> None:
    (tmp_path / "log-heads.json").write_bytes(b'{"version": 3, "logs": {}}')
    with pytest.raises(StateError, match="newer than this torfetch") as ei:
        LogStateStore(tmp_path).all_logs()
    assert "upgrade" in (ei.value.hint or "")


def test_control_characters_in_a_corrupt_state_are_not_echoed_raw(tmp_path: Path) -> None:
    (tmp_path / "log-heads.json").write_bytes(_v2(1, tree="\x1b[2J\x1b]0;pwned\x07"))
    with pytest.raises(StateError) as ei:
        LogStateStore(tmp_path).all_logs()
    assert "\x1b" not in ei.value.message and "\x07" not in ei.value.message and "\\x1b" in ei.value.message


@pytest.mark.parametrize("name", ["log-heads.json", "log-heads.lock"])
def test_state_and_lock_are_not_opened_through_a_symlink(tmp_path: Path, name: str) -> None:
    target = tmp_path / "elsewhere"
    target.write_bytes(b"precious")
    state = tmp_path / "state"
    state.mkdir()
    (state / name).symlink_to(target)
    with pytest.raises(StateError, match="symbolic link"):
        with LogStateStore(state).locked() as st:
            st.put(LOG, LogState("o", {1: TreeRecord(TreeHead(1, b"\x00" * 32))}))
    assert target.read_bytes() == b"precious"


def test_fifo_as_state_file_is_refused_without_blocking(tmp_path: Path) -> None:
    os.mkfifo(tmp_path / "log-heads.json")
    with pytest.raises(StateError, match="not a regular file"):
        LogStateStore(tmp_path).all_logs()


def test_nonblocking_lock_reports_contention(tmp_path: Path) -> None:
    store = LogStateStore(tmp_path)
    fd = os.open(tmp_path / "log-heads.lock", os.O_RDWR | os.O_CREAT)
    pid = os.fork()
    if pid == 0:  # child holds the lock briefly
        fcntl.flock(fd, fcntl.LOCK_EX)
        time.sleep(1.0)
        os._exit(0)
    try:
        time.sleep(0.3)
        with pytest.raises(BlockingIOError):
            with store.locked(wait=False):
                pass
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    with store.locked(wait=False) as st:  # free again
        st.put(LOG, LogState("o", {1: TreeRecord(TreeHead(1, b"\x00" * 32))}))
    assert json.loads((tmp_path / "log-heads.json").read_text())["logs"][LOG]["trees"]["1"]["size"] == 1


_json = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-2**70, max_value=2**70) | st.floats() | st.text(max_size=70),
    lambda children: st.lists(children, max_size=4) | st.dictionaries(st.text(max_size=70), children, max_size=4),
    max_leaves=20,
)


def _plausible(draw_doc: object) -> bytes:
    return json.dumps(draw_doc).encode()


_docs = st.one_of(
    st.binary(max_size=300),
    _json.map(_plausible),
    st.builds(lambda v, logs: _plausible({"version": v, "logs": logs}), st.sampled_from([1, 2]),
              st.dictionaries(st.sampled_from([LOG, "x", ""]), _json, max_size=2)),
    st.builds(lambda v, trees, origin: _plausible({"version": v, "heads": trees, "logs": {LOG: {"origin": origin, "trees": trees}}}),
              st.sampled_from([1, 2]),
              st.dictionaries(st.sampled_from(["1", "42", f"{LOG}/42", "0", "-1"]),
                              st.fixed_dictionaries({"size": _json, "root": st.sampled_from(["00" * 32, "zz", 3]),
                                                     "frozen": _json, "origin": _json}), max_size=2),
              _json),
)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(content=_docs)
def test_state_reader_raises_only_state_errors(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "log-heads.json").write_bytes(content)
    try:
        logs = LogStateStore(tmp_path).all_logs()
    except StateError:
        return
    for lid, state in logs.items():  # whatever it accepted is well-formed
        assert len(lid) == 64 and all(r.head.size > 0 and len(r.head.root_hash) == 32 for r in state.trees.values())
