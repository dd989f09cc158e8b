"""AtomicOutput: the file appears whole at OUTPUT, or nothing appears."""

from __future__ import annotations

import errno
import os
import stat
import subprocess
import sys
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import LocalStorageError, NetworkError, OutputPathError
from torfetch.store.output import AtomicOutput, remove_leftovers, sweep_dead_temps, temp_pid, temp_prefix


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


# --- temp names stay within NAME_MAX ---------------------------------------------------------


@pytest.mark.parametrize("name", [
    "a" * 250 + ".part",                      # 255 ASCII bytes
    "\U0001F600" * 61 + "xyz.db.part",       # 61 four-byte characters + 11 ASCII = 255 bytes
], ids=["ascii", "four-byte-utf8"])
def test_a_255_byte_output_name_works(tmp_path: Path, name: str) -> None:
    assert len(os.fsencode(name)) == 255
    out = tmp_path / name
    with AtomicOutput(out) as o:
        assert o.temp_path is not None and len(os.fsencode(o.temp_path.name)) <= 255
        o.write(b"data")
        o.commit()
    assert out.read_bytes() == b"data" and _temps(tmp_path) == []


def test_committed_file_is_0644_whatever_the_umask(tmp_path: Path) -> None:
    out = tmp_path / "x.part"
    old = os.umask(0o077)
    try:
        with AtomicOutput(out) as o:
            o.write(b"x")
            o.commit()
    finally:
        os.umask(old)
    assert stat.S_IMODE(out.stat().st_mode) == 0o644  # pacman (maybe another user) must read it


# --- -O that is not a regular file is refused, never removed -----------------------------------


