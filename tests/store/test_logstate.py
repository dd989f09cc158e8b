"""Remembered tree heads: atomic, locked across processes, never silently reset."""

from __future__ import annotations

import json
import multiprocessing
from pathlib import Path

import pytest

from torfetch.errors import StateError
from torfetch.store.logstate import LogStateStore
from torfetch.verify.logstate import TreeHead


def _worker(directory: str, start: int, n: int) -> None:
    store = LogStateStore(Path(directory))
    for size in range(start, start + n):
        with store.locked() as st:
            cur = st.get("log", "tree")
            if cur is None or size > cur.size:
                st.put("log", "tree", TreeHead(size, size.to_bytes(32, "big")), "o")
            # a second key updated in the same critical section
            other = st.get("log", f"w{start}")
            st.put("log", f"w{start}", TreeHead((other.size if other else 0) + 1, b"\x00" * 32), "o")


def test_concurrent_processes_lose_nothing(tmp_path: Path) -> None:
    procs = [multiprocessing.get_context("fork").Process(target=_worker, args=(str(tmp_path), i * 100, 40))
             for i in range(4)]
    for p in procs:
        p.start()
    for p in procs:
        p.join(60)
        assert p.exitcode == 0
    heads = LogStateStore(tmp_path).all_heads()
    assert heads["log/tree"].size == 339  # the largest any process saw
    for i in range(4):
        assert heads[f"log/w{i * 100}"].size == 40  # no lost update
    assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".tmp")] == []


@pytest.mark.parametrize("content", [b"{not json", b"[]", b'{"version": 1, "heads": {"x": {"size": "1", "root": "00"}}}',
                                     b'{"version": 99, "heads": {}}'])
def test_corrupt_state_is_an_error_not_a_reset(tmp_path: Path, content: bytes) -> None:
    (tmp_path / "log-heads.json").write_bytes(content)
    store = LogStateStore(tmp_path)
    with pytest.raises(StateError, match="corrupt"):
        with store.locked():
            pass
    assert (tmp_path / "log-heads.json").read_bytes() == content  # untouched


def test_nonblocking_lock_reports_contention(tmp_path: Path) -> None:
    store = LogStateStore(tmp_path)
    import fcntl
    import os

    tmp_path.mkdir(exist_ok=True)
    fd = os.open(tmp_path / "log-heads.lock", os.O_RDWR | os.O_CREAT)
    pid = os.fork()
    if pid == 0:  # child holds the lock briefly
        fcntl.flock(fd, fcntl.LOCK_EX)
        os.write(1, b"")
        import time

        time.sleep(1.0)
        os._exit(0)
    try:
        import time

        time.sleep(0.3)
        with pytest.raises(BlockingIOError):
            with store.locked(wait=False):
                pass
    finally:
        os.waitpid(pid, 0)
        os.close(fd)
    with store.locked(wait=False) as st:  # free again
        st.put("l", "t", TreeHead(1, b"\x00" * 32), "o")
    assert json.loads((tmp_path / "log-heads.json").read_text())["heads"]["l/t"]["size"] == 1
