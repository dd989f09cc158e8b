"""Read .PKGINFO from a package while it downloads (pure, incremental, bounded).

The problem: the rebuilders must be asked about the package's own name and
version (``.PKGINFO``'s ``pkgname``/``pkgver``, as pacman-bintrans does), and
the package must not be trusted before it is verified. Waiting for the whole
download and then unpacking it would cost a second pass and unpacking an
untrusted archive; so the bytes are inspected as they stream past.

makepkg writes .BUILDINFO, [.CHANGELOG], [.INSTALL], .MTREE, .PKGINFO, then
the files, so .PKGINFO is found in a prefix of the stream. The compression
(zstd, xz, gzip, bzip2 or none) is told apart by magic bytes and undone
incrementally, at most ``_STEP`` bytes of output per decompressor call, with
hard caps on compressed bytes consumed (``Limits.pkginfo_max_compressed``) and
decompressed bytes produced (``Limits.pkginfo_max_decompressed``). The tar
headers are parsed here (ustar, pax extended headers, GNU long names); the
member bodies before .PKGINFO are skipped, never stored. A decompression bomb
or a missing .PKGINFO is a PackageContentError, never a hang or an OOM.

Like libalpm (be_package.c), only a member named exactly ``.PKGINFO`` counts.
Unlike libalpm, only the first such member is read: libalpm's full load
parses every ``.PKGINFO`` member, a later one overriding, but pacman then
refuses a package whose name or version differs from its database entry.
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

_STEP = 256 * 1024  # at most about this much decompressed output per call
_ZST_SLICE = 128  # zstd input per call (zstandard's decompressobj has no max_length): <= 32 RLE blocks = 4 MiB out
_MAX_LINES = 20000  # .PKGINFO entries kept (the member itself is capped in bytes)
_ZSTD_MAX_WINDOW = 1 << 27  # libzstd's default limit; makepkg's -20 --ultra stays below
_XZ_MEMLIMIT = 256 * 1024 * 1024  # xz -9e needs 65 MiB to decompress
_MAX_LINE = 512 * 1024  # libalpm's parse_descfile refuses a line this long (with its NUL)


@dataclass(frozen=True)
class PkgInfo:
    pkgname: str
    pkgver: str  # [epoch:]pkgver-pkgrel
    pkgbase: str
    arch: str
    fields: dict[str, tuple[str, ...]] = field(default_factory=dict)  # every key, in order, bounded


def parse_pkginfo(data: bytes) -> PkgInfo:
    """Parse .PKGINFO as libalpm's ``parse_descfile`` (be_package.c) does; each rule is tested.

    * lines end at ``\n`` only; a ``\r`` stays part of the value, as in libalpm;
    * an empty line, or one whose first byte is ``#``, is skipped;
    * the key runs to the first space, which must start ``" = "``; any other
      line (``key=value``, ``key  = value``, a leading space) is ignored;
    * the value is everything after ``" = "``, untrimmed;
    * a key given twice: the last value wins (libalpm overwrites pkgname,
      pkgbase, pkgver and arch); ``fields`` keeps every value, in order;
    * pkgname and pkgver must be non-empty and pkgver must contain ``-``
      (libalpm refuses the package otherwise); torfetch also needs ``arch``.

    Refused where libalpm's reading would depend on its read buffers: a NUL
    byte (libalpm ends a line at a NUL only when no ``\n`` follows in the same
    block) and a line of 512 KiB or more (libalpm refuses it). Bytes that are
    not UTF-8 are kept as surrogate escapes, so they never equal a file name.
    """
    if b"\0" in data:
        raise PackageContentError(".PKGINFO contains a NUL byte")
    values: dict[str, list[str]] = {}
    count = 0
    for raw in data.split(b"\n"):
        if len(raw) >= _MAX_LINE:
            raise PackageContentError(f".PKGINFO has a line of {len(raw)} bytes (libalpm's limit is {_MAX_LINE})")
        if not raw or raw[:1] == b"#":
            continue
        sp = raw.find(b" ")
        if sp < 0 or raw[sp : sp + 3] != b" = ":
            continue  # libalpm: "syntax error in description file", line ignored
        count += 1
        if count > _MAX_LINES:
            raise PackageContentError(f".PKGINFO has more than {_MAX_LINES} entries")
        key = raw[:sp].decode("utf-8", "surrogateescape")
        values.setdefault(key, []).append(raw[sp + 3 :].decode("utf-8", "surrogateescape"))

    def last(key: str) -> str:
        v = values.get(key)
        return v[-1] if v else ""

    pkgname, pkgver, arch = last("pkgname"), last("pkgver"), last("arch")
    for key, val in (("pkgname", pkgname), ("pkgver", pkgver), ("arch", arch)):
        if not val:
            raise PackageContentError(f".PKGINFO lacks {key}")
    if "-" not in pkgver:
        raise PackageContentError(f".PKGINFO has an invalid pkgver {pkgver[:60]!r} (no -pkgrel)")
    return PkgInfo(pkgname, pkgver, last("pkgbase") or pkgname, arch, {k: tuple(v) for k, v in values.items()})


def check_matches_filename(info: PkgInfo, fn: PackageFilename) -> None:
    """The package must be what its file name (and so pacman's database) says it is."""
    if info.pkgname != fn.pkgname or info.pkgver != fn.version:
        raise PackageContentError(
            f"{fn.pkgname}-{fn.version}: the package's .PKGINFO says it is {info.pkgname[:100]} {info.pkgver[:100]}"
        )
    if info.arch != fn.arch:
        raise PackageContentError(
            f"{fn.pkgname}-{fn.version}: .PKGINFO says arch {info.arch[:40]}, the file name says {fn.arch}")


# --- decompression ---------------------------------------------------------------------

_MAGIC = {"zst": b"\x28\xb5\x2f\xfd", "xz": b"\xfd7zXZ\x00", "gz": b"\x1f\x8b", "bz2": b"BZh"}


def detect_compression(head: bytes) -> str:
    """"zst", "xz", "gz", "bz2" or "tar" (none), from the first bytes."""
    for kind, magic in _MAGIC.items():
        if head.startswith(magic):
            return kind
    return "tar"


class _Decompressor:
    """Push compressed bytes in, pull bounded slices of output; concatenated streams/frames are followed."""

    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._in = bytearray()  # compressed input not yet handed to the decompressor
        self._d: object | None = None
        self._new()

    def _new(self) -> None:
        k = self.kind
        if k == "zst":
            self._d = zstandard.ZstdDecompressor(max_window_size=_ZSTD_MAX_WINDOW).decompressobj()
        elif k == "xz":
            self._d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ, memlimit=_XZ_MEMLIMIT)
        elif k == "gz":
            self._d = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif k == "bz2":
            self._d = bz2.BZ2Decompressor()
        else:
            self._d = None

    def push(self, data: bytes | memoryview) -> None:
        self._in += data

    def _next_stream(self, unused: bytes) -> None:
        """After the end of one stream/frame/member: go on with the next, if the input continues with one."""
        rest = bytes(unused) + bytes(self._in)
        if self.kind == "xz":
            rest = rest.lstrip(b"\x00")  # xz stream padding
        self._in = bytearray(rest)
        if rest[: len(_MAGIC[self.kind])] == _MAGIC[self.kind][: len(rest)]:
            self._new()  # (possibly still incomplete) next stream
        else:
            self._in.clear()  # trailing garbage after the archive: nothing more to read
            self._d = None

    def pull(self) -> bytes:
        """Up to about _STEP bytes of output; b"" means: give me more input."""
        d = self._d
        if self.kind == "tar":
            out = bytes(self._in[:_STEP])
            del self._in[:_STEP]
            return out
        if d is None:
            self._in.clear()
            return b""
        if self.kind == "zst":
            # Small input slices bound each call's output (an RLE block turns 4 bytes into 128 KiB).
            for _ in range(_STEP):
                d = self._d
                if not self._in or d is None:
                    return b""
                piece = bytes(self._in[:_ZST_SLICE])
                del self._in[:_ZST_SLICE]
                out = d.decompress(piece)  # type: ignore[attr-defined]
                if d.eof:  # type: ignore[attr-defined]
                    self._next_stream(d.unused_data)  # type: ignore[attr-defined]
                if out:
                    return out
            return b""
        if self.kind == "gz":
            out = d.decompress(bytes(self._in), _STEP)  # type: ignore[attr-defined]
            self._in = bytearray(d.unconsumed_tail)  # type: ignore[attr-defined]
            if d.eof:  # type: ignore[attr-defined]
                self._next_stream(d.unused_data)  # type: ignore[attr-defined]
            return out
        # lzma / bz2 buffer unconsumed input themselves
        if self._in:
            data = bytes(self._in)
            self._in.clear()
        else:
            data = b""
            if getattr(d, "needs_input", True):
                return b""
        out = d.decompress(data, _STEP)  # type: ignore[attr-defined]
        if d.eof:  # type: ignore[attr-defined]
            self._next_stream(d.unused_data)  # type: ignore[attr-defined]
        return out


