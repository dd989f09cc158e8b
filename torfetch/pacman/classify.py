"""What is pacman asking for: repository metadata, a package's signature, or a package? (pure)

Fail closed: only what is positively repository metadata is fetched without
proof. The mirror controls the URL's file name (a package's ``%FILENAME%``
in the unsigned repo db), so the name alone proves nothing; pacman, not the
mirror, chooses the output path. Measured with pacman 6.0.2 and read from
pacman 7's source (see the project notes):

- sync databases are written into ``<DBPath>/sync/`` (pacman 7: a
  ``download-XXXXXX`` directory inside it) as ``<repo>.db.part``,
  ``<repo>.files.part`` and their signatures ``<repo>.db.sig.part``,
  ``<repo>.files.sig.part``; the URL is ``<server>/<repo>.db`` etc.;
- packages (and with ``pacman -U URL`` their ``.sig``) go into CacheDir
  (pacman 7: ``<CacheDir>/download-XXXXXX/``);
- ``%o``'s file name is always the URL's last ``/``-segment, byte for byte,
  plus ``.part`` (pacman's ``get_filename`` + ``get_tempfile``); pacman
  refuses a ``%FILENAME%`` containing ``/`` or starting with ``.``.

So metadata is: an output whose directory is named ``sync`` (or
``download-XXXXXX`` inside ``sync``), named ``<repo>.db[.sig].part`` or
``<repo>.files[.sig].part`` for a sane repo name, for a URL whose last
segment is exactly that name without ``.part`` (no query, no fragment). A
``.sig`` elsewhere is a package signature whose bytes must be checked
(``verify/openpgp.py``). Everything else is a package and needs full proof;
a name that is not a package file name is refused outright.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MalformedInputError, NotAPackageError
from .filename import PackageFilename, filename_from_url, parse_package_filename, split_url

PART = ".part"

# pacman's repo names are config section names; accept what real repos use
# (core, extra-testing, home_user_Arch, chaotic-aur, arch4edu, ...), nothing
# that starts with a dot or dash, no whitespace, no path characters.
_REPO = r"[A-Za-z0-9_][A-Za-z0-9_.+@-]{0,63}"
_METADATA_NAME = re.compile(rf"(?P<repo>{_REPO})\.(?P<kind>db|files)(?P<sig>\.sig)?")
# mkdtemp's "download-XXXXXX": six characters from [A-Za-z0-9]
_DOWNLOAD_DIR = re.compile(r"download-[A-Za-z0-9]{6}")


@dataclass(frozen=True)
class Metadata:
    """A sync database or its signature: fetched capped and atomic, without proof."""

    filename: str  # e.g. "core.db", "core.files.sig"
    repo: str
    kind: str  # "db" or "files"
    signature: bool


@dataclass(frozen=True)
class PackageSignature:
    """A package's detached ``.sig``: handed over only if it is an OpenPGP signature."""

    filename: str  # e.g. "foo-1-1-x86_64.pkg.tar.zst.sig"
    package: PackageFilename


@dataclass(frozen=True)
class Package:
    """A package: transparency signature, log proof and .PKGINFO check required."""

    filename: str
    parsed: PackageFilename


Classification = Metadata | PackageSignature | Package

__all__ = ["Classification", "Metadata", "NotAPackageError", "Package", "PackageSignature", "classify"]


def _components(path: str) -> list[str]:
    return [c for c in path.split("/") if c not in ("", ".")]


def _raw_url_name(url: str) -> str:
    # exactly what pacman takes as the file name: everything after the last '/'
    return url.rsplit("/", 1)[-1]


def _metadata(url: str, output: str) -> Metadata | None:
    parts = _components(output)
    if not parts or ".." in parts or not parts[-1].endswith(PART):
        return None
    name = parts[-1][: -len(PART)]
    m = _METADATA_NAME.fullmatch(name)
    if m is None:
        return None
    dirs = parts[:-1]
    in_sync = (len(dirs) >= 1 and dirs[-1] == "sync") or (
        len(dirs) >= 2 and _DOWNLOAD_DIR.fullmatch(dirs[-1]) is not None and dirs[-2] == "sync")
    if not in_sync:
        return None
    split = split_url(url)
    # pacman builds "<server>/<repo>.db": no query, no fragment, no encoding
    if _raw_url_name(url) != name or split.query or split.fragment or "?" in url or "#" in url:
        return None
    if split.path.rsplit("/", 1)[-1] != name:
        return None
    return Metadata(filename=name, repo=m["repo"], kind=m["kind"], signature=m["sig"] is not None)


def classify(url: str, output: str) -> Classification:
    """Decide from pacman's output path (``-O``) and the URL what this download needs.

    Raises NotAPackageError when the file is neither metadata nor a package
    (nor a package's signature), and MalformedInputError for an unusable URL
    file name. Pure: no file system access, the path is read as a string.
    """
    meta = _metadata(url, output)
    if meta is not None:
        return meta
    filename = filename_from_url(url)  # decoded exactly once
    out_parts = _components(output)
    out_name = out_parts[-1] if out_parts else ""
    if out_name.endswith(PART):
        out_name = out_name[: -len(PART)]
    if filename.endswith(".sig") and out_name.endswith(".sig"):
        try:
            pkg = parse_package_filename(filename[: -len(".sig")])
        except MalformedInputError:
            pass
        else:
            return PackageSignature(filename=filename, package=pkg)
    try:
        parsed = parse_package_filename(filename)
    except MalformedInputError as exc:
        raise NotAPackageError(
            f"{_show(filename)} is neither repository metadata nor a package file name: refusing it without proof",
            hint="only <repo>.db/.files (and .sig) that pacman writes into its sync directory skip the proof",
        ) from exc
    return Package(filename=filename, parsed=parsed)


def _show(name: str) -> str:
    # one printable line, whatever the mirror put in the name
    cleaned = "".join(c if c.isprintable() else "?" for c in name)
    return repr(cleaned[:120] + ("…" if len(cleaned) > 120 else ""))
