"""Is this a detached OpenPGP signature, and only that? (pure, bytes in, typed result out).

A ``.sig`` that pacman writes outside its sync directory (a package's detached
signature) is fetched without transparency proof, so it must be what it
claims before it is handed over: otherwise a mirror could rename a package
``….pkg.tar.zst.sig`` in its db and have it installed with no proof.

Accepted: one or more binary signature packets (RFC 4880 / RFC 9580, packet
tag 2, old or new header format, definite lengths), version 4 or 6, type 0x00
(a signature over a binary document, what ``gpg --detach-sign`` writes for a
package), a known public-key and hash algorithm, well-formed subpacket areas
with a creation time in the hashed area, and algorithm-sized signature values
that end exactly at the end of the packet; nothing before, between or after
the packets. ASCII armour is refused: gpg and pacman's tooling write binary.

Signature values (and notation subpackets) are free-form bytes, so a file can
be a valid packet and at the same time something libarchive (pacman's archive
reader) opens as a package: measured with bsdtar, a zip in an RSA value (the
seekable zip reader starts at the end) and a tar header in the first block
(the name field starts with the packet header) both list a ``.PKGINFO``.
The parser therefore also refuses a first block with a valid tar checksum,
zip headers anywhere, and a uuencode ``begin`` line anywhere (libarchive's uu
filter looks for one past leading lines; never seen in a real signature).
Every other format libarchive knows is recognised by a magic at offset 0,
which a signature packet's header never matches, except raw LZMA (no magic:
a properties byte <= 224 and a dictionary size from a list): an old-format
header with a 4-byte length (0x8a) passes that bid, so it is refused (gpg
writes 1- or 2-byte lengths for anything this small).

Nothing here checks the signature cryptographically: pacman does that.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from ..errors import MalformedInputError

MAX_SIGNATURE_BYTES = 16 * 1024
MAX_PACKETS = 8

SIGNATURE_TAG = 2
BINARY_DOCUMENT = 0x00

# public-key algorithm → (layout, max bits per MPI or exact native length)
_RSA, _TWO_MPI, _NATIVE = "rsa", "two-mpi", "native"
_PK_ALGOS: dict[int, tuple[str, int]] = {
    1: (_RSA, 16384),      # RSA (encrypt or sign)
    3: (_RSA, 16384),      # RSA sign-only (deprecated, still verifiable)
    17: (_TWO_MPI, 512),   # DSA: r, s are at most the subgroup size (q ≤ 256 bits, 512 allowed)
    19: (_TWO_MPI, 521),   # ECDSA: r, s below the curve order (P-521 at most)
    22: (_TWO_MPI, 263),   # EdDSALegacy: r, s (native 256 bits, or 0x40-prefixed)
    27: (_NATIVE, 64),     # Ed25519
    28: (_NATIVE, 114),    # Ed448
}
_V6_PK_ALGOS = {1, 3, 19, 27, 28}  # RFC 9580: no DSA, no EdDSALegacy in v6

# hash algorithm → v6 salt size (RFC 9580 table 23)
_HASH_ALGOS: dict[int, int] = {2: 0, 3: 0, 8: 16, 9: 24, 10: 32, 11: 16, 12: 16, 14: 32}
_V6_HASH_ALGOS = {8, 9, 10, 11, 12, 14}  # no SHA-1 / RIPEMD-160 in v6

_SUB_CREATION_TIME = 2
_SUB_ISSUER = 16
_SUB_ISSUER_FPR = 33
# subpacket types RFC 9580 defines for signatures; an unknown one marked critical is an error (RFC 9580 5.2.3.7)
_KNOWN_SUBPACKETS = {2, 3, 4, 5, 6, 7, 9, 11, 12, 16, 20, 21, 22, 23, 24, 25, 26, 27, 28, 29, 30, 31, 32, 33, 34, 35,
                     37, 38, 39}

# libarchive's uu filter finds "begin NNN " / "begin-base64 NNN " at the start of any line
_UU_BEGIN = re.compile(rb"(?:^|\n)begin(?:-base64)? [0-7]{3} ")


@dataclass(frozen=True)
class SignaturePacket:
    version: int
    sig_type: int
    pubkey_algo: int
    hash_algo: int
    creation_time: int
    issuer_key_id: bytes | None  # 8 bytes, from an Issuer subpacket
    issuer_fingerprint: bytes | None  # from an Issuer Fingerprint subpacket (version byte stripped)
    body_length: int  # bytes of the packet body


@dataclass(frozen=True)
class DetachedSignature:
    packets: tuple[SignaturePacket, ...]
    size: int


class _Reader:
    def __init__(self, data: bytes, start: int, end: int, what: str) -> None:
        self.data, self.pos, self.end, self.what = data, start, end, what

    def take(self, n: int) -> bytes:
        if n < 0 or self.pos + n > self.end:
            raise _fail(f"{self.what} is truncated")
        out = self.data[self.pos:self.pos + n]
        self.pos += n
        return out

    def byte(self) -> int:
        return self.take(1)[0]

    def uint(self, n: int) -> int:
        return int.from_bytes(self.take(n), "big")

    def left(self) -> int:
        return self.end - self.pos


def _fail(why: str) -> MalformedInputError:
    return MalformedInputError(f"not an OpenPGP signature: {why}")


def _packet_header(r: _Reader) -> tuple[int, int]:
    """→ (tag, body length), definite lengths only."""
    first = r.byte()
    if not first & 0x80:
        raise _fail(f"byte {r.pos - 1} is not a packet header (ASCII armour and other data are refused)")
    if first & 0x40:  # new format
        tag = first & 0x3F
        o1 = r.byte()
        if o1 < 192:
            length = o1
        elif o1 < 224:
            length = ((o1 - 192) << 8) + r.byte() + 192
        elif o1 == 255:
            length = r.uint(4)
        else:
            raise _fail("partial body lengths are not allowed in a signature packet")
    else:
        tag = (first >> 2) & 0x0F
        ltype = first & 0x03
        if ltype == 3:
            raise _fail("indeterminate packet length")
        if ltype == 2:
            # no tool writes a 4-byte length below 64 KiB, and 0x8a + length reads as a raw LZMA header
            # (properties byte, dictionary size) to libarchive's lzma filter
            raise _fail("old-format packet with a 4-byte length (not written for a signature; reads as lzma)")
        length = r.uint((1, 2, 4)[ltype])
    return tag, length


def _subpackets(r: _Reader, area_len: int, where: str) -> list[tuple[int, bytes]]:
    if area_len > r.left():
        raise _fail(f"{where} subpacket area is longer than the packet")
    end = r.pos + area_len
    sub = _Reader(r.data, r.pos, end, f"{where} subpacket area")
    out: list[tuple[int, bytes]] = []
    while sub.left() > 0:
        o1 = sub.byte()
        if o1 < 192:
            n = o1
        elif o1 < 255:
            n = ((o1 - 192) << 8) + sub.byte() + 192
        else:
            n = sub.uint(4)
        if n < 1:
            raise _fail(f"empty subpacket in the {where} area")
        body = sub.take(n)
        typ, crit = body[0] & 0x7F, bool(body[0] & 0x80)
        if crit and typ not in _KNOWN_SUBPACKETS:
            raise _fail(f"unknown critical subpacket type {typ}")
        out.append((typ, body[1:]))
    r.pos = end
    return out


def _mpi(r: _Reader, max_bits: int) -> None:
    bits = r.uint(2)
    if bits == 0 or bits > max_bits:
        raise _fail(f"signature value of {bits} bits for this algorithm")
    value = r.take((bits + 7) // 8)
    # the bit count names the most significant set bit (RFC 9580 3.2)
    if value[0].bit_length() != bits - 8 * (len(value) - 1):
        raise _fail("signature value's bit count does not match its bytes")


def _signature_body(data: bytes, start: int, end: int) -> SignaturePacket:
    r = _Reader(data, start, end, "signature packet")
    version = r.byte()
    if version not in (4, 6):
        raise _fail(f"signature version {version} (only 4 and 6)")
    sig_type, pk, hash_algo = r.byte(), r.byte(), r.byte()
    if sig_type != BINARY_DOCUMENT:
        raise _fail(f"signature type 0x{sig_type:02x} is not a signature over a binary file")
    if pk not in _PK_ALGOS or (version == 6 and pk not in _V6_PK_ALGOS):
        raise _fail(f"public-key algorithm {pk} in a version {version} signature")
    if hash_algo not in _HASH_ALGOS or (version == 6 and hash_algo not in _V6_HASH_ALGOS):
        raise _fail(f"hash algorithm {hash_algo} in a version {version} signature")
    count_len = 4 if version == 6 else 2
    hashed = _subpackets(r, r.uint(count_len), "hashed")
    unhashed = _subpackets(r, r.uint(count_len), "unhashed")
    r.take(2)  # left 16 bits of the hash
    if version == 6:
        salt_len = r.byte()
        if salt_len != _HASH_ALGOS[hash_algo]:
            raise _fail(f"salt of {salt_len} bytes for hash algorithm {hash_algo}")
        r.take(salt_len)
    layout, size = _PK_ALGOS[pk]
    if layout == _RSA:
        _mpi(r, size)
    elif layout == _TWO_MPI:
        _mpi(r, size)
        _mpi(r, size)
    else:
        r.take(size)
    if r.left() != 0:
        raise _fail(f"{r.left()} bytes after the signature value")
    times = [body for typ, body in hashed if typ == _SUB_CREATION_TIME]
    if len(times) != 1 or len(times[0]) != 4:
        raise _fail("no single creation time in the hashed subpackets")
    issuer = next((body for typ, body in hashed + unhashed if typ == _SUB_ISSUER), None)
    if issuer is not None and len(issuer) != 8:
        raise _fail("issuer key id is not 8 bytes")
    fpr = next((body for typ, body in hashed + unhashed if typ == _SUB_ISSUER_FPR), None)
    if fpr is not None and not ((len(fpr) == 21 and fpr[0] == 4) or (len(fpr) == 33 and fpr[0] == 6)):
        raise _fail("issuer fingerprint is neither a v4 nor a v6 fingerprint")
    return SignaturePacket(
        version=version, sig_type=sig_type, pubkey_algo=pk, hash_algo=hash_algo,
        creation_time=int.from_bytes(times[0], "big"), issuer_key_id=issuer,
        issuer_fingerprint=fpr[1:] if fpr is not None else None, body_length=end - start,
    )


def _tar_checksum_ok(block: bytes) -> bool:
    """libarchive's tar test (archive_read_support_format_tar.c checksum()): the header checksum matches."""
    if len(block) < 512:
        return False
    field = block[148:156]
    if any(c not in b" \x0001234567" for c in field):
        return False
    # tar_atol8: leading spaces, then octal digits up to the first other byte
    digits = field.lstrip(b" ")
    n = 0
    while n < len(digits) and digits[n] in b"01234567":
        n += 1
    want = int(digits[:n], 8) if n else 0
    rest = block[:148] + block[156:512]
    unsigned = sum(rest) + 8 * 0x20
    signed = sum((b - 256 if b > 127 else b) for b in rest) + 8 * 0x20
    return want in (unsigned, signed)


