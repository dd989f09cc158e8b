"""Read a pacman sync database (``<repo>.db``) as a stream of typed records (pure, bounded).

The db is a tar, compressed with zstd, xz, gzip, bzip2 or not at all (told
apart by magic bytes, never by the file name: ``repo.db`` is usually a symlink
to ``repo.db.tar.gz`` or ``.tar.zst``), of ``<name>-<version>/desc`` members
in libalpm's desc format: a ``%SECTION%`` line, its value lines, a blank line.

The reader is fed chunks as they arrive and hands out one ``RepoPackage`` per
``desc`` as soon as it is complete; member bodies other than ``desc`` (the
``files`` lists of a ``.files`` db, old ``depends`` files) are skipped, never
stored, so memory is bounded by one member plus one decompressor slice, not by
the db's size. Hard caps (``RepoDbLimits``) on compressed bytes, decompressed
bytes, tar members and the size of one ``desc``; anything malformed is a
``RepoDbError`` naming the member. Decompression and tar header parsing are
the ``.PKGINFO`` reader's (``pkginfo.py``), reused as they are.
"""

from __future__ import annotations

import lzma
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import zstandard

from ..errors import PackageContentError, RepoDbError
from .pkginfo import _checksum_ok, _Decompressor, _number, _pax_records, detect_compression

MiB = 1024 * 1024
_HEX64 = re.compile(r"[0-9a-f]{64}")
_REGULAR = frozenset((b"0", b"\x00", b"7"))
_NO_BODY = frozenset(b"123456")
_MAX_VALUES = 100_000  # value lines in one desc (depends, provides, ...)


@dataclass(frozen=True)
class RepoDbLimits:
    max_compressed: int = 512 * MiB  # Arch's extra.db is ~8 MiB for ~14k packages
    max_decompressed: int = 4096 * MiB
    max_members: int = 2_000_000  # a desc, a dir and maybe files per package
    max_desc: int = 1 * MiB  # one desc (a %PGPSIG% is ~0.5 KiB; descriptions are short)


@dataclass(frozen=True)
class RepoPackage:
    """One package as the sync db describes it."""

    filename: str
    name: str
    version: str  # [epoch:]pkgver-pkgrel
    sha256: str  # lowercase hex
    base: str = ""
    arch: str = ""
    csize: int | None = None
    isize: int | None = None
    packager: str = ""
    has_pgpsig: bool = False
    member: str = ""  # the tar member it came from (for messages)


def _one(sections: dict[str, list[str]], key: str, member: str, required: bool = True) -> str:
    v = sections.get(key)
    if not v:
        if required:
            raise RepoDbError(f"{member} lacks %{key}%")
        return ""
    if len(v) != 1:
        raise RepoDbError(f"{member}: %{key}% has {len(v)} values, expected one")
    return v[0]


def _number_value(sections: dict[str, list[str]], key: str, member: str) -> int | None:
    v = _one(sections, key, member, False)
    if not v:
        return None
    if not v.isdigit() or len(v) > 20:
        raise RepoDbError(f"{member}: %{key}% is not a number")
    return int(v)


def parse_desc(data: bytes, *, member: str = "desc") -> RepoPackage:
    """libalpm's desc format: ``%KEY%`` then values, a blank line ends a section."""
    # (a monitor reads 10^6 of these: module-level helpers, no closures, one split per block)
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise RepoDbError(f"{member} is not UTF-8") from exc
    if "\r" in text:
        text = text.replace("\r\n", "\n")
    sections: dict[str, list[str]] = {}
    count = 0
    # sections are separated by blank lines (one or more); values are never empty
    for block in text.split("\n\n"):
        lines = block.strip("\n").split("\n")
        head = lines[0]
        if not head:
            continue
        if len(head) < 3 or head[0] != "%" or head[-1] != "%":
            raise RepoDbError(f"{member} has a value outside any %SECTION%")
        key = head[1:-1]
        if key in sections:
            raise RepoDbError(f"{member} gives %{key[:40]}% twice")
        count += len(lines) - 1
        if count > _MAX_VALUES:
            raise RepoDbError(f"{member} has more than {_MAX_VALUES} values")
        sections[key] = lines[1:]

    sha = _one(sections, "SHA256SUM", member).lower()
    if len(sha) != 64 or not _HEX64.fullmatch(sha):
        raise RepoDbError(f"{member}: %SHA256SUM% is not 64 hex digits")
    return RepoPackage(
        filename=_one(sections, "FILENAME", member), name=_one(sections, "NAME", member),
        version=_one(sections, "VERSION", member), sha256=sha, base=_one(sections, "BASE", member, False),
        arch=_one(sections, "ARCH", member, False), csize=_number_value(sections, "CSIZE", member),
        isize=_number_value(sections, "ISIZE", member), packager=_one(sections, "PACKAGER", member, False),
        has_pgpsig=bool(sections.get("PGPSIG")), member=member,
    )


