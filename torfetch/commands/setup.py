"""`torfetch setup`: create the state directory pacman 7's DownloadUser can write (run once, as root).

    sudo torfetch setup [--user NAME] [--state-dir DIR] [--pacman-conf FILE]

Idempotent: a directory that is already right is left alone; a wrong owner or mode is corrected, and so are
state files in it that an earlier root run left owned by root. A symlink (at the directory or at a state file
in it) is refused, never followed: the directory decides which log heads torfetch trusts.
"""

from __future__ import annotations

import argparse
import os
import pwd
import stat
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import NoReturn

from ..errors import ConfigError, StateError, TorfetchError, UsageError
from ..store.statedir import PACMAN_CONF, STATE_FILES, SYSTEM_STATE_DIR, download_user_name

MODE = 0o700


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _parser() -> argparse.ArgumentParser:
    p = _Parser(prog="torfetch setup",
                description=f"create {SYSTEM_STATE_DIR} owned by pacman's DownloadUser, mode 0700 (run as root)")
    p.add_argument("--user", default=None,
                   help="owner of the directory (default: DownloadUser from --pacman-conf, else alpm)")
    p.add_argument("--state-dir", type=Path, default=SYSTEM_STATE_DIR, help=f"directory to create (default {SYSTEM_STATE_DIR})")
    p.add_argument("--pacman-conf", type=Path, default=PACMAN_CONF, help=f"where to read DownloadUser (default {PACMAN_CONF})")
    return p


@dataclass(frozen=True)
class SetupResult:
    directory: Path
    created: bool
    changed: tuple[str, ...]  # what was corrected in an existing directory


def ensure_state_dir(directory: Path, uid: int, gid: int) -> SetupResult:
    """Create or correct ``directory`` (owner uid:gid, 0700) without following symlinks."""
    directory = Path(os.path.abspath(directory))
    created = False
    try:
        os.mkdir(directory, MODE)
        created = True
    except FileExistsError:
        pass
    except OSError as exc:
        raise StateError(f"cannot create {directory}: {exc.strerror}") from exc
    try:
        fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW)
    except OSError as exc:
        if os.path.islink(directory):
            raise StateError(f"{directory} is a symlink: refusing to use it as the state directory "
                             "(remove it, then run torfetch setup again)") from exc
        raise StateError(f"{directory} exists and is not a directory ({exc.strerror}): "
                         "move it away, then run torfetch setup again") from exc
    changed: list[str] = []
    try:
        st = os.fstat(fd)
        if (st.st_uid, st.st_gid) != (uid, gid):
            os.fchown(fd, uid, gid)
            if not created:
                changed.append(f"owner {st.st_uid}:{st.st_gid} -> {uid}:{gid}")
        if stat.S_IMODE(st.st_mode) != MODE:
            os.fchmod(fd, MODE)
            if not created:
                changed.append(f"mode {stat.S_IMODE(st.st_mode):04o} -> {MODE:04o}")
        for name in STATE_FILES:
            try:
                fst = os.stat(name, dir_fd=fd, follow_symlinks=False)
            except FileNotFoundError:
                continue
            if stat.S_ISLNK(fst.st_mode) or not stat.S_ISREG(fst.st_mode):
                raise StateError(f"{directory / name} is not a regular file: refusing to hand it to the download user")
            if (fst.st_uid, fst.st_gid) != (uid, gid):
                os.chown(name, uid, gid, dir_fd=fd, follow_symlinks=False)
                changed.append(f"{name} owner -> {uid}:{gid}")
    except OSError as exc:
        raise StateError(f"cannot set the owner of {directory}: {exc.strerror}") from exc
    finally:
        os.close(fd)
    return SetupResult(directory, created, tuple(changed))


def main(argv: list[str]) -> int:
    try:
        ns = _parser().parse_args(argv)
        name = ns.user or download_user_name(ns.pacman_conf)
        try:
            pw = pwd.getpwnam(name)
        except KeyError:
            raise ConfigError(f"no user {name!r} on this system: pacman 7 creates 'alpm' (its DownloadUser); "
                              "pass --user NAME for another one") from None
        if os.geteuid() != 0:
            raise ConfigError(f"torfetch setup must run as root to give {ns.state_dir} to {name}: "
                              f"sudo torfetch setup{'' if ns.user is None else ' --user ' + name}")
        res = ensure_state_dir(ns.state_dir, pw.pw_uid, pw.pw_gid)
    except TorfetchError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.exit_code
    what = "created" if res.created else ("corrected " + ", ".join(res.changed) if res.changed else "already in place")
    print(f"torfetch setup: {res.directory} {what}: owner {name} (uid {pw.pw_uid}), mode {MODE:04o}")
    return 0
