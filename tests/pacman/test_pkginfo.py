""".PKGINFO read from the stream: every compression, bounded, bombs and lies refused, tar corner cases."""

from __future__ import annotations

import bz2
import gzip
import io
import lzma
import shutil
import subprocess
import tarfile
import time
import tracemalloc
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.pkgbuild import build_package, compress
from torfetch.config import Limits
from torfetch.errors import PackageContentError, TorfetchError
from torfetch.pacman.filename import parse_package_filename
from torfetch.pacman.pkginfo import PkgInfoReader, check_matches_filename, parse_pkginfo

PKGINFO = b"pkgname = hello\npkgbase = hello\npkgver = 1:2.0-3\narch = any\nsize = 1\n"


def read(data: bytes, limits: Limits | None = None, step: int = 4096) -> PkgInfoReader:
    r = PkgInfoReader(limits or Limits())
    for i in range(0, len(data), step):
        r.feed(data[i : i + step])
    return r


def member(name: str, body: bytes, *, fmt: int = tarfile.PAX_FORMAT, typ: bytes = tarfile.REGTYPE,
           pax: dict[str, str] | None = None) -> bytes:
    ti = tarfile.TarInfo(name)
    ti.size = len(body) if typ in (tarfile.REGTYPE, tarfile.AREGTYPE) else 0
    ti.type = typ
    if typ == tarfile.SYMTYPE:
        ti.linkname = "elsewhere"
    if pax:
        ti.pax_headers = pax
    out = ti.tobuf(format=fmt, encoding="utf-8", errors="surrogateescape")
    if ti.size:
        out += body + b"\0" * (-len(body) % 512)
    return out


def fix_checksum(h: bytearray) -> None:
    h[148:156] = b" " * 8
    h[148:156] = b"%06o\0 " % sum(h)


def tar(*members: bytes) -> bytes:
    return b"".join(members) + b"\0" * 1024


@pytest.mark.parametrize("comp", ["zst", "xz", "gz", "bz2", ""])
@pytest.mark.parametrize("step", [1, 997, 1 << 20])
def test_every_compression_and_chunking(tmp_path: Path, comp: str, step: int) -> None:
    p = build_package(tmp_path, "hello", "2:1.0-3", compression=comp)
    r = read(p.read_bytes(), step=step)
    info = r.finish()
    assert (info.pkgname, info.pkgver, info.arch, info.pkgbase) == ("hello", "2:1.0-3", "x86_64", "hello")
    assert info.fields["license"] == ("MIT",)
    check_matches_filename(info, parse_package_filename(p.name))


def test_gnu_format_and_long_names_before_pkginfo(tmp_path: Path) -> None:
    long = "usr/share/" + "x" * 200 + "/.PKGINFO"  # a long name that ends like the real one
    data = tar(member(".BUILDINFO", b"format = 2\n", fmt=tarfile.GNU_FORMAT),
               member(long, b"pkgname = evil\n", fmt=tarfile.GNU_FORMAT),
               member(".PKGINFO", PKGINFO, fmt=tarfile.GNU_FORMAT))
    assert read(data).finish().pkgname == "hello"
    data = tar(member(long, b"pkgname = evil\n"), member(".PKGINFO", PKGINFO))  # pax path record
    assert read(data).finish().pkgname == "hello"
    p = build_package(tmp_path, "hello", "1-1", tar_format="gnu")
    assert read(p.read_bytes()).finish().pkgver == "1-1"


def test_pax_path_and_size_records_are_honoured() -> None:
    # ustar name ".PKGINFO" but pax path says otherwise: not the .PKGINFO
    decoy = member(".PKGINFO", b"pkgname = evil\npkgver = 1-1\narch = any\n", pax={"path": "usr/decoy"})
    assert read(tar(decoy, member(".PKGINFO", PKGINFO))).finish().pkgname == "hello"
    # a pax "size" overrides the header's size field (how >8 GiB members are written)
    body = b"A" * 1024
    big = bytearray(member(".BUILDINFO", body, pax={"size": "1024", "comment": "x"}))
    hdr_at = big.index(b".BUILDINFO", 600) if big.count(b".BUILDINFO") > 1 else len(big) - 1024 - 512
    h = bytearray(big[hdr_at : hdr_at + 512])
    h[124:136] = b"00000000000\0"  # size 0 in the ustar header
    fix_checksum(h)
    big[hdr_at : hdr_at + 512] = h
    assert read(tar(bytes(big), member(".PKGINFO", PKGINFO))).finish().pkgname == "hello"


def test_base256_size_field() -> None:
    body = b"B" * 1024  # 1024 = 0x400: its base-256 field ends in a NUL byte
    m = bytearray(member(".BUILDINFO", body, fmt=tarfile.GNU_FORMAT))
    h = m[:512]
    h[124:136] = b"\x80" + (1024).to_bytes(11, "big")
    fix_checksum(h)
    m[:512] = h
    assert read(tar(bytes(m), member(".PKGINFO", PKGINFO))).finish().pkgname == "hello"


