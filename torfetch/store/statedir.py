"""Where torfetch keeps what must survive between runs (remembered log heads).

pacman 7 runs XferCommand as its ``DownloadUser`` (Arch: ``alpm``) with HOME still ``/root``, so nothing may
depend on HOME there. The system directory ``/var/lib/torfetch`` (``alpm:alpm``, 0700, made by the install:
tmpfiles.d, the PKGBUILD or ``torfetch setup``) is the default whenever it exists, the process is root, or the
process is the DownloadUser; only an ordinary user without it falls back to ``$XDG_STATE_HOME/torfetch``.
When the system directory is missing or not writable, the error is one line naming the directory, the user and
the command that fixes it.
"""

from __future__ import annotations

import grp
import os
import pwd
import stat
from dataclasses import dataclass
from pathlib import Path

from ..errors import StateError

SYSTEM_STATE_DIR = Path("/var/lib/torfetch")
DEFAULT_DOWNLOAD_USER = "alpm"
PACMAN_CONF = Path("/etc/pacman.conf")
MAX_PACMAN_CONF_BYTES = 256 * 1024
# the files LogStateStore and SigsumStateStore open for writing (store/logstate.py, store/sigsumstate.py); names only
STATE_FILES = ("log-heads.lock", "log-heads.json", "sigsum-heads.lock", "sigsum-heads.json")


@dataclass(frozen=True)
class User:
    uid: int
    name: str
    group: str

    def describe(self) -> str:
        return f"{self.name} (uid {self.uid})"


def _user_of(uid: int) -> User:
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        return User(uid, str(uid), str(os.getegid()))
    try:
        group = grp.getgrgid(pw.pw_gid).gr_name
    except KeyError:
        group = str(pw.pw_gid)
    return User(uid, pw.pw_name, group)


def current_user() -> User:
    return _user_of(os.geteuid())


def parse_download_user(text: str) -> str | None:
    """``DownloadUser`` from the ``[options]`` section of a pacman.conf text (no Include following)."""
    section = ""
    for raw in text.splitlines():
        line = raw.split("#", 1)[0].strip()
        if line.startswith("[") and line.endswith("]"):
            section = line[1:-1].strip()
            continue
        key, sep, value = line.partition("=")
        if sep and section == "options" and key.strip() == "DownloadUser" and value.strip():
            return value.strip()
    return None


def download_user_name(pacman_conf: Path = PACMAN_CONF) -> str:
    """pacman.conf's DownloadUser, else Arch's default ``alpm``."""
    try:
        with open(pacman_conf, "rb") as f:
            text = f.read(MAX_PACMAN_CONF_BYTES).decode("utf-8", "replace")
    except OSError:
        return DEFAULT_DOWNLOAD_USER
    return parse_download_user(text) or DEFAULT_DOWNLOAD_USER


def download_user_uid(name: str) -> int | None:
    try:
        return pwd.getpwnam(name).pw_uid
    except KeyError:
        return None


def choose_state_dir(*, euid: int, download_uid: int | None, system_dir_exists: bool,
                     xdg_state_home: str | None, home: Path, system_dir: Path = SYSTEM_STATE_DIR) -> Path:
    """The decision alone: the system directory unless an ordinary user runs without one."""
    if system_dir_exists or euid == 0 or (download_uid is not None and euid == download_uid):
        return system_dir
    base = Path(xdg_state_home) if xdg_state_home else home / ".local" / "state"
    return base / "torfetch"


def fix_command(user: User, directory: Path) -> str:
    setup = "sudo torfetch setup" if user.name == DEFAULT_DOWNLOAD_USER and directory == SYSTEM_STATE_DIR else (
        f"sudo torfetch setup --user {user.name}" + ("" if directory == SYSTEM_STATE_DIR else f" --state-dir {directory}"))
    return f"'{setup}' (or: sudo install -d -o {user.name} -g {user.group} -m 0700 {directory})"


