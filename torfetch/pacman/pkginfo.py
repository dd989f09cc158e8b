"""Read .PKGINFO from a package while it downloads (pure, incremental, bounded).

makepkg writes .BUILDINFO, [.CHANGELOG], [.INSTALL], .MTREE, .PKGINFO, then
the files, so .PKGINFO is found in a prefix of the stream. We decompress
incrementally (zstd, xz, gzip, bzip2 or none, told apart by magic bytes) with
hard caps on compressed bytes consumed and decompressed bytes produced, and
parse tar headers ourselves (ustar, pax, GNU long names). A decompression bomb
or a missing .PKGINFO is a PackageContentError, never a hang or an OOM.
"""

from __future__ import annotations

import bz2
import lzma
import zlib
from dataclasses import dataclass, field

import zstandard

from ..config import Limits
from ..errors import PackageContentError
from .filename import PackageFilename

_STEP = 256 * 1024  # at most this much decompressed output per call
_MAX_KEYS = 2000


@dataclass(frozen=True)
class PkgInfo:
    pkgname: str
    pkgver: str
    pkgbase: str
    arch: str
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)


def parse_pkginfo(data: bytes) -> PkgInfo:
    values: dict[str, list[str]] = {}
    text = data.decode("utf-8", "replace")
    count = 0
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#") or " = " not in line:
            continue
        count += 1
        if count > _MAX_KEYS:
            raise PackageContentError(".PKGINFO has too many entries")
        key, _, val = line.partition(" = ")
        values.setdefault(key.strip(), []).append(val.strip())
    def one(key: str, required: bool = True) -> str:
        v = values.get(key)
        if not v:
            if required:
                raise PackageContentError(f".PKGINFO lacks {key}")
            return ""
        return v[0]
    return PkgInfo(one("pkgname"), one("pkgver"), one("pkgbase", False) or one("pkgname"), one("arch", False),
                   {k: tuple(v) for k, v in values.items()})


def check_matches_filename(info: PkgInfo, fn: PackageFilename) -> None:
    if info.pkgname != fn.pkgname or info.pkgver != fn.version:
        raise PackageContentError(
            f"{fn.pkgname}-{fn.version}: the package's .PKGINFO says it is {info.pkgname} {info.pkgver}"
        )
    if info.arch and fn.arch and info.arch != fn.arch:
        raise PackageContentError(f"{fn.pkgname}-{fn.version}: .PKGINFO says arch {info.arch}, file name says {fn.arch}")


class _Decompressor:
    def __init__(self, kind: str) -> None:
        self.kind = kind
        if kind == "zst":
            self._d = zstandard.ZstdDecompressor().decompressobj()
        elif kind == "xz":
            self._d = lzma.LZMADecompressor()
        elif kind == "gz":
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif kind == "bz2":
            self._d = bz2.BZ2Decompressor()
        else:
            self._d = None
        self._pending = b""

    def feed(self, data: bytes) -> bytes:
        """Return up to _STEP bytes; keep unconsumed input for later calls."""
        if self._d is None:
            return data
        if self.kind == "zst":
            # zstandard's decompressobj has no max_length: feed in small slices so
            # one call never produces more than a bounded amount.
            return self._d.decompress(data)
        if self.kind == "gz":
            out = self._d.decompress(self._pending + data, _STEP)
            self._pending = self._d.unconsumed_tail
            return out
        out = self._d.decompress(data, _STEP)  # lzma / bz2 keep their own buffer
        return out

    def more(self) -> bytes:
        """Drain buffered input without new data."""
        if self._d is None:
            return b""
        if self.kind == "gz":
            if not self._pending:
                return b""
            out = self._d.decompress(self._pending, _STEP)
            self._pending = self._d.unconsumed_tail
            return out
        if self.kind in ("xz", "bz2") and not getattr(self._d, "needs_input", True) and not self._d.eof:
            return self._d.decompress(b"", _STEP)
        return b""


def _detect(head: bytes) -> str:
    if head.startswith(b"\x28\xb5\x2f\xfd"):
        return "zst"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x1f\x8b"):
        return "gz"
    if head.startswith(b"BZh"):
        return "bz2"
    return "tar"


def _octal(field_: bytes) -> int:
    field_ = field_.rstrip(b"\x00 ").lstrip(b" ")
    if not field_:
        return 0
    if field_[0] & 0x80:  # base-256 (GNU) for large sizes
        n = int.from_bytes(field_, "big") & ~(0x80 << (8 * (len(field_) - 1)))
        return n
    try:
        return int(field_, 8)
    except ValueError as exc:
        raise PackageContentError("package archive has a corrupt tar header") from exc