def test_only_an_exact_dot_pkginfo_counts_like_libalpm() -> None:
    with pytest.raises(PackageContentError, match="ended before .PKGINFO"):
        read(tar(member("./.PKGINFO", PKGINFO))).finish()
    with pytest.raises(PackageContentError, match="not a regular file"):
        read(tar(member(".PKGINFO", b"", typ=tarfile.SYMTYPE))).finish()
    with pytest.raises(PackageContentError, match="over the limit"):
        read(tar(member(".PKGINFO", PKGINFO + b"#" * 5000)), Limits(pkginfo_max_member=4096)).finish()


def test_corrupt_header_checksum() -> None:
    data = bytearray(tar(member(".BUILDINFO", b"x"), member(".PKGINFO", PKGINFO)))
    data[10] ^= 1
    with pytest.raises(PackageContentError, match="bad checksum"):
        read(bytes(data)).finish()


@pytest.mark.parametrize("comp", ["zst", "gz", "bz2", "xz"])
def test_concatenated_streams(comp: str) -> None:
    data = tar(member(".BUILDINFO", b"x" * 3000), member(".MTREE", b"y" * 700), member(".PKGINFO", PKGINFO))
    cut = 1500
    two = compress(data[:cut], comp) + compress(data[cut:], comp)
    assert read(two, step=100).finish().pkgname == "hello"


def test_pkginfo_parsed_like_libalpm() -> None:
    info = parse_pkginfo(b"# comment\npkgname = hello\npkgver = 1-1\narch = any\ndepend = a\ndepend = b\nnonsense\n")
    assert (info.pkgname, info.pkgver, info.arch) == ("hello", "1-1", "any")
    assert info.fields["depend"] == ("a", "b")
    with pytest.raises(PackageContentError, match="lacks pkgver"):
        parse_pkginfo(b"pkgname = a\narch = any\n")
    with pytest.raises(PackageContentError, match="more than"):
        parse_pkginfo(b"pkgname = a\npkgver = 1-1\narch = any\n" + b"x = y\n" * 30000)


BASE = b"pkgname = a\npkgver = 1-1\narch = any\n"


def test_pkginfo_key_needs_exactly_space_equals_space() -> None:
    # libalpm: the key ends at the first space, which must start " = "; other lines are ignored
    for ignored in (b"pkgname=evil", b"pkgname  = evil", b" pkgname = evil", b"pkgname\t= evil", b"pkgname =evil",
                    b"pkgname =", b"#pkgname = evil", b"# pkgname = evil", b"pkgname: evil"):
        info = parse_pkginfo(BASE + ignored + b"\n")
        assert info.pkgname == "a", ignored
    with pytest.raises(PackageContentError, match="lacks pkgname"):
        parse_pkginfo(BASE + b"pkgname = \n")  # "key = " with nothing after: an empty value, the last one


def test_pkginfo_value_is_untrimmed_and_may_hold_equals() -> None:
    info = parse_pkginfo(BASE + b"pkgdesc =  two  spaces \nurl = a = b\n")
    assert info.fields["pkgdesc"] == (" two  spaces ",)  # after " = ": one space kept, trailing too
    assert info.fields["url"] == ("a = b",)
    # only \n ends a line: a CR stays in the value, so a CRLF .PKGINFO never matches its file name
    info = parse_pkginfo(b"pkgname = hello\r\npkgver = 1-1\r\narch = any\r\n")
    assert (info.pkgname, info.pkgver, info.arch) == ("hello\r", "1-1\r", "any\r")
    with pytest.raises(PackageContentError):
        check_matches_filename(info, parse_package_filename("hello-1-1-any.pkg.tar.zst"))
    # the last line needs no newline
    assert parse_pkginfo(b"pkgname = a\npkgver = 1-1\narch = any").arch == "any"


def test_pkginfo_repeated_key_last_one_wins() -> None:
    info = parse_pkginfo(b"pkgname = first\npkgver = 1-1\npkgbase = b1\narch = any\n"
                         b"pkgname = second\npkgver = 2-2\npkgbase = b2\narch = x86_64\n")
    assert (info.pkgname, info.pkgver, info.pkgbase, info.arch) == ("second", "2-2", "b2", "x86_64")
    assert info.fields["pkgname"] == ("first", "second")
    check_matches_filename(info, parse_package_filename("second-2-2-x86_64.pkg.tar.zst"))
    with pytest.raises(PackageContentError, match="says it is second 2-2"):
        check_matches_filename(info, parse_package_filename("first-1-1-any.pkg.tar.zst"))