def test_non_regular_output_is_refused_and_kept(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.part"
    os.mkfifo(fifo)
    directory = tmp_path / "dir.part"
    directory.mkdir()
    (directory / "inside").write_bytes(b"keep")
    for path, kind in ((fifo, "a FIFO"), (directory, "a directory"), (Path("/dev/null"), "a character device")):
        with pytest.raises(OutputPathError, match=kind):
            with AtomicOutput(path):
                pass
        check = {fifo: stat.S_ISFIFO, directory: stat.S_ISDIR}.get(path, stat.S_ISCHR)
        assert check(os.lstat(path).st_mode)
        remove_leftovers(path)  # the last-resort cleanup leaves it alone too
        assert check(os.lstat(path).st_mode)
    assert (directory / "inside").read_bytes() == b"keep"
    assert _temps(tmp_path) == []


def test_symlink_at_output_is_replaced_not_followed(tmp_path: Path) -> None:
    target = tmp_path / "precious"
    target.write_bytes(b"keep")
    out = tmp_path / "x.part"
    out.symlink_to(target)
    with AtomicOutput(out) as o:
        assert not out.is_symlink()
        o.write(b"new")
        o.commit()
    assert out.read_bytes() == b"new" and not out.is_symlink() and target.read_bytes() == b"keep"


# --- disk full and friends are local-storage errors naming the directory -----------------------


@pytest.mark.parametrize("err", [errno.ENOSPC, errno.EDQUOT, errno.EIO], ids=errno.errorcode.get)
@pytest.mark.parametrize("where", ["write", "fsync"])
def test_disk_errors_are_local_storage_errors(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, err: int,
                                              where: str) -> None:
    out = tmp_path / "x.part"

    def fail(*args: object) -> None:
        raise OSError(err, os.strerror(err))

    with pytest.raises(LocalStorageError) as info:
        with AtomicOutput(out) as o:
            if where == "write":
                monkeypatch.setattr(os, "write", fail)
                o.write(b"x" * 10)
            else:
                o.write(b"x" * 10)
                monkeypatch.setattr(os, "fsync", fail)
                o.commit()
    monkeypatch.undo()
    assert not isinstance(info.value, NetworkError)
    line = info.value.one_line()
    assert line.startswith("torfetch: local storage: ") and str(tmp_path) in line and errno.errorcode[err] in line
    assert "\n" not in line
    assert info.value.exit_code == 1
    assert not out.exists() and _temps(tmp_path) == []


# --- the sweep of dead runs' temp files --------------------------------------------------------


def _dead_pid() -> int:
    """A PID that was ours a moment ago and is gone now (reaped)."""
    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(timeout=30)
    return p.pid


def test_temp_pid_parses_only_our_shape() -> None:
    assert temp_pid(".torfetch-core.db.part.1234.ab_cd9zz.tmp") == 1234
    assert temp_pid(".torfetch-a.b.c.part.7.abcdefgh.tmp") == 7
    for name in (".torfetch-x.1234.abc.tmp",        # mkstemp gives 8 characters
                 ".torfetch-x.1234.abcdefgh.tmpx", "torfetch-x.1234.abcdefgh.tmp", ".torfetch-x.0.abcdefgh.tmp",
                 ".torfetch-x.12345678.abcdefgh.tmp", ".torfetch-x.12a.abcdefgh.tmp", ".torfetch-x.١٢.abcdefgh.tmp",
                 ".log-heads.abcdefgh.tmp", "foo-1-1-any.pkg.tar.zst"):
        assert temp_pid(name) is None, name


def test_sweep_removes_only_dead_runs_regular_files_of_ours(tmp_path: Path) -> None:
    dead = _dead_pid()
    out = tmp_path / "x.part"
    dead_file = tmp_path / (temp_prefix(out, pid=dead) + "abcdefgh.tmp")
    other_dead = tmp_path / (temp_prefix(tmp_path / "other-1-1-any.pkg.tar.zst.part", pid=dead) + "zzzzzzzz.tmp")
    live = tmp_path / (temp_prefix(out, pid=os.getppid()) + "abcdefgh.tmp")
    mine = tmp_path / (temp_prefix(out) + "abcdefgh.tmp")
    near_miss = tmp_path / (temp_prefix(out, pid=dead) + "abc.tmp")
    unrelated = tmp_path / "foo-1-1-any.pkg.tar.zst"
    for p in (dead_file, other_dead, live, mine, near_miss, unrelated):
        p.write_bytes(b"x")
    # a symlink with our shape (to a file of ours elsewhere): neither it nor its target is touched
    target = tmp_path / "target"
    target.write_bytes(b"keep")
    link = tmp_path / (temp_prefix(out, pid=dead) + "linklink.tmp")
    link.symlink_to(target)
    # a directory with our shape
    d = tmp_path / (temp_prefix(out, pid=dead) + "dirdirdi.tmp")
    d.mkdir()
    removed = sweep_dead_temps(tmp_path)
    assert sorted(removed) == sorted([dead_file.name, other_dead.name])
    assert not dead_file.exists() and not other_dead.exists()
    for p in (live, mine, near_miss, unrelated, target, d):
        assert p.exists(), p
    assert link.is_symlink() and target.read_bytes() == b"keep"


def test_sweep_leaves_other_users_files(tmp_path: Path) -> None:
    f = tmp_path / (temp_prefix(tmp_path / "x.part", pid=_dead_pid()) + "abcdefgh.tmp")
    f.write_bytes(b"x")
    if os.geteuid() == 0:
        import pwd

        os.chown(f, pwd.getpwnam("nobody").pw_uid, -1)
        assert sweep_dead_temps(tmp_path) == []
    else:  # unprivileged we cannot give a file away: sweep as if we were another user
        assert sweep_dead_temps(tmp_path, uid=os.geteuid() + 1) == []
    assert f.exists()


def test_sweep_is_bounded(tmp_path: Path) -> None:
    dead = _dead_pid()
    for i in range(20):
        (tmp_path / (temp_prefix(tmp_path / f"f{i:02d}", pid=dead) + "abcdefgh.tmp")).write_bytes(b"x")
    removed = sweep_dead_temps(tmp_path, max_entries=5)
    assert len(removed) <= 5 and len(_temps(tmp_path)) >= 15


def test_atomic_output_sweeps_on_start(tmp_path: Path) -> None:
    stale = tmp_path / (temp_prefix(tmp_path / "y.part", pid=_dead_pid()) + "abcdefgh.tmp")
    stale.write_bytes(b"x" * 1000)
    with AtomicOutput(tmp_path / "x.part") as o:
        assert not stale.exists()
        o.write(b"a")
        o.commit()


@settings(max_examples=1000, deadline=None)
@given(name=st.text(st.characters(blacklist_characters="/\0", blacklist_categories=("Cs",)), min_size=1,
                    max_size=255).filter(lambda n: n not in (".", "..") and len(n.encode()) <= 255),
       pid=st.integers(1, 4_194_304))
def test_every_temp_name_fits_and_parses_back(name: str, pid: int) -> None:
    """Whatever pacman's %o is called, our temp name fits NAME_MAX and the sweep reads its PID back."""
    temp = temp_prefix(Path("/cache") / name, pid=pid) + "abcd_f90" + ".tmp"
    assert len(os.fsencode(temp)) <= 255
    assert temp_pid(temp) == pid
