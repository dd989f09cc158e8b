"""Package file names: which URLs need proof, and what a filename says (pure).

A pacman package file is ``NAME-[EPOCH:]PKGVER-PKGREL-ARCH.pkg.tar[.EXT]``.
The epoch's ``:`` reaches us literally (``foo-1:2.0-1-x86_64.pkg.tar.zst``,
as the repo database's ``%FILENAME%`` spells it) or percent-encoded
(``foo-1%3A2.0-1-...``, as some mirrors and pacman's URL building do); both
name the same package.
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


def filename_from_url(url: str) -> str:
    """The last segment of the URL's path, percent-decoded.

    Refuses names that are empty, start with ``.``, contain ``/`` (also as
    ``%2F``), NUL or a backslash, or are longer than 255 bytes: such a name
    cannot be a file pacman asked for, and would be unsafe as a path.
    """
    path = urllib.parse.urlsplit(url).path
    raw = path.rsplit("/", 1)[-1]
    try:
        name = urllib.parse.unquote(raw, errors="strict") if "%" in raw else raw
    except UnicodeDecodeError as exc:
        raise MalformedInputError(f"refusing undecodable file name in URL {url!r}") from exc
    if (not name or "/" in name or "\\" in name or name.startswith(".") or "\x00" in name
            or len(name.encode("utf-8", "surrogateescape")) > MAX_FILENAME):
        raise MalformedInputError(f"refusing unusable file name in URL {url!r}")
    return name


def _bintrans_rule(text: str) -> bool:
    # pacman-bintrans src/main.rs needs_transparency_proof(), on the whole string:
    # split at '.', from the end: the last part is "tar" or the one before it is;
    # then the next one is "pkg".
    parts = text.split(".")
    it = iter(reversed(parts))
    last = next(it, None)
    if last is not None and last != "tar" and next(it, None) != "tar":
        return False
    return next(it, None) == "pkg"


def needs_proof(url_or_filename: str) -> bool:
    """True if the file must be proven: the name ends in ``.pkg.tar`` or ``.pkg.tar.<ext>``.

    This is pacman-bintrans's rule, applied both to the string exactly as it
    applies it (the whole URL) and to the percent-decoded last path segment.
    Either one saying "package" is enough, so torfetch never demands less
    proof than pacman-bintrans would (a query string ``?x=a.pkg.tar.zst`` or
    an encoded ``%2Epkg`` cannot be used to skip the checks). ``.sig`` files,
    databases and everything else are fetched without proof.
    """
    if _bintrans_rule(url_or_filename):
        return True
    seg = urllib.parse.urlsplit(url_or_filename).path.rsplit("/", 1)[-1]
    # "/" keeps the rule's view of a URL: a bare "pkg.tar.zst" segment is no package name
    return _bintrans_rule("/" + urllib.parse.unquote(seg))


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

    A percent-encoded name (``1%3A2.0``) is decoded first; pacman names never
    contain ``%`` themselves. Raises MalformedInputError for anything else.
    """
    name = filename
    if "%" in name:
        try:
            name = urllib.parse.unquote(name, errors="strict")
        except UnicodeDecodeError as exc:
            raise MalformedInputError(f"{filename!r} is not a pacman package file name") from exc
    if len(name) > MAX_FILENAME:
        raise MalformedInputError(f"package file name is longer than {MAX_FILENAME} characters")
    m = _NAME.fullmatch(name)
    if not m:
        raise MalformedInputError(
            f"{filename!r} is not a pacman package file name (name-[epoch:]ver-rel-arch.pkg.tar[.ext])")
    return PackageFilename(m["name"], f"{m['ver']}-{m['rel']}", m["arch"], m["ext"] or "")
