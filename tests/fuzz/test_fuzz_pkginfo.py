""".PKGINFO from tar, zstd, xz, gzip and bzip2 streams (torfetch/pacman/pkginfo.py): only typed errors come out."""

from __future__ import annotations

import bz2
import gzip
import lzma
import tarfile

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import FUZZ_EXAMPLES, mutated_bytes, typed_errors_only
from tests.pacman.test_pkginfo import PKGINFO, fix_checksum, member, tar
from torfetch.config import Limits
from torfetch.errors import PackageContentError
from torfetch.pacman.pkginfo import PkgInfo, PkgInfoReader, parse_pkginfo

COMPRESSIONS = ["zst", "xz", "gz", "bz2", "tar"]
# small limits: a mutation that makes a member huge must hit a cap quickly, not decompress for long
LIMITS = Limits(pkginfo_max_compressed=64 * 1024, pkginfo_max_decompressed=256 * 1024, pkginfo_max_member=16 * 1024)
MEMBERS = [member(".BUILDINFO", b"format = 2\npkgname = hello\n"),
           member(".MTREE", b"\x1f\x8b" + b"m" * 600, pax={"comment": "x" * 30}),
           member("usr/share/" + "n" * 120 + "/.PKGINFO", b"pkgname = decoy\n", fmt=tarfile.GNU_FORMAT),
           member(".PKGINFO", PKGINFO)]
TAR = tar(*MEMBERS)
# where each 512-byte header starts in TAR (member() output is header(s) then the padded body)
HEADERS = [off for off in range(0, len(TAR) - 1024, 512) if TAR[off + 257 : off + 263] in (b"ustar\x00", b"ustar ")]


# chunk sizes around tar's 512-byte blocks (byte-by-byte feeding is tests/pacman/test_pkginfo.py's job: it is slow)
STEPS = st.sampled_from([61, 100, 511, 512, 513, 1000, 4096])


def _compress(data: bytes, kind: str) -> bytes:
    """Fast presets: the fuzzing is about the reader, not about the compressor."""
    if kind == "zst":
        return zstandard.ZstdCompressor(level=1).compress(data)
    if kind == "xz":
        return lzma.compress(data, preset=0)
    if kind == "gz":
        return gzip.compress(data, compresslevel=1, mtime=0)
    if kind == "bz2":
        return bz2.compress(data, compresslevel=1)
    return data


def _read(data: bytes, step: int) -> PkgInfo | PackageContentError:
    r = PkgInfoReader(LIMITS)
    for i in range(0, len(data), step):
        r.feed(data[i : i + step])  # feed() never raises, whatever the bytes
    got = typed_errors_only(r.finish)
    assert isinstance(got, (PkgInfo, PackageContentError)), got
    return got


def test_seeds_are_valid() -> None:
    assert len(HEADERS) >= len(MEMBERS)
    for kind in COMPRESSIONS:
        assert _read(_compress(TAR, kind), 512) == parse_pkginfo(PKGINFO)


@st.composite
def _tar_with_edited_header(draw: st.DrawFn) -> bytes:
    """One header field rewritten and the checksum fixed, so the edit reaches the tar parser, not the checksum."""
    data = bytearray(TAR)
    for _ in range(draw(st.integers(min_value=1, max_value=3))):
        at = draw(st.sampled_from(HEADERS))
        field = draw(st.sampled_from([(0, 100), (124, 12), (156, 1), (257, 8), (345, 155), (100, 8)]))  # name, size, type, magic, prefix, mode
        start, length = field
        value = draw(st.one_of(st.binary(min_size=1, max_size=min(length, 12)),
                               st.sampled_from([b"\x80" + b"\x00" * 10 + b"\x10", b"\xff" * 12, b"7" * 11 + b"\x00",
                                                b" 0000001000\x00", b".PKGINFO\x00", b"x", b"L", b"K", b"g", b"5", b"2",
                                                b"ustar\x0000", b"\x00" * 12])))
        value = value[:length]
        data[at + start : at + start + len(value)] = value
        h = data[at : at + 512]
        fix_checksum(h)
        data[at : at + 512] = h
    return bytes(data)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(_tar_with_edited_header(), st.sampled_from(COMPRESSIONS), STEPS)
def test_fuzz_tar_headers(data: bytes, kind: str, step: int) -> None:
    _read(_compress(data, kind), step)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.sampled_from(COMPRESSIONS).flatmap(lambda k: mutated_bytes(_compress(TAR, k), max_ops=3)),
       STEPS)
def test_fuzz_compressed_stream(data: bytes, step: int) -> None:
    _read(data, step)


_pax_value = st.one_of(st.text(max_size=20), st.sampled_from(["-1", "99999999999999999999", "1e3", "0x10", "١٢", "",
                                                             ".PKGINFO", "../.PKGINFO", "\udcff"]))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([".BUILDINFO", ".PKGINFO", "usr/x", ".INSTALL"]),
                          st.dictionaries(st.sampled_from(["path", "size", "linkpath", "comment", "mtime"]), _pax_value,
                                          max_size=3),
                          st.sampled_from([tarfile.REGTYPE, tarfile.DIRTYPE, tarfile.SYMTYPE, tarfile.LNKTYPE])),
                min_size=1, max_size=4),
       st.sampled_from(["tar", "zst"]))
def test_fuzz_pax_records(members: list, kind: str) -> None:
    parts = []
    for name, pax, typ in members:
        try:
            parts.append(member(name, PKGINFO, pax=pax, typ=typ))
        except (ValueError, UnicodeError):
            parts.append(member(name, PKGINFO, typ=typ))  # tarfile refuses to write this pax value
    got = _read(_compress(tar(*parts), kind), 700)
    if isinstance(got, PkgInfo):
        assert got == parse_pkginfo(PKGINFO)  # the only .PKGINFO body in these archives


_line = st.one_of(
    st.tuples(st.sampled_from(["pkgname", "pkgver", "pkgbase", "arch", "depend", "size", "#pkgname", " pkgname", ""]),
              st.sampled_from([" = ", "=", "  = ", " =", " = = "]),
              st.text(max_size=12) | st.sampled_from(["1-1", "hello", "any", "", " ", "\r", "1:2.0-3"])).map("".join),
    st.text(max_size=20))


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(mutated_bytes(PKGINFO), st.binary(max_size=200),
                 st.lists(_line, max_size=12).map(lambda ls: "\n".join(ls).encode("utf-8", "surrogateescape"))))
def test_fuzz_pkginfo_text(data: bytes) -> None:
    got = typed_errors_only(parse_pkginfo, data)
    if isinstance(got, PkgInfo):
        assert got.pkgname and got.arch and "-" in got.pkgver  # what libalpm (and torfetch) require
        assert got.pkgname == got.fields["pkgname"][-1]  # the last value wins
    else:
        assert isinstance(got, PackageContentError), got
