"""The transparency-signature check of one package: pure, bytes in, result out.

pacman-bintrans-sign signs the 64 lowercase hex characters of the package's
sha256 and puts the package filename in the trusted comment. pacman-bintrans
does not compare that comment with the requested file; torfetch does, so a
valid signature for another package cannot be replayed onto this one.

The rule: a trusted comment may mention no package file name but this one.
Every ``.pkg.tar`` in the comment (as written, and percent-decoded once) must
lie inside an occurrence of this file's own name (or its ``%3A``-encoded
spelling) that stands as a word of its own: no package-name character right
before it, no letter or digit right after it, and for an uncompressed
``….pkg.tar`` no ``.ext`` after it either (that would name another file).
So ``foo-1-1-x86_64.pkg.tar.zst`` (pacman-bintrans-sign), minisign's default
``timestamp:… file:foo-1-1-x86_64.pkg.tar.zst`` and ``….pkg.tar.zst.sha256``
pass; ``xfoo-1-…``, ``foo… bar-2-1-any.pkg.tar.zst`` or a glob such as
``*.pkg.tar.zst`` are refused.
"""

from __future__ import annotations

import re
import urllib.parse
from dataclasses import dataclass

from ..errors import SignatureError
from . import minisign

# The shape of a pacman package filename: name-ver-rel-arch.pkg.tar[.ext]
_PKG_FILENAME = re.compile(r"^[^\s/]+-[^\s/-]+-[^\s/-]+-[^\s/-]+\.pkg\.tar(\.[A-Za-z0-9]+)?$")


@dataclass(frozen=True)
class SignatureCheck:
    filename: str
    sha256_hex: str
    key_id: str
    prehashed: bool
    trusted_comment: str  # sanitised
    signature: minisign.Signature


def looks_like_package_filename(text: str) -> bool:
    return bool(_PKG_FILENAME.match(text))


_PKG_TAR = re.compile(r"\.pkg\.tar", re.IGNORECASE)
_NAME_CHARS = frozenset("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789@._+-")
MAX_COMMENT_CHARS = 4096  # far above what fits in a 1 KiB .t; bounds the scan


def _spellings(filename: str) -> set[str]:
    return {filename, filename.replace(":", "%3A"), filename.replace(":", "%3a"),
            urllib.parse.quote(filename, safe="")}


def _covered(text: str, start: int, end: int, spellings: set[str], bare_tar: bool) -> bool:
    """Is text[start:end] (a ".pkg.tar") inside a stand-alone occurrence of one of the spellings?"""
    for name in spellings:
        lo = max(0, end - len(name))
        p = text.find(name, lo)
        while p != -1 and p <= start:
            q = p + len(name)
            if q >= end:
                before_ok = p == 0 or text[p - 1] not in _NAME_CHARS
                after = text[q:q + 2]
                after_ok = not (after[:1].isascii() and after[:1].isalnum())
                if bare_tar and after[:1] == "." and after[1:2].isascii() and after[1:2].isalnum():
                    after_ok = False  # "….pkg.tar" + ".zst" names another file
                if before_ok and after_ok:
                    return True
            p = text.find(name, p + 1)
    return False


def other_package_mentioned(comment: str, filename: str) -> str | None:
    """The first other package file name (or ``.pkg.tar`` fragment) the comment mentions, else None."""
    if len(comment) > MAX_COMMENT_CHARS:
        return comment[:80]  # too long to judge: fail closed (never judge only a prefix)
    spellings = _spellings(filename)
    bare_tar = filename.lower().endswith(".pkg.tar")
    texts = [comment]
    decoded = urllib.parse.unquote(texts[0], errors="replace")
    if decoded != texts[0]:
        texts.append(decoded)
    for text in texts:
        for m in _PKG_TAR.finditer(text):
            if not _covered(text, m.start(), m.end(), spellings, bare_tar):
                lo = max(0, m.start() - 60)
                return text[lo:m.end() + 20]
    return None


def check_transparency_signature(
    *, filename: str, sha256_hex: str, sig_bytes: bytes, pubkey: minisign.PublicKey, max_bytes: int = 1024
) -> SignatureCheck:
    sig = minisign.Signature.parse(sig_bytes, max_bytes=max_bytes)
    message = sha256_hex.lower().encode("ascii")
    minisign.verify(pubkey, sig, message, subject=filename)
    comment = sig.trusted_comment.decode("utf-8", "replace").strip()
    if len(comment) > MAX_COMMENT_CHARS:
        raise SignatureError(f"trusted comment of the signature for {filename} is over {MAX_COMMENT_CHARS} characters")
    other = other_package_mentioned(comment, filename)
    if other is not None or (looks_like_package_filename(comment) and comment != filename):
        raise SignatureError(
            f"signature for {filename} was issued for another package "
            f"(trusted comment mentions {minisign.sanitise(other if other is not None else comment, 120)!r})",
            hint="a valid signature was replayed onto a different file",
        )
    return SignatureCheck(
        filename=filename,
        sha256_hex=sha256_hex.lower(),
        key_id=pubkey.key_id_hex,
        prehashed=sig.prehashed,
        trusted_comment=minisign.sanitise(comment),
        signature=sig,
    )
