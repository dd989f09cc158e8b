"""`torfetch setup`: the state directory for pacman 7's DownloadUser, made for real (the suite runs as root)."""

from __future__ import annotations

import os
import pwd
import sys
from pathlib import Path

import pytest

from torfetch.cli import main as cli_main

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="chown needs root")
NOBODY = pwd.getpwnam("nobody")


def _owner_mode(p: Path) -> tuple[int, int, int]:
    st = os.lstat(p)
    return st.st_uid, st.st_gid, st.st_mode & 0o7777


def test_creates_owned_0700_and_is_idempotent(tmp_path: Path, capsys) -> None:
    d = tmp_path / "torfetch"
    assert cli_main(["setup", "--user", "nobody", "--state-dir", str(d)]) == 0
    assert _owner_mode(d) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o700)
    assert f"{d} created: owner nobody (uid {NOBODY.pw_uid}), mode 0700" in capsys.readouterr().out
    assert cli_main(["setup", "--user", "nobody", "--state-dir", str(d)]) == 0
    assert "already in place" in capsys.readouterr().out
    assert _owner_mode(d) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o700)


def test_corrects_owner_mode_and_root_owned_state_files(tmp_path: Path, capsys) -> None:
    d = tmp_path / "torfetch"
    d.mkdir(mode=0o755)
    (d / "log-heads.json").write_text("{}")  # left by an earlier root run
    assert cli_main(["setup", "--user", "nobody", "--state-dir", str(d)]) == 0
    out = capsys.readouterr().out
    assert "corrected" in out and "mode 0755 -> 0700" in out
    assert _owner_mode(d) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o700)
    assert os.stat(d / "log-heads.json").st_uid == NOBODY.pw_uid


def test_download_user_read_from_pacman_conf(tmp_path: Path) -> None:
    conf = tmp_path / "pacman.conf"
    conf.write_text("[options]\nDownloadUser = nobody\n")
    d = tmp_path / "torfetch"
    assert cli_main(["setup", "--pacman-conf", str(conf), "--state-dir", str(d)]) == 0
    assert _owner_mode(d)[0] == NOBODY.pw_uid


def test_refuses_symlinked_dir_and_leaves_target_alone(tmp_path: Path, capsys) -> None:
    target = tmp_path / "elsewhere"
    target.mkdir(mode=0o755)
    link = tmp_path / "torfetch"
    link.symlink_to(target)
    assert cli_main(["setup", "--user", "nobody", "--state-dir", str(link)]) != 0
    err = capsys.readouterr().err
    assert "is a symlink" in err and err.count("\n") == 1
    assert _owner_mode(target) == (0, 0, 0o755)


def test_refuses_symlinked_state_file(tmp_path: Path, capsys) -> None:
    d = tmp_path / "torfetch"
    d.mkdir(mode=0o700)
    victim = tmp_path / "shadow"
    victim.write_text("x")
    (d / "log-heads.json").symlink_to(victim)
    assert cli_main(["setup", "--user", "nobody", "--state-dir", str(d)]) != 0
    assert "not a regular file" in capsys.readouterr().err
    assert os.stat(victim).st_uid == 0


def test_refuses_a_file_and_an_unknown_user(tmp_path: Path, capsys) -> None:
    f = tmp_path / "torfetch"
    f.write_text("")
    assert cli_main(["setup", "--user", "nobody", "--state-dir", str(f)]) != 0
    assert "is not a directory" in capsys.readouterr().err
    assert cli_main(["setup", "--user", "no-such-user-xyz", "--state-dir", str(tmp_path / "d")]) == 2
    assert "no user 'no-such-user-xyz'" in capsys.readouterr().err
    assert not (tmp_path / "d").exists()


def test_refuses_without_root(tmp_path: Path) -> None:
    """In a child that really is nobody: a clear refusal naming sudo, nothing created."""
    d = tmp_path / "d"
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:
        try:
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            sys.stderr = open(w, "w", closefd=False)  # the child's stderr into the pipe
            code = cli_main(["setup", "--user", "nobody", "--state-dir", str(d)])
            sys.stderr.write(f"exit={code}\n")
            sys.stderr.flush()
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        err = f.read().decode()
    os.waitpid(pid, 0)
    assert "must run as root" in err and "sudo torfetch setup" in err and "exit=2" in err, err
    assert not d.exists()
