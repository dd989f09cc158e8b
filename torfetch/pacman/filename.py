"""Package file names: the URL's file name, and what a package file name says (pure).

A pacman package file is ``NAME-[EPOCH:]PKGVER-PKGREL-ARCH.pkg.tar[.EXT]``.
pacman puts the db's ``%FILENAME%`` into the URL as it is (the epoch's ``:``
literally, measured with pacman 6.0.2); a mirror link may percent-encode it
(``foo-1%3A2.0-1-...``). The URL's last segment is percent-decoded exactly
once, by ``filename_from_url``; ``parse_package_filename`` takes that decoded
name and decodes nothing (``%253A`` is ``%3A`` in the name, never ``:``).
Which downloads need proof is decided in ``classify.py``.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from ..errors import MalformedInputError

MAX_FILENAME = 255


@dataclass(frozen=True)
class PackageFilename:
    pkgname: str
    version: str  # [epoch:]pkgver-pkgrel, as .PKGINFO's pkgver and the db's %VERSION%
    arch: str
    extension: str  # "" (plain tar) or e.g. "zst"

    @property
    def filename(self) -> str:
        ext = f".{self.extension}" if self.extension else ""
        return f"{self.pkgname}-{self.version}-{self.arch}.pkg.tar{ext}"


def split_url(url: str) -> urllib.parse.SplitResult:
    """urlsplit with a typed error (it raises ValueError on e.g. ``http://[::1/x``)."""
    try:
        return urllib.parse.urlsplit(url)
    except ValueError as exc:
        raise MalformedInputError(f"refusing malformed URL {url[:200]!r}") from exc


def filename_from_url(url: str) -> str:
    """The last segment of the URL's path, percent-decoded.

    Refuses names that are empty, start with ``.``, contain ``/`` (also as
    ``%2F``), NUL or a backslash, or are longer than 255 bytes: such a name
    cannot be a file pacman asked for, and would be unsafe as a path.
    """
    raw = split_url(url).path.rsplit("/", 1)[-1]
    try:
        name = urllib.parse.unquote(raw, errors="strict") if "%" in raw else raw
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f"refusing undecodable file name in URL {url!r}") from exc
    if (not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name
            or len(name.encode("utf-8", "surrogateescape")) > MAX_FILENAME):
        raise MalformedInputError(f"refusing unusable file name in URL {url!r}")
    return name


# makepkg: pkgname is [a-z0-9@._+-], not starting with '-' or '.'; upper case is
# seen in the wild (AUR), so allowed. pkgver has no ':', '/', '-' or whitespace;
# epoch is digits; pkgrel is digits with an optional ".digits" (laxer here).
_NAME = re.compile(
    r"(?P<name>[A-Za-z0-9@_+][A-Za-z0-9@._+-]*)"
    r"-(?P<ver>(?:[0-9]+:)?[^-:/\s]+)"
    r"-(?P<rel>[^-:/\s]+)"
    r"-(?P<arch>[A-Za-z0-9_]+)"
    r"\.pkg\.tar(?:\.(?P<ext>[A-Za-z0-9]+))?"
)


def parse_package_filename(filename: str) -> PackageFilename:
    """``foo-bar-1:2.0-3-x86_64.pkg.tar.zst`` → PackageFilename("foo-bar", "1:2.0-3", "x86_64", "zst").

    ``filename`` is already decoded (``filename_from_url``); a ``%`` in it is
    a literal character, never decoded again. Raises MalformedInputError for
    anything that is not a package file name.
    """
    if len(filename.encode("utf-8", "surrogateescape")) > MAX_FILENAME:
        raise MalformedInputError(f"package file name is longer than {MAX_FILENAME} bytes")
    m = _NAME.fullmatch(filename)
    if not m:
        raise MalformedInputError(
            f"{filename!r} is not a pacman package file name (name-[epoch:]ver-rel-arch.pkg.tar[.ext])")
    return PackageFilename(m["name"], f"{m['ver']}-{m['rel']}", m["arch"], m["ext"] or "")