def test_pkginfo_version_needs_pkgrel_and_refusals() -> None:
    with pytest.raises(PackageContentError, match="invalid pkgver"):
        parse_pkginfo(b"pkgname = a\npkgver = 1\narch = any\n")  # libalpm: "invalid package version"
    with pytest.raises(PackageContentError, match="NUL"):
        parse_pkginfo(BASE + b"pkgname = a\0b\n")
    with pytest.raises(PackageContentError, match="line of"):
        parse_pkginfo(BASE + b"pkgdesc = " + b"x" * (512 * 1024) + b"\n")
    parse_pkginfo(BASE + b"pkgdesc = " + b"x" * (512 * 1024 - 20) + b"\n")  # just under libalpm's limit
    # not UTF-8: the byte is kept (a surrogate escape), not replaced by U+FFFD that a decoded name could equal
    assert parse_pkginfo(b"pkgname = caf\xe9\npkgver = 1-1\narch = any\n").pkgname == "caf\udce9"


LIBALPM_CASES = [
    b"pkgname = first\npkgname = second\npkgver=9-9\npkgver = 1-1\n pkgver = 7-7\npkgver  = 8-8\n#pkgver = 6-6\narch = any\n",
    b"pkgname = crlf\r\npkgver = 1-1\r\narch = any\r\n",
    b"pkgname = x\npkgver = 2:1.0-3\npkgbase = y\narch = x86_64\npkgname = z\nurl = a = b\narch = any",
    b"#\n\n\npkgname = sp ace\npkgver = 1-1 \narch = any\npkgname =\n",
]


@pytest.mark.pacman
@pytest.mark.skipif(not shutil.which("pacman"), reason="needs Debian's pacman-package-manager")
@pytest.mark.parametrize("pkginfo", LIBALPM_CASES)
def test_pkginfo_agrees_with_real_libalpm(tmp_path: Path, pkginfo: bytes) -> None:
    """What pacman -Qp (libalpm's parse_descfile) reads from the package is what torfetch reads."""
    p = build_package(tmp_path, "hello", "1-1", pkginfo_override=pkginfo)
    (tmp_path / "db").mkdir()
    r = subprocess.run(["pacman", "-Qpi", "--dbpath", str(tmp_path / "db"), str(p)], capture_output=True, timeout=60)
    assert r.returncode == 0, r.stderr
    alpm = {}
    for line in r.stdout.split(b"\n"):
        key, sep, val = line.partition(b" : ")
        if sep:
            alpm[key.strip()] = val
    ours = read(p.read_bytes()).finish()
    assert (ours.pkgname.encode(), ours.pkgver.encode(), ours.arch.encode()) == \
        (alpm[b"Name"], alpm[b"Version"], alpm[b"Architecture"])


def test_found_after_many_files_in_mtree(tmp_path: Path) -> None:
    files = {f"usr/share/big/f{i:05d}": b"x" for i in range(3000)}  # a large .MTREE before .PKGINFO
    p = build_package(tmp_path, "big", "1-1", files=files)
    assert read(p.read_bytes()).finish().pkgname == "big"


def test_stops_consuming_once_found(tmp_path: Path) -> None:
    p = build_package(tmp_path, "hello", "1-1", files={"usr/x": b"\0" * 50_000_000})
    r = read(p.read_bytes())
    assert r.result is not None
    assert r.decompressed_bytes < 5_000_000  # it did not decompress the 50 MB payload
    before = r.decompressed_bytes
    t0 = time.monotonic()
    for _ in range(2000):
        r.feed(b"\xff" * 65536)  # after the result, feed() only returns
    assert r.decompressed_bytes == before and r.result is not None
    assert time.monotonic() - t0 < 2.0


@pytest.mark.parametrize("comp", ["zst", "xz", "gz", "bz2"])
def test_decompression_bomb_is_refused_in_bounded_memory(tmp_path: Path, comp: str) -> None:
    size = 1 << 30 if comp in ("zst", "gz") else 200 << 20  # xz/bz2 compress zeros slowly
    p = build_package(tmp_path, "bomb", "1-1", compression=comp, buildinfo_padding=size)
    assert p.stat().st_size < 2 * 1024 * 1024  # a small file...
    data = p.read_bytes()
    tracemalloc.start()
    try:
        r = read(data, Limits(pkginfo_max_decompressed=64 * 1024 * 1024), step=65536)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    with pytest.raises(PackageContentError, match="decompression bomb"):
        r.finish()
    assert peak < 24 * 1024 * 1024, f"peak {peak} bytes"
    assert r.decompressed_bytes < 80 * 1024 * 1024


