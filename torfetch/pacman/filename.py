"""Package file names: which URLs need proof, and what a filename says (pure)."""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from ..errors import MalformedInputError


@dataclass(frozen=True)
class PackageFilename:
    pkgname: str
    version: str  # [epoch:]pkgver-pkgrel
    arch: str
    extension: str  # "" or e.g. "zst"


def filename_from_url(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    name = urllib.parse.unquote(path.rsplit("/", 1)[-1])
    if not name or "/" in name or name.startswith(".") or "\x00" in name or len(name) > 255:
        raise MalformedInputError(f"refusing unusable file name in URL {url!r}")
    return name


def needs_proof(url_or_filename: str) -> bool:
    """pacman-bintrans's rule: the name ends in .pkg.tar or .pkg.tar.<ext>."""
    name = urllib.parse.unquote(urllib.parse.urlsplit(url_or_filename).path.rsplit("/", 1)[-1])
    parts = name.split(".")
    if len(parts) >= 3 and parts[-2:] == ["pkg", "tar"]:
        return True
    return len(parts) >= 4 and parts[-3:-1] == ["pkg", "tar"]


_NAME = re.compile(r"^(?P<name>.+)-(?P<ver>[^-]+)-(?P<rel>[^-]+)-(?P<arch>[^-]+)\.pkg\.tar(?:\.(?P<ext>[A-Za-z0-9]+))?$")


def parse_package_filename(filename: str) -> PackageFilename:
    m = _NAME.match(filename)
    if not m:
        raise MalformedInputError(f"{filename!r} is not a pacman package file name (name-ver-rel-arch.pkg.tar[.ext])")
    return PackageFilename(m["name"], f"{m['ver']}-{m['rel']}", m["arch"], m["ext"] or "")
