"""What torfetch needs from a pacman.conf: where the sync dbs are and which repositories they are (pure, bounded).

pacman does not tell XferCommand which db a package came from, so torfetch
reads the pacman.conf in use (``--pacman-conf``) for ``[options] DBPath``
(pacman's default: ``<RootDir>/var/lib/pacman/``, RootDir defaulting to ``/``)
and the repository section names; the sync dbs are ``<DBPath>/sync/<repo>.db``.
``Include`` lines are not followed (a DBPath set only in an included file is
not seen: then the default applies, and a wrong db can only cause a refusal,
never an accepted file).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import ConfigError

MAX_CONF_BYTES = 1024 * 1024
MAX_LINES = 100_000
MAX_REPOS = 1_000
_SECTION = re.compile(r"\[([^\[\]]+)\]")
# a repo name becomes a file name under DBPath/sync: nothing that could climb out of it
_REPO_NAME = re.compile(r"[A-Za-z0-9@._+-]{1,255}")


@dataclass(frozen=True)
class PacmanConf:
    dbpath: str  # absolute, ending in "/"
    repos: tuple[str, ...]  # in file order, no duplicates

    def sync_db_paths(self) -> tuple[str, ...]:
        return tuple(f"{self.dbpath}sync/{repo}.db" for repo in self.repos)


def parse_pacman_conf(text: str, *, source: str = "pacman.conf") -> PacmanConf:
    """``[options]`` DBPath / RootDir and the repository sections; everything else is pacman's business."""
    if len(text) > MAX_CONF_BYTES:
        raise ConfigError(f"{source} is larger than {MAX_CONF_BYTES} bytes")
    lines = text.split("\n")
    if len(lines) > MAX_LINES:
        raise ConfigError(f"{source} has more than {MAX_LINES} lines")
    section: str | None = None
    dbpath: str | None = None
    rootdir: str | None = None
    repos: list[str] = []
    for number, raw in enumerate(lines, 1):
        line = raw.split("#", 1)[0].strip()
        if not line:
            continue
        m = _SECTION.fullmatch(line)
        if m:
            section = m.group(1).strip()
            if section != "options":
                if not _REPO_NAME.fullmatch(section) or section in (".", ".."):
                    raise ConfigError(f"{source} line {number}: [{section[:80]}] is not a repository name")
                if section not in repos:
                    if len(repos) >= MAX_REPOS:
                        raise ConfigError(f"{source} has more than {MAX_REPOS} repositories")
                    repos.append(section)
            continue
        if section != "options":
            continue
        key, sep, value = line.partition("=")
        key, value = key.strip(), value.strip()
        if not sep or not value:
            continue
        if key == "DBPath":
            dbpath = value
        elif key == "RootDir":
            rootdir = value
    if dbpath is None:
        # as pacman: without DBPath, the db lives under RootDir
        dbpath = (rootdir or "/").rstrip("/") + "/var/lib/pacman/"
    if not dbpath.startswith("/"):
        raise ConfigError(f"{source}: DBPath {dbpath[:200]} is not an absolute path")
    if not dbpath.endswith("/"):
        dbpath += "/"
    return PacmanConf(dbpath=dbpath, repos=tuple(repos))


__all__ = ["MAX_CONF_BYTES", "PacmanConf", "parse_pacman_conf"]
