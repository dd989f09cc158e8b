"""The transparency-signature check of one package: pure, bytes in, result out.

pacman-bintrans-sign signs the 64 lowercase hex characters of the package's
sha256 and puts the package filename in the trusted comment. pacman-bintrans
does not compare that comment with the requested file; torfetch does, so a
valid signature for another package cannot be replayed onto this one.
"""

from __future__ import annotations

import re
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


def check_transparency_signature(
    *, filename: str, sha256_hex: str, sig_bytes: bytes, pubkey: minisign.PublicKey, max_bytes: int = 1024
) -> SignatureCheck:
    sig = minisign.Signature.parse(sig_bytes, max_bytes=max_bytes)
    message = sha256_hex.lower().encode("ascii")
    minisign.verify(pubkey, sig, message, subject=filename)
    comment = sig.trusted_comment.decode("utf-8", "replace").strip()
    if looks_like_package_filename(comment) and comment != filename:
        raise SignatureError(
            f"signature for {filename} was issued for another package "
            f"(trusted comment names {minisign.sanitise(comment)!r})",
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