# --- tar ---------------------------------------------------------------------------------


def _number(f: bytes) -> int:
    """A tar numeric field: octal text, or GNU base-256 (first byte's high bit set)."""
    if f and f[0] & 0x80:
        if f[0] == 0xFF:
            raise PackageContentError("package archive has a negative number in a tar header")
        return int.from_bytes(bytes([f[0] & 0x7F]) + f[1:], "big")
    f = f.replace(b"\x00", b" ").strip()
    if not f:
        return 0
    try:
        return int(f, 8)
    except ValueError as exc:
        raise PackageContentError("package archive has a corrupt tar header") from exc


_LOW_BYTES = bytes(range(128))


def _checksum_ok(h: bytes) -> bool:
    stored = h[148:156].replace(b"\x00", b" ").strip()
    try:
        want = int(stored, 8)
    except ValueError:
        return False
    blanked = h[:148] + b" " * 8 + h[156:]
    unsigned = sum(blanked)
    high = len(blanked.translate(None, _LOW_BYTES))  # bytes >= 128: old tars summed them as signed chars
    return want in (unsigned, unsigned - 256 * high)


def _pax_records(body: bytes) -> dict[bytes, bytes]:
    """POSIX pax extended header: ``"%d %s=%s\\n" % (len, key, value)`` records."""
    out: dict[bytes, bytes] = {}
    pos = 0
    for _ in range(10000):
        if pos >= len(body) or body[pos] == 0:
            break
        sp = body.find(b" ", pos, pos + 24)
        if sp < 0:
            raise PackageContentError("package archive has a corrupt pax header")
        try:
            length = int(body[pos:sp])
        except ValueError as exc:
            raise PackageContentError("package archive has a corrupt pax header") from exc
        end = pos + length
        if length <= sp - pos + 1 or end > len(body) or body[end - 1:end] != b"\n":
            raise PackageContentError("package archive has a corrupt pax header")
        key, eq, val = body[sp + 1 : end - 1].partition(b"=")
        if not eq:
            raise PackageContentError("package archive has a corrupt pax header")
        out[key] = val
        pos = end
    return out


