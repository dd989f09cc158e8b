"""The state directory: /var/lib/torfetch for root and pacman 7's DownloadUser, one actionable line when unusable.

The non-root cases run for real in a forked child that drops to the ``nobody`` user (the suite runs as root
in CI), so permissions are the kernel's, not a mock's.
"""

from __future__ import annotations

import os
import pickle
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Callable, Iterator

import pytest

from torfetch.commands.setup import ensure_state_dir
from torfetch.errors import StateError
from torfetch.store.logstate import LogStateStore
from torfetch.store.statedir import (
    SYSTEM_STATE_DIR,
    User,
    check_state_dir,
    choose_state_dir,
    default_state_dir,
    parse_download_user,
)
from torfetch.verify.logstate import LogState, TreeHead, TreeRecord

LOG_ID = "ab" * 32

needs_root = pytest.mark.skipif(os.geteuid() != 0, reason="drops to the nobody user: needs root")
NOBODY = pwd.getpwnam("nobody")


def test_choice_system_dir_for_root_download_user_or_when_present() -> None:
    home = Path("/root")
    common = dict(xdg_state_home=None, home=home)
    assert choose_state_dir(euid=0, download_uid=None, system_dir_exists=False, **common) == SYSTEM_STATE_DIR
    # pacman 7's DownloadUser with HOME=/root: never HOME
    assert choose_state_dir(euid=955, download_uid=955, system_dir_exists=False, **common) == SYSTEM_STATE_DIR
    assert choose_state_dir(euid=1000, download_uid=955, system_dir_exists=True, **common) == SYSTEM_STATE_DIR
    # an ordinary user without the system directory keeps the XDG default
    assert choose_state_dir(euid=1000, download_uid=955, system_dir_exists=False, xdg_state_home=None,
                            home=Path("/home/u")) == Path("/home/u/.local/state/torfetch")
    assert choose_state_dir(euid=1000, download_uid=None, system_dir_exists=False, xdg_state_home="/x",
                            home=Path("/home/u")) == Path("/x/torfetch")


@pytest.mark.parametrize("text,expect", [
    ("[options]\nDownloadUser = alpm\n", "alpm"),
    ("[options]\n#DownloadUser = alpm\n", None),
    ("[options]\nDownloadUser=dl # comment\n[core]\nDownloadUser = x\n", "dl"),
    ("[core]\nDownloadUser = x\n", None),
    ("", None),
])
def test_parse_download_user(text: str, expect: str | None) -> None:
    assert parse_download_user(text) == expect