def _refuse_archive_shapes(data: bytes) -> None:
    if _tar_checksum_ok(data[:512]):
        raise _fail("its first block is a tar header")
    if b"PK\x03\x04" in data or b"PK\x05\x06" in data or b"PK\x01\x02" in data:
        raise _fail("it holds zip headers")
    if _UU_BEGIN.search(data):
        raise _fail("it holds a uuencode begin line")


def parse_detached_signature(data: bytes, *, max_bytes: int = MAX_SIGNATURE_BYTES) -> DetachedSignature:
    """Parse ``data`` as a binary detached signature; raise MalformedInputError for anything else."""
    if len(data) > max_bytes:
        raise _fail(f"{len(data)} bytes is over the limit of {max_bytes}")
    if not data:
        raise _fail("the file is empty")
    packets: list[SignaturePacket] = []
    r = _Reader(data, 0, len(data), "signature file")
    while r.left() > 0:
        if len(packets) >= MAX_PACKETS:
            raise _fail(f"more than {MAX_PACKETS} packets")
        tag, length = _packet_header(r)
        if tag != SIGNATURE_TAG:
            raise _fail(f"packet tag {tag} is not a signature")
        if length > r.left():
            raise _fail("packet is longer than the file")
        packets.append(_signature_body(data, r.pos, r.pos + length))
        r.pos += length
    _refuse_archive_shapes(data)
    return DetachedSignature(tuple(packets), len(data))