def check_state_dir(directory: Path, user: User, *, owner: str | None = None) -> None:
    """Raise the one-line StateError when ``user`` cannot keep its state in ``directory``.

    ``owner`` is the user the directory is meant for (pacman's DownloadUser): another user is not told to take
    it over, which would break pacman, but to run as root or choose its own --state-dir."""
    if user.uid == 0:
        return  # root can write anywhere; LogStateStore creates the directory if needed
    try:
        st = os.stat(directory)
    except FileNotFoundError:
        raise StateError(f"the state directory {directory} does not exist; torfetch runs as {user.describe()}: "
                         f"create it with {fix_command(user, directory)}") from None
    except OSError as exc:
        raise StateError(f"cannot reach the state directory {directory} as {user.describe()} ({exc.strerror}): "
                         f"fix it with {fix_command(user, directory)}") from exc
    problem = None
    if not stat.S_ISDIR(st.st_mode):
        problem = "is not a directory"
    elif not os.access(directory, os.W_OK | os.X_OK):
        problem = f"is not writable by {user.describe()} (owner uid {st.st_uid}, mode {stat.S_IMODE(st.st_mode):04o})"
    else:
        for name in STATE_FILES:
            p = directory / name
            if os.path.lexists(p) and not os.access(p, os.R_OK | os.W_OK):
                problem = f"holds {name}, which {user.describe()} cannot write"
                break
    if problem is None:
        return
    if owner is not None and owner != user.name and directory == SYSTEM_STATE_DIR:
        raise StateError(f"the state directory {directory} {problem}: it is pacman's DownloadUser {owner}'s; "
                         f"run torfetch as root or as {owner}, or pass --state-dir DIR of your own")
    raise StateError(f"the state directory {directory} {problem}: fix it with {fix_command(user, directory)}")


def default_state_dir(*, system_dir: Path = SYSTEM_STATE_DIR, pacman_conf: Path = PACMAN_CONF) -> Path:
    """The state directory to use when --state-dir is not given; checked when it is the system one."""
    euid = os.geteuid()
    system_exists = os.path.lexists(system_dir)
    download_uid = None if system_exists or euid == 0 else download_user_uid(download_user_name(pacman_conf))
    chosen = choose_state_dir(euid=euid, download_uid=download_uid, system_dir_exists=system_exists,
                              xdg_state_home=os.environ.get("XDG_STATE_HOME") or None,
                              home=Path(os.path.expanduser("~")), system_dir=system_dir)
    if chosen == system_dir and euid != 0:
        check_state_dir(chosen, current_user(), owner=download_user_name(pacman_conf))
    return chosen


def state_dir_for(explicit: Path | None, *, system_dir: Path = SYSTEM_STATE_DIR,
                  pacman_conf: Path = PACMAN_CONF) -> Path:
    """--state-dir (or the config's ``state_dir``) if given, else the default; the system directory is checked
    either way, so the shipped /etc/torfetch.toml (which names it) gets the same one-line fix as the default."""
    if explicit is None:
        return default_state_dir(system_dir=system_dir, pacman_conf=pacman_conf)
    if explicit == system_dir and os.geteuid() != 0:
        check_state_dir(explicit, current_user(), owner=download_user_name(pacman_conf))
    return explicit


OPERATOR_STATE_DIR = Path("/var/lib/torfetch-operator")


def default_operator_state_dir(*, euid: int | None = None, environ: dict[str, str] | None = None,
                               home: Path | None = None, system_dir: Path = OPERATOR_STATE_DIR) -> Path:
    """Where ``torfetch sign`` and ``monitor`` keep their records without --state-dir: never the client's
    /var/lib/torfetch, which belongs to pacman's DownloadUser (and whose mere existence makes it the client's
    default), but a directory of the operator's own: /var/lib/torfetch-operator for root, else
    ``$XDG_STATE_HOME/torfetch-operator``. The stores create it (0700) on first use."""
    if (os.geteuid() if euid is None else euid) == 0:
        return system_dir
    env = os.environ if environ is None else environ
    xdg = env.get("XDG_STATE_HOME") or None
    base = Path(xdg) if xdg else (home or Path(os.path.expanduser("~"))) / ".local" / "state"
    return base / "torfetch-operator"
