"""What an upgrade will download, from pacman's own answer (pure, bounded).

Why ask pacman (``pacman --config FILE -Sup --print-format '%l'``) instead of
working it out from the sync dbs: only pacman knows what ``-Su`` will pick
(IgnorePkg, replaces, provides, conflicts, dependency resolution, the version
rules); re-implementing libalpm would be a second, subtly different answer, and
a package pacman then wants that the prefetch did not foresee costs one serial
XferCommand call, while a package the prefetch fetched that pacman does not
want costs a download. The sync dbs are still read, for one thing pacman does
not print: each package's ``%SHA256SUM%``, which the downloaded bytes must have.

Everything here is bytes/text in, typed values out: the command's output, the
pacman arguments that move the db or the cache (``--dbpath``, ``--cachedir``).
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from ..errors import MalformedInputError, UsageError
from .filename import filename_from_url, parse_package_filename

_REPO = re.compile(r"[A-Za-z0-9@._+-]{1,255}")

MAX_PLAN_BYTES = 4 * 1024 * 1024  # a full Arch -Syu prints ~100 bytes per package
MAX_PACKAGES = 10_000
MAX_LINE = 8192
# what torfetch itself adds to the plan and the upgrade: the user must not give them again
_OWN_OPTIONS = ("--config", "--print-format", "--print", "-p")


@dataclass(frozen=True)
class PlannedPackage:
    repo: str  # the repository pacman takes it from (%r)
    url: str  # as pacman printed it (%l): the first Server's URL, or file:// for a file already in CacheDir
    filename: str  # the URL's last segment (what pacman names the file in CacheDir)

    @property
    def file_path(self) -> str | None:
        """The local path of a file:// URL (a file pacman found in CacheDir, or a local repository), else None."""
        parts = urllib.parse.urlsplit(self.url)
        if parts.scheme.lower() != "file":
            return None
        return urllib.parse.unquote(parts.path)

    def in_cachedir(self, cachedirs: tuple[str, ...]) -> bool:
        """pacman found it in one of its CacheDirs (and prints it unchecked): the prefetch checks it."""
        path = self.file_path
        return path is not None and any(path == d.rstrip("/") + "/" + self.filename for d in cachedirs)


@dataclass(frozen=True)
class PacmanPaths:
    """What the pacman arguments change about the db and the cache."""

    dbpath: str | None = None  # --dbpath (the last one, as pacman), None: pacman.conf's
    cachedirs: tuple[str, ...] = ()  # every --cachedir, in order: pacman puts them before pacman.conf's CacheDirs


PRINT_FORMAT = "%r %l"


def parse_print_output(data: bytes) -> tuple[PlannedPackage, ...]:
    """The ``%r %l`` lines ``pacman -Sup --print-format '%r %l'`` printed, in pacman's order.

    pacman prints nothing else on stdout with --print (warnings go to stderr), so a line that is
    not a repository name and a URL naming a package file is refused, never skipped: the plan
    would silently miss it.
    """
    if len(data) > MAX_PLAN_BYTES:
        raise MalformedInputError(f"pacman's upgrade plan is larger than {MAX_PLAN_BYTES} bytes")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f"pacman's upgrade plan is not UTF-8 (byte {exc.start})") from None
    out: list[PlannedPackage] = []
    seen: set[str] = set()
    for number, line in enumerate(text.split("\n"), 1):
        line = line.strip()
        if not line:
            continue
        if len(line) > MAX_LINE:
            raise MalformedInputError(f"pacman's upgrade plan, line {number}: longer than {MAX_LINE} characters")
        repo, _, url = line.partition(" ")
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if not _REPO.fullmatch(repo) or scheme not in ("http", "https", "file") or " " in url:
            raise MalformedInputError(f"pacman's upgrade plan, line {number}: not '<repo> <package URL>': {_show(line)}")
        filename = filename_from_url(url)
        if filename != url.rsplit("/", 1)[-1]:
            # pacman stores the URL's last segment byte for byte; torfetch's checks use it decoded: they must agree
            raise MalformedInputError(f"pacman's upgrade plan, line {number}: a file name with %-escapes or a "
                                      f"query is not supported: {_show(line)}")
        parse_package_filename(filename)  # a name pacman would store in CacheDir, nothing that climbs out of it
        if filename in seen:
            continue
        if len(out) >= MAX_PACKAGES:
            raise MalformedInputError(f"pacman's upgrade plan lists more than {MAX_PACKAGES} packages")
        seen.add(filename)
        out.append(PlannedPackage(repo=repo, url=url, filename=filename))
    return tuple(out)


def cachedirs(pacman_conf_output: bytes) -> tuple[str, ...]:
    """The CacheDirs ``pacman-conf CacheDir`` printed, in order: pacman downloads into the first."""
    dirs: list[str] = []
    for line in pacman_conf_output.decode("utf-8", "replace").splitlines()[:1000]:
        line = line.strip()
        if line:
            if not line.startswith("/"):
                raise UsageError(f"pacman's CacheDir {_show(line)} is not an absolute path")
            dirs.append(line)
    if not dirs:
        raise UsageError("pacman-conf printed no CacheDir")
    return tuple(dirs)


def first_server(pacman_conf_output: bytes, repo: str) -> str:
    """The first ``Server`` of ``repo`` as ``pacman-conf --repo REPO Server`` printed it ($repo/$arch replaced)."""
    for line in pacman_conf_output.decode("utf-8", "replace").splitlines()[:1000]:
        line = line.strip()
        if line:
            scheme = urllib.parse.urlsplit(line).scheme.lower()
            if scheme not in ("http", "https", "file"):
                raise UsageError(f"repository {repo}: Server {_show(line)} is not an http(s) or file URL")
            return line.rstrip("/")
    raise UsageError(f"repository {repo} has no Server")


def pacman_paths(args: tuple[str, ...] | list[str]) -> PacmanPaths:
    """``--dbpath``/``--cachedir`` among the pacman arguments; options torfetch sets itself are refused."""
    dbpath: str | None = None
    caches: list[str] = []
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            break
        name, eq, value = a.partition("=")
        if name in _OWN_OPTIONS:
            raise UsageError(f"do not pass {a} to pacman here: torfetch sets --config and --print itself "
                             "(use --pacman-conf FILE)")
        if name in ("--root", "-r"):
            raise UsageError("--root is not supported by torfetch prefetch/upgrade: set RootDir, DBPath and "
                             "CacheDir in the pacman.conf given with --pacman-conf")
        if name in ("--dbpath", "-b", "--cachedir"):
            if not eq:
                if i + 1 >= len(args):
                    raise UsageError(f"pacman option {a} needs a value")
                value = args[i + 1]
                i += 1
            if not value.startswith("/"):
                raise UsageError(f"{name} {_show(value)} must be an absolute path")
            if name == "--cachedir":
                caches.append(value)
            else:
                dbpath = value
        i += 1
    return PacmanPaths(dbpath=dbpath, cachedirs=tuple(caches))


def _show(text: str) -> str:
    cleaned = "".join(c if c.isprintable() else "?" for c in text)
    return repr(cleaned[:120] + ("…" if len(cleaned) > 120 else ""))


__all__ = ["PRINT_FORMAT", "PacmanPaths", "PlannedPackage", "cachedirs", "first_server", "pacman_paths",
           "parse_print_output"]