class PkgInfoReader:
    """Feed the package bytes in order; ``result`` is set once .PKGINFO is read."""

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self.result: PkgInfo | None = None
        self._head = b""
        self._dec: _Decompressor | None = None
        self._buf = bytearray()
        self._compressed = 0
        self._decompressed = 0
        self._skip = 0  # decompressed bytes still to skip (member bodies)
        self._want: tuple[str, int] | None = None  # (what, size) of member body to collect
        self._long_name: str | None = None
        self._pax_path: str | None = None
        self._done = False
        self._error: PackageContentError | None = None

    def feed(self, chunk: bytes) -> None:
        if self._done or self.result is not None:
            return
        self._compressed += len(chunk)
        if self._compressed > self.limits.pkginfo_max_compressed:
            self._fail(f"no .PKGINFO within the first {self.limits.pkginfo_max_compressed} bytes of the package")
            return
        if self._dec is None:
            self._head += chunk
            if len(self._head) < 6:
                return
            self._dec = _Decompressor(_detect(self._head))
            chunk, self._head = self._head, b""
        try:
            # bound the input slice so each decompress call's output is bounded too
            # zstd's decompressobj has no max_length: small input slices bound each
            # call's output (an RLE block is a few bytes in, 128 KiB out).
            step = 32 if self._dec.kind == "zst" else 16 * 1024
            for i in range(0, max(len(chunk), 1), step):
                if self._done or self.result is not None:
                    return
                out = self._dec.feed(chunk[i : i + step])
                self._consume(out)
                for _ in range(100000):
                    if self._done or self.result is not None:
                        return
                    more = self._dec.more()
                    if not more:
                        break
                    self._consume(more)
        except PackageContentError as exc:
            self._error = exc
            self._done = True
        except (zstandard.ZstdError, lzma.LZMAError, zlib.error, OSError, EOFError, ValueError) as exc:
            self._fail(f"package is not a valid compressed archive ({type(exc).__name__})")

    def finish(self) -> PkgInfo:
        if self.result is not None:
            return self.result
        if self._error is not None:
            raise self._error
        raise PackageContentError("package has no .PKGINFO (not a pacman package?)")

    # -- internals -------------------------------------------------------------

    def _fail(self, msg: str) -> None:
        self._error = PackageContentError(msg)
        self._done = True

    def _consume(self, data: bytes) -> None:
        if not data or self._done:
            return
        self._decompressed += len(data)
        if self._decompressed > self.limits.pkginfo_max_decompressed:
            raise PackageContentError(
                f"no .PKGINFO within {self.limits.pkginfo_max_decompressed} decompressed bytes (decompression bomb?)"
            )
        view = memoryview(data)
        if self._skip:
            n = min(self._skip, len(view))
            self._skip -= n
            view = view[n:]
        self._buf += view
        for _ in range(100000):
            if self.result is not None or self._done:
                return
            if self._want is not None:
                what, size = self._want
                padded = (size + 511) // 512 * 512
                if len(self._buf) < padded:
                    return
                body = bytes(self._buf[:size])
                del self._buf[:padded]
                self._want = None
                self._member_body(what, body)
                continue
            if len(self._buf) < 512:
                return
            header = bytes(self._buf[:512])
            del self._buf[:512]
            if header == b"\x00" * 512:
                self._fail("package ended before .PKGINFO")
                return
            self._header(header)
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n

    def _header(self, h: bytes) -> None:
        name = h[0:100].split(b"\x00", 1)[0].decode("utf-8", "replace")
        prefix = h[345:500].split(b"\x00", 1)[0].decode("utf-8", "replace") if h[257:262] == b"ustar" else ""
        if prefix:
            name = prefix + "/" + name
        size = _octal(h[124:136])
        typ = h[156:157]
        if size < 0:
            raise PackageContentError("package archive has a negative member size")
        if typ in (b"x", b"g", b"L"):
            if size > self.limits.pkginfo_max_member:
                raise PackageContentError("package archive has an oversized tar extension header")
            self._want = ({b"x": "pax", b"g": "gpax", b"L": "longname"}[typ], size)
            return
        path = self._pax_path or self._long_name or name
        self._pax_path = self._long_name = None
        if path.lstrip("./") == ".PKGINFO" or path == ".PKGINFO":
            if size > self.limits.pkginfo_max_member:
                raise PackageContentError(f".PKGINFO is {size} bytes, over the limit")
            self._want = ("pkginfo", size)
            return
        if typ in (b"0", b"\x00", b"7"):
            self._skip = (size + 511) // 512 * 512
        # other types (dirs, links) have no body

    def _member_body(self, what: str, body: bytes) -> None:
        if what == "pkginfo":
            self.result = parse_pkginfo(body)
        elif what == "longname":
            self._long_name = body.split(b"\x00", 1)[0].decode("utf-8", "replace")
        elif what == "pax":
            self._pax_path = _pax_path(body)


def _pax_path(body: bytes) -> str | None:
    pos = 0
    path = None
    for _ in range(1000):
        if pos >= len(body):
            break
        sp = body.find(b" ", pos)
        if sp < 0:
            break
        try:
            length = int(body[pos:sp])
        except ValueError as exc:
            raise PackageContentError("package archive has a corrupt pax header") from exc
        if length <= 0:
            break
        record = body[sp + 1 : pos + length - 1]
        key, _, val = record.partition(b"=")
        if key == b"path":
            path = val.decode("utf-8", "replace")
        pos += length
    return path