def _in_child_as_nobody(fn: Callable[[], object]) -> object:
    """Run fn in a forked child with nobody's uid/gid; return its result or the StateError message."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # child: drop privileges for real, then report through the pipe
        try:
            os.setgroups([])
            os.setgid(NOBODY.pw_gid)
            os.setuid(NOBODY.pw_uid)
            try:
                out: object = ("ok", fn())
            except StateError as exc:
                out = ("err", exc.one_line())
            os.write(w, pickle.dumps(out))
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        data = f.read()
    os.waitpid(pid, 0)
    return pickle.loads(data)


@pytest.fixture
def world_dir() -> Iterator[Path]:
    """A directory nobody can reach (pytest's tmp dirs are root-only)."""
    d = Path(tempfile.mkdtemp(prefix="torfetch-statedir-", dir="/var/tmp"))
    os.chmod(d, 0o755)
    yield d
    shutil.rmtree(d)


def _nobody() -> User:
    return User(NOBODY.pw_uid, "nobody", "nogroup")


@needs_root
def test_missing_dir_is_one_line_naming_dir_user_and_fix(world_dir: Path) -> None:
    state = world_dir / "state"
    kind, msg = _in_child_as_nobody(lambda: check_state_dir(state, _nobody()))
    assert kind == "err"
    assert "\n" not in msg
    assert msg.startswith("torfetch: state: ")
    assert str(state) in msg and f"nobody (uid {NOBODY.pw_uid})" in msg
    assert f"sudo install -d -o nobody -g nogroup -m 0700 {state}" in msg
    assert f"sudo torfetch setup --user nobody --state-dir {state}" in msg


@needs_root
def test_root_owned_dir_is_not_writable_then_setup_fixes_it(world_dir: Path) -> None:
    state = world_dir / "state"
    state.mkdir(mode=0o700)
    # an earlier root run (pacman 6) left its lock file behind, owned by root
    (state / "log-heads.lock").write_bytes(b"")
    os.chmod(state / "log-heads.lock", 0o600)
    kind, msg = _in_child_as_nobody(lambda: check_state_dir(state, _nobody()))
    assert kind == "err" and "is not writable by nobody" in msg and str(state) in msg
    os.chmod(state, 0o777)  # the directory is fine now, the root-owned lock file is not
    kind, msg = _in_child_as_nobody(lambda: check_state_dir(state, _nobody()))
    assert kind == "err" and "log-heads.lock" in msg
    os.chmod(state, 0o700)

    res = ensure_state_dir(state, NOBODY.pw_uid, NOBODY.pw_gid)
    assert not res.created and res.changed
    st = os.stat(state)
    assert (st.st_uid, st.st_gid, st.st_mode & 0o777) == (NOBODY.pw_uid, NOBODY.pw_gid, 0o700)

    def use() -> int:
        check_state_dir(state, _nobody())
        store = LogStateStore(state)
        with store.locked() as s:
            s.put(LOG_ID, LogState("o", {7: TreeRecord(TreeHead(7, b"\x01" * 32))}))
        return store.all_logs()[LOG_ID].trees[7].head.size

    assert _in_child_as_nobody(use) == ("ok", 7)


@needs_root
def test_download_user_gets_system_dir_not_home(world_dir: Path) -> None:
    """As pacman 7 runs it: the DownloadUser, HOME=/root; a missing system dir names the fix, not HOME."""
    conf = world_dir / "pacman.conf"
    conf.write_text("[options]\nDownloadUser = nobody\n")
    system = world_dir / "var-lib-torfetch"

    def pick() -> Path:
        os.environ["HOME"] = "/root"
        return default_state_dir(system_dir=system, pacman_conf=conf)

    kind, msg = _in_child_as_nobody(pick)
    assert kind == "err" and str(system) in msg and "does not exist" in msg and "/root" not in msg
    system.mkdir()
    os.chown(system, NOBODY.pw_uid, NOBODY.pw_gid)
    assert _in_child_as_nobody(pick) == ("ok", system)


@needs_root
def test_other_user_without_system_dir_uses_xdg(world_dir: Path) -> None:
    conf = world_dir / "pacman.conf"
    conf.write_text("[options]\nDownloadUser = root\n")

    def pick() -> Path:
        os.environ["XDG_STATE_HOME"] = str(world_dir / "xdg")
        return default_state_dir(system_dir=world_dir / "absent", pacman_conf=conf)

    assert _in_child_as_nobody(pick) == ("ok", world_dir / "xdg" / "torfetch")


@needs_root
def test_contrib_tmpfiles_line_makes_what_setup_makes(tmp_path: Path) -> None:
    """contrib/tmpfiles.d/torfetch.conf, as shipped, through the host's real systemd-tmpfiles in a scratch root."""
    conf = Path(__file__).resolve().parents[2] / "contrib/tmpfiles.d/torfetch.conf"
    (tmp_path / "etc").mkdir()
    (tmp_path / "var/lib").mkdir(parents=True)
    (tmp_path / "etc/passwd").write_text("root:x:0:0::/root:/bin/sh\nalpm:x:4242:4243::/:/usr/sbin/nologin\n")
    (tmp_path / "etc/group").write_text("root:x:0:\nalpm:x:4243:\n")
    r = subprocess.run(["systemd-tmpfiles", "--create", f"--root={tmp_path}", str(conf)],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    st = os.lstat(tmp_path / SYSTEM_STATE_DIR.relative_to("/"))
    assert (st.st_uid, st.st_gid, st.st_mode & 0o7777) == (4242, 4243, 0o700)


@needs_root
def test_other_user_is_not_told_to_take_over_the_download_users_dir(world_dir: Path, monkeypatch) -> None:
    """The system dir belongs to alpm; an ordinary user running torfetch by hand is pointed at root or
    --state-dir, not at a `setup --user` that would lock pacman out."""
    import torfetch.store.statedir as sd

    system = world_dir / "var-lib-torfetch"
    system.mkdir(mode=0o700)  # root-owned stands in for alpm-owned: nobody cannot write it
    monkeypatch.setattr(sd, "SYSTEM_STATE_DIR", system)
    kind, msg = _in_child_as_nobody(lambda: sd.check_state_dir(system, _nobody(), owner="alpm"))
    assert kind == "err" and "pacman's DownloadUser alpm" in msg and "--state-dir" in msg
    assert "setup" not in msg
    # the DownloadUser itself gets the command that fixes it
    kind, msg = _in_child_as_nobody(lambda: sd.check_state_dir(system, _nobody(), owner="nobody"))
    assert kind == "err" and "sudo install -d -o nobody -g nogroup -m 0700" in msg


@needs_root
def test_system_dir_named_in_the_config_gets_the_same_one_line_fix(world_dir: Path) -> None:
    """contrib/torfetch.toml says ``state_dir = "/var/lib/torfetch"``: naming the system directory must not lose
    the check the default gets (else a missing one fails late, as "Permission denied"); another directory a
    user names is theirs to have created (LogStateStore makes it), as before."""
    from torfetch.store.statedir import state_dir_for

    conf = world_dir / "pacman.conf"
    conf.write_text("[options]\nDownloadUser = nobody\n")
    system = world_dir / "var-lib-torfetch"
    kind, msg = _in_child_as_nobody(lambda: state_dir_for(system, system_dir=system, pacman_conf=conf))
    assert kind == "err" and f"the state directory {system} does not exist" in msg and "--user nobody" in msg, msg
    own = world_dir / "mine"
    assert _in_child_as_nobody(lambda: state_dir_for(own, system_dir=system, pacman_conf=conf)) == ("ok", own)
    assert _in_child_as_nobody(lambda: state_dir_for(None, system_dir=system, pacman_conf=conf))[0] == "err"


def test_operator_tools_keep_their_state_apart_from_the_clients() -> None:
    from torfetch.store.statedir import OPERATOR_STATE_DIR, SYSTEM_STATE_DIR, default_operator_state_dir

    assert default_operator_state_dir(euid=0) == OPERATOR_STATE_DIR != SYSTEM_STATE_DIR
    assert default_operator_state_dir(euid=1000, environ={"XDG_STATE_HOME": "/x/state"}) == \
        Path("/x/state/torfetch-operator")
    assert default_operator_state_dir(euid=1000, environ={}, home=Path("/home/op")) == \
        Path("/home/op/.local/state/torfetch-operator")


def test_sign_and_monitor_default_to_the_operator_directory() -> None:
    # the three operator entry points resolve a missing --state-dir through the operator default
    import inspect

    from torfetch.operator import monitor, signer, sigsum_monitor

    for mod in (monitor, signer, sigsum_monitor):
        src = inspect.getsource(mod)
        assert "default_operator_state_dir()" in src and "default_state_dir()" not in src, mod.__name__