def test_no_pkginfo_within_compressed_limit() -> None:
    r = read(b"\x28\xb5\x2f\xfd" + b"\x00" * 5000, Limits(pkginfo_max_compressed=1000))
    with pytest.raises(PackageContentError):
        r.finish()
    # a member before .PKGINFO larger than the compressed limit
    data = tar(member(".BUILDINFO", bytes(range(256)) * 40), member(".PKGINFO", PKGINFO))
    with pytest.raises(PackageContentError, match="first 8000 bytes"):
        read(data, Limits(pkginfo_max_compressed=8000)).finish()


def test_compressed_limit_counts_only_what_is_needed() -> None:
    data = tar(member(".PKGINFO", PKGINFO), member("usr/big", b"z" * 100_000))
    r = PkgInfoReader(Limits(pkginfo_max_compressed=4096))
    r.feed(data)  # one chunk far over the limit; .PKGINFO is in its first 4 KiB
    assert r.finish().pkgname == "hello"


def test_not_a_package() -> None:
    with pytest.raises(PackageContentError):
        read(b"<html>not found</html>" * 40).finish()
    with pytest.raises(PackageContentError, match="not a valid compressed"):
        read(b"\x28\xb5\x2f\xfd" + b"garbage" * 100).finish()
    with pytest.raises(PackageContentError, match="no .PKGINFO"):
        read(b"").finish()
    with pytest.raises(PackageContentError, match="no .PKGINFO"):
        read(compress(tar(member(".BUILDINFO", b"x"))[:600], "zst")).finish()  # truncated


def test_pkginfo_must_agree_with_filename(tmp_path: Path) -> None:
    p = build_package(tmp_path, "evil", "1-1", filename="good-1-1-x86_64.pkg.tar.zst")
    info = read(p.read_bytes()).finish()
    with pytest.raises(PackageContentError, match="says it is evil 1-1"):
        check_matches_filename(info, parse_package_filename(p.name))
    info = parse_pkginfo(b"pkgname = good\npkgver = 1-1\narch = any\n")
    with pytest.raises(PackageContentError, match="arch any"):
        check_matches_filename(info, parse_package_filename("good-1-1-x86_64.pkg.tar.zst"))
    with pytest.raises(PackageContentError):
        check_matches_filename(info, parse_package_filename("good-1:1-1-any.pkg.tar.zst"))  # epoch matters
    check_matches_filename(info, parse_package_filename("good-1-1-any.pkg.tar.zst"))


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=3000), st.sampled_from(["zst", "xz", "gz", "bz2", ""]))
def test_fuzz_reader(data: bytes, comp: str) -> None:
    r = read(compress(data, comp), Limits(pkginfo_max_decompressed=1 << 20), step=333)
    try:
        r.finish()
    except TorfetchError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from([".BUILDINFO", ".MTREE", ".PKGINFO", "./.PKGINFO", "usr/" + "n" * 120]),
                          st.binary(max_size=700), st.sampled_from([tarfile.PAX_FORMAT, tarfile.GNU_FORMAT])),
                max_size=5), st.integers(min_value=1, max_value=700))
def test_fuzz_structured_tars(members, step: int) -> None:
    data = tar(*(member(n, b, fmt=f) for n, b, f in members))
    r = read(data, step=step)
    try:
        info = r.finish()
    except TorfetchError:
        return
    first = next(b for n, b, f in members if n == ".PKGINFO")
    assert info == parse_pkginfo(first)


@settings(max_examples=100, deadline=None)
@given(st.integers(min_value=0, max_value=5000), st.binary(min_size=1, max_size=1))
def test_fuzz_truncated_and_flipped_packages(tmp_path_factory, cut: int, flip: bytes) -> None:
    d = tmp_path_factory.getbasetemp() / "fz"
    p = d / "hello-1-1-x86_64.pkg.tar.zst"
    if not p.exists():
        build_package(d, "hello", "1-1")
    data = bytearray(p.read_bytes())
    if data:
        data[cut % len(data)] ^= flip[0] or 1
    try:
        read(bytes(data[: max(1, len(data) - cut % 50)]), step=101).finish()
    except TorfetchError:
        pass


def test_default_limit_refuses_a_pkginfo_behind_more_than_64_mib(tmp_path: Path) -> None:
    # What a hostile package makes the reader decompress before .PKGINFO is what the decompressor's window
    # touches (up to the window a frame declares): the default caps it at 64 MiB. Real packages have
    # .PKGINFO within their .BUILDINFO and .MTREE (hundreds of KiB for thousands of files).
    p = build_package(tmp_path, "late", "1-1", compression="zst", buildinfo_padding=65 << 20)
    r = read(p.read_bytes(), step=1 << 20)
    with pytest.raises(PackageContentError, match="decompression bomb"):
        r.finish()
    assert r.decompressed_bytes <= Limits().pkginfo_max_decompressed + (1 << 20)
    ok = build_package(tmp_path / "ok", "early", "1-1", compression="zst", buildinfo_padding=60 << 20)
    assert read(ok.read_bytes(), step=1 << 20).finish().pkgname == "early"