_NO_BODY = frozenset(b"123456")  # hardlink, symlink, char, block, directory, fifo
_REGULAR = frozenset((b"0", b"\x00", b"7"))


class PkgInfoReader:
    """Feed the package bytes in order; ``result`` is set once .PKGINFO is read.

    ``feed()`` never raises: a failure is remembered and raised by
    ``finish()``, so the download it rides on can complete (and be thrown
    away by the caller). Once ``result`` is set, ``feed()`` returns at once.
    """

    def __init__(self, limits: Limits | None = None) -> None:
        self.limits = limits or Limits()
        self._result: PkgInfo | None = None
        self._head = b""
        self._dec: _Decompressor | None = None
        self._buf = bytearray()  # decompressed bytes not yet parsed (headers, wanted bodies)
        self._compressed = 0
        self._decompressed = 0
        self._skip = 0  # decompressed bytes still to skip (member bodies)
        self._want: tuple[str, int] | None = None  # (what, size) of a member body to collect
        self._next_path: str | None = None  # from a pax 'x' header or GNU 'L' long name
        self._next_size: int | None = None  # from a pax 'x' header
        self._done = False
        self._error: PackageContentError | None = None

    @property
    def result(self) -> PkgInfo | None:
        return self._result

    @property
    def decompressed_bytes(self) -> int:
        return self._decompressed

    @property
    def compressed_bytes(self) -> int:
        return self._compressed

    def feed(self, chunk: bytes) -> None:
        if self._done:
            return
        room = self.limits.pkginfo_max_compressed - self._compressed
        over = len(chunk) > room
        if over:
            chunk = chunk[: max(room, 0)]
        self._compressed += len(chunk)
        try:
            self._feed(chunk)
        except PackageContentError as exc:
            self._fail(exc)
        except (zstandard.ZstdError, lzma.LZMAError, zlib.error, OSError, EOFError, ValueError, MemoryError) as exc:
            self._fail(PackageContentError(
                f"package is not a valid compressed archive ({self._kind()}: {type(exc).__name__})"))
        if over and not self._done:
            self._fail(PackageContentError(
                f"no .PKGINFO within the first {self.limits.pkginfo_max_compressed} bytes of the package"))

    def finish(self) -> PkgInfo:
        """The .PKGINFO, or PackageContentError saying why there is none."""
        if self._result is not None:
            return self._result
        if self._error is not None:
            raise self._error
        raise PackageContentError("package has no .PKGINFO (not a pacman package, or truncated)")

    # -- internals -------------------------------------------------------------

    def _kind(self) -> str:
        return {"zst": "zstd", "xz": "xz", "gz": "gzip", "bz2": "bzip2"}.get(self._dec.kind if self._dec else "", "tar")

    def _fail(self, exc: PackageContentError) -> None:
        if self._error is None and self._result is None:
            self._error = exc
        self._done = True
        self._release()

    def _release(self) -> None:
        self._dec = None
        self._buf = bytearray()

    def _feed(self, chunk: bytes) -> None:
        if self._dec is None:
            self._head += chunk
            if len(self._head) < 6:
                return
            self._dec = _Decompressor(detect_compression(self._head))
            chunk, self._head = self._head, b""
        self._dec.push(chunk)
        # Each pull yields at most ~_STEP bytes (zstd: ~1 MiB); the decompressed
        # limit ends the loop long before this bound does.
        for _ in range(1_000_000):
            if self._done:
                return
            out = self._dec.pull()
            if not out:
                return
            self._consume(out)

    def _consume(self, data: bytes) -> None:
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
            if self._skip:
                return
        self._buf += view
        for _ in range(2 * (len(self._buf) // 512) + 4):
            if self._done:
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
            if self._skip:
                n = min(self._skip, len(self._buf))
                del self._buf[:n]
                self._skip -= n
                if self._skip:
                    return
            if len(self._buf) < 512:
                return
            header = bytes(self._buf[:512])
            del self._buf[:512]
            self._header(header)

    def _header(self, h: bytes) -> None:
        if h == b"\x00" * 512:
            raise PackageContentError("package archive ended before .PKGINFO")
        if not _checksum_ok(h):
            raise PackageContentError("package archive has a corrupt tar header (bad checksum)")
        typ = h[156:157]
        size = _number(h[124:136])
        if typ in (b"x", b"g", b"L", b"K"):
            # pax extended header, pax global header, GNU long name, GNU long link name
            if size > self.limits.pkginfo_max_member:
                raise PackageContentError("package archive has an oversized tar extension header")
            self._want = (typ.decode(), size)
            return
        name = h[0:100].split(b"\x00", 1)[0]
        if h[257:263] == b"ustar\x00":  # POSIX ustar: name = prefix/name
            prefix = h[345:500].split(b"\x00", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        path = self._next_path if self._next_path is not None else name.decode("utf-8", "replace")
        if self._next_size is not None:
            size = self._next_size
        self._next_path = self._next_size = None
        if path == ".PKGINFO":
            if typ not in _REGULAR:
                raise PackageContentError(".PKGINFO in the package is not a regular file")
            if size > self.limits.pkginfo_max_member:
                raise PackageContentError(f".PKGINFO is {size} bytes, over the limit of {self.limits.pkginfo_max_member}")
            self._want = ("pkginfo", size)
            return
        if typ not in _NO_BODY:
            self._skip = (size + 511) // 512 * 512

    def _member_body(self, what: str, body: bytes) -> None:
        if what == "pkginfo":
            self._result = parse_pkginfo(body)
            self._done = True
            self._release()
        elif what == "L":
            self._next_path = body.split(b"\x00", 1)[0].decode("utf-8", "replace")
        elif what == "x":
            rec = _pax_records(body)
            if b"path" in rec:
                self._next_path = rec[b"path"].decode("utf-8", "replace")
            if b"size" in rec:
                try:
                    size = int(rec[b"size"])
                except ValueError as exc:
                    raise PackageContentError("package archive has a corrupt pax size") from exc
                if size < 0:
                    raise PackageContentError("package archive has a negative pax size")
                self._next_size = size
        # 'g' (global pax) and 'K' (long link name) change nothing we look at
