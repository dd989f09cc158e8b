"""AtomicOutput: the file appears whole at OUTPUT, or nothing appears."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from torfetch.store.output import AtomicOutput, remove_leftovers, temp_prefix


def _temps(d: Path) -> list[str]:
    return [p.name for p in d.iterdir() if p.name.startswith(".torfetch-")]


def test_commit_renames_whole_file(tmp_path: Path) -> None:
    out = tmp_path / "foo.pkg.tar.zst.part"
    with AtomicOutput(out) as o:
        o.write(b"abc")
        o.write(b"def")
        assert not out.exists()  # nothing visible before commit
        assert len(_temps(tmp_path)) == 1
        o.commit()
    assert out.read_bytes() == b"abcdef"
    assert _temps(tmp_path) == []


def test_failure_removes_temp_and_stale_output(tmp_path: Path) -> None:
    out = tmp_path / "foo.pkg.tar.zst.part"
    out.write_bytes(b"stale partial from an earlier try")
    with pytest.raises(RuntimeError):
        with AtomicOutput(out) as o:
            assert not out.exists()  # the stale file is never trusted or appended to
            o.write(b"new")
            raise RuntimeError("check failed")
    assert not out.exists()
    assert _temps(tmp_path) == []


def test_leaving_without_commit_leaves_nothing(tmp_path: Path) -> None:
    out = tmp_path / "x.part"
    with AtomicOutput(out) as o:
        o.write(b"data")
    assert not out.exists() and _temps(tmp_path) == []


def test_remove_leftovers_only_touches_our_pid(tmp_path: Path) -> None:
    out = tmp_path / "x.part"
    mine = tmp_path / (temp_prefix(out) + "abc.tmp")
    other = tmp_path / (temp_prefix(out, pid=os.getpid() + 1) + "abc.tmp")
    mine.write_bytes(b"1")
    other.write_bytes(b"2")
    out.write_bytes(b"3")
    remove_leftovers(out)
    assert not mine.exists() and not out.exists()
    assert other.exists()  # another process's download in progress