class RepoDbReader:
    """Push the db's bytes in order with ``feed()``, which returns the packages completed by them.

    ``finish()`` checks the archive ended properly. Every failure is a
    ``RepoDbError``; after one, the reader refuses further input.
    """

    def __init__(self, limits: RepoDbLimits | None = None, *, source: str = "repository database") -> None:
        self.limits = limits or RepoDbLimits()
        self.source = source
        self._head = b""
        self._dec: _Decompressor | None = None
        self._buf = bytearray()
        self._compressed = 0
        self._decompressed = 0
        self._members = 0
        self._skip = 0
        self._want: tuple[str, str, int] | None = None  # (kind, path, size)
        self._next_path: str | None = None
        self._next_size: int | None = None
        self._ended = False  # saw the end-of-archive block
        self._failed = False
        self._out: list[RepoPackage] = []
        self.packages = 0

    def feed(self, chunk: bytes) -> list[RepoPackage]:
        if self._failed:
            raise RepoDbError(f"{self.source}: reader already failed")
        self._compressed += len(chunk)
        if self._compressed > self.limits.max_compressed:
            self._fail()
            raise RepoDbError(f"{self.source} is larger than the limit of {self.limits.max_compressed} bytes")
        self._guarded(self._feed, chunk)
        out, self._out = self._out, []
        self.packages += len(out)
        return out

    def finish(self) -> None:
        """The input has ended: it must have ended at a tar member boundary."""
        if self._failed:
            raise RepoDbError(f"{self.source}: reader already failed")
        if self._dec is None:
            if not self._head:
                raise RepoDbError(f"{self.source} is empty")
            # shorter than the magic-detection prefix: decide now
            self._guarded(self._start, b"")
        if self._want is not None or self._skip or (self._buf and not self._ended):
            raise RepoDbError(f"{self.source} is truncated (it ends inside a tar member)")
        if not self._ended and self._members == 0:
            raise RepoDbError(f"{self.source} is not a tar archive (no members, no end marker)")
        self._out = []

    # -- internals -------------------------------------------------------------

    def _fail(self) -> None:
        self._failed = True
        self._dec = None
        self._buf = bytearray()

    def _guarded(self, fn, chunk: bytes) -> None:
        """Run a step; whatever goes wrong inside becomes one RepoDbError and ends the reader."""
        try:
            fn(chunk)
        except RepoDbError:
            self._fail()
            raise
        except PackageContentError as exc:  # from the shared tar helpers
            self._fail()
            raise RepoDbError(f"{self.source}: {exc.message.replace('package archive', 'tar')}") from exc
        except (zstandard.ZstdError, lzma.LZMAError, zlib.error, OSError, EOFError, ValueError, MemoryError) as exc:
            self._fail()
            raise RepoDbError(f"{self.source} is not a valid compressed tar ({type(exc).__name__})") from exc

    def _feed(self, chunk: bytes) -> None:
        if self._dec is None:
            self._head += chunk
            if len(self._head) < 6:
                return
            self._start(b"")
            return
        self._dec.push(chunk)
        self._drain()

    def _start(self, _: bytes) -> None:
        self._dec = _Decompressor(detect_compression(self._head))
        self._dec.push(self._head)
        self._head = b""
        self._drain()

    def _drain(self) -> None:
        assert self._dec is not None
        # each pull is bounded (~256 KiB, zstd ~1 MiB); the decompressed cap ends this loop first
        for _ in range(10_000_000):
            out = self._dec.pull()
            if not out:
                return
            self._consume(out)

    def _consume(self, data: bytes) -> None:
        self._decompressed += len(data)
        if self._decompressed > self.limits.max_decompressed:
            raise RepoDbError(f"{self.source} decompresses to more than {self.limits.max_decompressed} bytes")
        if self._ended:
            return  # zero blocks / padding after the end-of-archive marker
        view = memoryview(data)
        if self._skip:
            n = min(self._skip, len(view))
            self._skip -= n
            view = view[n:]
            if self._skip:
                return
        self._buf += view
        for _ in range(2 * (len(self._buf) // 512) + 4):
            if self._ended:
                self._buf = bytearray()
                return
            if self._want is not None:
                kind, path, size = self._want
                padded = (size + 511) // 512 * 512
                if len(self._buf) < padded:
                    return
                body = bytes(self._buf[:size])
                del self._buf[:padded]
                self._want = None
                self._body(kind, path, body)
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
            self._ended = True  # tar ends with zero blocks; what follows is ignored, like bsdtar
            return
        self._members += 1
        if self._members > self.limits.max_members:
            raise RepoDbError(f"{self.source} has more than {self.limits.max_members} tar members")
        if not _checksum_ok(h):
            raise RepoDbError(f"{self.source} has a corrupt tar header (bad checksum)")
        typ = h[156:157]
        size = _number(h[124:136])
        if typ in (b"x", b"g", b"L", b"K"):
            if size > self.limits.max_desc:
                raise RepoDbError(f"{self.source} has an oversized tar extension header")
            self._want = (typ.decode(), "", size)
            return
        name = h[0:100].split(b"\x00", 1)[0]
        if h[257:263] == b"ustar\x00":
            prefix = h[345:500].split(b"\x00", 1)[0]
            if prefix:
                name = prefix + b"/" + name
        path = self._next_path if self._next_path is not None else name.decode("utf-8", "replace")
        if self._next_size is not None:
            size = self._next_size
        self._next_path = self._next_size = None
        parts = path.removeprefix("./").split("/")
        if len(parts) == 2 and parts[1] == "desc" and typ in _REGULAR:
            if size > self.limits.max_desc:
                raise RepoDbError(f"{self.source}: {path[:200]} is {size} bytes, over the limit of {self.limits.max_desc}")
            self._want = ("desc", path, size)
            return
        if typ not in _NO_BODY:
            self._skip = (size + 511) // 512 * 512

    def _body(self, kind: str, path: str, body: bytes) -> None:
        if kind == "desc":
            pkg = parse_desc(body, member=f"{self.source}: {path[:200]}")
            directory = path.removeprefix("./").split("/")[0]
            if directory != f"{pkg.name}-{pkg.version}":
                raise RepoDbError(f"{self.source}: {path[:200]} describes {pkg.name[:100]}-{pkg.version[:100]}")
            self._out.append(pkg)
        elif kind == "L":
            self._next_path = body.split(b"\x00", 1)[0].decode("utf-8", "replace")
        elif kind == "x":
            try:
                rec = _pax_records(body)
            except PackageContentError as exc:
                raise RepoDbError(f"{self.source} has a corrupt pax header") from exc
            if b"path" in rec:
                self._next_path = rec[b"path"].decode("utf-8", "replace")
            if b"size" in rec:
                try:
                    sz = int(rec[b"size"])
                except ValueError as exc:
                    raise RepoDbError(f"{self.source} has a corrupt pax size") from exc
                if sz < 0:
                    raise RepoDbError(f"{self.source} has a negative pax size")
                self._next_size = sz


def iter_repodb(chunks: Iterable[bytes], limits: RepoDbLimits | None = None, *,
                source: str = "repository database") -> Iterator[RepoPackage]:
    """Every package of a db given as an iterable of byte chunks, streamed."""
    reader = RepoDbReader(limits, source=source)
    for chunk in chunks:
        yield from reader.feed(chunk)
    reader.finish()


def parse_repodb(data: bytes, limits: RepoDbLimits | None = None, *, source: str = "repository database",
                 step: int = 1 * MiB) -> list[RepoPackage]:
    return list(iter_repodb((data[i:i + step] for i in range(0, max(len(data), 1), step)), limits, source=source))


__all__ = ["RepoDbLimits", "RepoDbReader", "RepoPackage", "iter_repodb", "parse_desc", "parse_repodb"]
