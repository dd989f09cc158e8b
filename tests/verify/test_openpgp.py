"""Detached OpenPGP signatures: what gpg writes passes, anything else (packages above all) is refused."""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torfetch.errors import MalformedInputError
from torfetch.verify.openpgp import MAX_SIGNATURE_BYTES, parse_detached_signature

TS = struct.pack(">I", 1_700_000_000)
KEYID = bytes(range(1, 9))


# --- a small encoder, to build packets gpg does not write (v6, bad shapes) ---------

def subpacket(typ: int, body: bytes, *, critical: bool = False) -> bytes:
    n = len(body) + 1
    if n < 192:
        head = bytes([n])
    elif n < 8384:
        n -= 192
        head = bytes([(n >> 8) + 192, n & 0xFF])
    else:
        head = b"\xff" + struct.pack(">I", n)
    return head + bytes([typ | (0x80 if critical else 0)]) + body


def mpi(value: int) -> bytes:
    bits = value.bit_length()
    return struct.pack(">H", bits) + value.to_bytes((bits + 7) // 8, "big")


def body_v4(*, pk: int = 22, hash_algo: int = 8, sig_type: int = 0, hashed: bytes | None = None,
            unhashed: bytes | None = None, values: bytes | None = None, version: int = 4) -> bytes:
    hashed = subpacket(2, TS) + subpacket(33, b"\x04" + bytes(20)) if hashed is None else hashed
    unhashed = subpacket(16, KEYID) if unhashed is None else unhashed
    if values is None:
        values = mpi(2**255 + 12345) + mpi(2**254 + 7)
    return (bytes([version, sig_type, pk, hash_algo]) + struct.pack(">H", len(hashed)) + hashed
            + struct.pack(">H", len(unhashed)) + unhashed + b"\xab\xcd" + values)


def body_v6(*, pk: int = 27, hash_algo: int = 8, salt: bytes = bytes(16), values: bytes | None = None) -> bytes:
    hashed = subpacket(2, TS) + subpacket(33, b"\x06" + bytes(32))
    values = bytes(64) if values is None else values
    return (bytes([6, 0, pk, hash_algo]) + struct.pack(">I", len(hashed)) + hashed + struct.pack(">I", 0)
            + b"\x12\x34" + bytes([len(salt)]) + salt + values)


def new_packet(body: bytes, tag: int = 2) -> bytes:
    n = len(body)
    if n < 192:
        head = bytes([n])
    elif n < 8384:
        n -= 192
        head = bytes([(n >> 8) + 192, n & 0xFF])
    else:
        head = b"\xff" + struct.pack(">I", n)
    return bytes([0xC0 | tag]) + head + body


def old_packet(body: bytes, tag: int = 2, ltype: int | None = None) -> bytes:
    if ltype is None:
        ltype = 0 if len(body) < 256 else 1 if len(body) < 65536 else 2
    size = (1, 2, 4)[ltype]
    return bytes([0x80 | (tag << 2) | ltype]) + len(body).to_bytes(size, "big") + body


# --- real signatures from Debian's gpg -------------------------------------------------

@pytest.fixture(scope="module")
def gpg_sigs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, bytes]:
    assert shutil.which("gpg"), "gpg is part of the test toolchain (scripts/apt-packages)"
    home = tmp_path_factory.mktemp("gnupg")
    os.chmod(home, 0o700)
    env = {**os.environ, "GNUPGHOME": str(home)}
    data = home / "pkg.tar.zst"
    data.write_bytes(b"\x28\xb5\x2f\xfd" + os.urandom(300))
    out: dict[str, bytes] = {}
    for uid, algo in (("ed", "ed25519"), ("rsa", "rsa3072"), ("ec", "nistp256")):
        subprocess.run(["gpg", "--batch", "--passphrase", "", "--quick-gen-key", f"{uid} <{uid}@example.invalid>",
                        algo, "sign", "never"], check=True, env=env, capture_output=True, timeout=120)
        sig = home / f"{uid}.sig"
        subprocess.run(["gpg", "--batch", "--yes", "-u", f"{uid}@example.invalid", "--detach-sign", "-o", str(sig),
                        str(data)], check=True, env=env, capture_output=True, timeout=60)
        out[uid] = sig.read_bytes()
        asc = home / f"{uid}.asc"
        subprocess.run(["gpg", "--batch", "--yes", "-u", f"{uid}@example.invalid", "--armor", "--detach-sign",
                        "-o", str(asc), str(data)], check=True, env=env, capture_output=True, timeout=60)
        out[uid + ".asc"] = asc.read_bytes()
    two = home / "two.sig"
    subprocess.run(["gpg", "--batch", "--yes", "-u", "ed@example.invalid", "-u", "rsa@example.invalid",
                    "--detach-sign", "-o", str(two), str(data)], check=True, env=env, capture_output=True, timeout=60)
    out["two"] = two.read_bytes()
    out["package"] = data.read_bytes()
    return out


@pytest.mark.parametrize("uid,pk", [("ed", 22), ("rsa", 1), ("ec", 19)])
def test_gpg_detached_signatures_pass(gpg_sigs: dict[str, bytes], uid: str, pk: int) -> None:
    sig = parse_detached_signature(gpg_sigs[uid])
    assert len(sig.packets) == 1
    p = sig.packets[0]
    assert (p.version, p.sig_type, p.pubkey_algo) == (4, 0, pk)
    assert p.issuer_key_id is not None and len(p.issuer_key_id) == 8
    assert p.issuer_fingerprint is not None and p.issuer_fingerprint.endswith(p.issuer_key_id)
    assert p.creation_time > 1_600_000_000
    assert sig.size == len(gpg_sigs[uid])


def test_two_signers_in_one_file(gpg_sigs: dict[str, bytes]) -> None:
    assert [p.pubkey_algo for p in parse_detached_signature(gpg_sigs["two"]).packets] == [22, 1]


@pytest.mark.parametrize("uid", ["ed.asc", "rsa.asc", "package"])
def test_armour_and_packages_are_refused(gpg_sigs: dict[str, bytes], uid: str) -> None:
    with pytest.raises(MalformedInputError, match="not an OpenPGP signature"):
        parse_detached_signature(gpg_sigs[uid])


@pytest.mark.parametrize("cut", [1, 2, 5, 40])
def test_truncated_or_trailing_bytes_are_refused(gpg_sigs: dict[str, bytes], cut: int) -> None:
    good = gpg_sigs["rsa"]
    with pytest.raises(MalformedInputError):
        parse_detached_signature(good[:-cut])
    with pytest.raises(MalformedInputError):
        parse_detached_signature(good + b"\x00" * cut)


def test_real_package_files_are_refused(tmp_path: Path) -> None:
    from tests.pkgbuild import build_package

    for comp in ("zst", "gz", "xz"):
        pkg = build_package(tmp_path / comp, "evil", "1.0-1", files={"x": b"y"}, compression=comp)
        with pytest.raises(MalformedInputError):
            parse_detached_signature(pkg.read_bytes()[:MAX_SIGNATURE_BYTES])


# --- the encoder's packets: the parser's rules, one by one ------------------------------

def test_encoder_baseline_passes() -> None:
    # (old format with a 4-byte length is refused: see the lzma test below)
    for data in (new_packet(body_v4()), old_packet(body_v4()), old_packet(body_v4(), ltype=1),
                 new_packet(body_v6()),
                 new_packet(body_v6(pk=28, hash_algo=10, salt=bytes(32), values=bytes(114))),
                 new_packet(body_v4(pk=1, values=mpi(2**3071 + 99))),
                 new_packet(body_v4(pk=27, values=bytes(64)))):
        parse_detached_signature(data)
    # a large but well-formed packet uses the 5-octet length
    big = new_packet(body_v4(hashed=subpacket(2, TS) + subpacket(20, b"\x80\x00\x00\x00" + bytes(4) + b"a" * 9000)))
    assert big[1] == 0xFF
    with pytest.raises(MalformedInputError, match="over the limit"):
        parse_detached_signature(big, max_bytes=8192)
    assert parse_detached_signature(big).packets[0].body_length > 9000


@pytest.mark.parametrize("data,why", [
    (b"", "empty"),
    (new_packet(body_v4(), tag=11), "tag 11"),                          # literal data
    (new_packet(body_v4(version=3)), "version 3"),
    (new_packet(body_v4(version=5)), "version 5"),
    (new_packet(body_v4(sig_type=0x01)), "type 0x01"),                  # canonical text
    (new_packet(body_v4(sig_type=0x13)), "type 0x13"),                  # a key certification
    (new_packet(body_v4(pk=16)), "algorithm 16"),                       # Elgamal encrypt-only
    (new_packet(body_v4(hash_algo=1)), "hash algorithm 1"),             # MD5
    (new_packet(body_v6(pk=22)), "algorithm 22"),                       # no EdDSALegacy in v6
    (new_packet(body_v6(hash_algo=2)), "hash algorithm 2"),             # no SHA-1 in v6
    (new_packet(body_v6(salt=bytes(15))), "salt"),
    (new_packet(body_v4(hashed=subpacket(33, b"\x04" + bytes(20)))), "creation time"),
    (new_packet(body_v4(hashed=subpacket(2, TS) * 2)), "creation time"),
    (new_packet(body_v4(hashed=subpacket(2, TS) + subpacket(100, b"x", critical=True))), "critical"),
    (new_packet(body_v4(unhashed=subpacket(16, b"short"))), "issuer key id"),
    (new_packet(body_v4(hashed=subpacket(2, TS) + subpacket(33, b"\x05" + bytes(20)))), "fingerprint"),
    (new_packet(body_v4(hashed=subpacket(2, TS) + b"\x00")), "empty subpacket"),
    (new_packet(body_v4(hashed=subpacket(2, TS) + b"\x09\x14")), "truncated"),
    (new_packet(body_v4(values=mpi(2**300))), "bits"),                   # too large for EdDSA
    (new_packet(body_v4(values=b"\x00\x00" + mpi(5))), "0 bits"),
    (new_packet(body_v4(values=b"\x01\x00" + b"\x01" + bytes(31) + mpi(5))), "bit count"),  # 256 bits claimed, 249 given
    (new_packet(body_v4(values=mpi(5))), "truncated"),                   # one MPI missing
    (new_packet(body_v4(values=mpi(5) + mpi(6) + b"\x00")), "after the signature value"),
    (new_packet(body_v4(pk=27, values=bytes(63))), "truncated"),
    (bytes([0x88 | 3]) + body_v4(), "indeterminate"),
    (bytes([0xC2, 0xE0]) + body_v4(), "partial"),
    (new_packet(body_v4())[:-1], "longer than the file"),
    (new_packet(body_v4()) * 9, "more than 8"),
    (b"\x28\xb5\x2f\xfd" + bytes(60), "packet header"),                    # zstd
    (b"-----BEGIN PGP SIGNATURE-----\n", "armour"),
])
def test_malformed_is_refused(data: bytes, why: str) -> None:
    with pytest.raises(MalformedInputError, match=why):
        parse_detached_signature(data)


# --- polyglots: a valid packet that libarchive would open as a package -----------------

def _notation(value: bytes) -> bytes:
    name = b"x@example.invalid"
    return subpacket(20, b"\x00\x00\x00\x00" + struct.pack(">HH", len(name), len(value)) + name + value)


@pytest.mark.parametrize("form", [b"%06o\x00 ", b"  %o ", b"%o 7777"])  # spellings libarchive's tar_atol8 reads
def test_tar_header_inside_a_packet_is_refused(form: bytes) -> None:
    data = bytearray(new_packet(body_v4(hashed=subpacket(2, TS) + _notation(b"A" * 700))))
    assert len(data) > 512 and data[148:156] == b"A" * 8  # the checksum field lies in the notation value
    data[156] = ord("0")  # a regular file
    data[148:156] = b" " * 8
    field = form % sum(data[:512])
    data[148:156] = field[:8].ljust(8, b" ")
    parse_ok = bytes(data)
    with pytest.raises(MalformedInputError, match="tar header"):
        parse_detached_signature(parse_ok)
    # the same packet with a wrong checksum is a signature
    data[150] = ord("7") if data[150] != ord("7") else ord("6")
    parse_detached_signature(bytes(data))


@pytest.mark.parametrize("value,why", [
    (b"PK\x03\x04" + bytes(30), "zip"), (b"xPK\x05\x06" + bytes(18), "zip"), (b"PK\x01\x02", "zip"),
    (b"\nbegin 644 x\nM86)C\n`\nend\n", "uuencode"), (b"\nbegin-base64 600 y\n", "uuencode"),
])
def test_archive_shapes_in_free_bytes_are_refused(value: bytes, why: str) -> None:
    with pytest.raises(MalformedInputError, match=why):
        parse_detached_signature(new_packet(body_v4(hashed=subpacket(2, TS) + _notation(value))))
    # the same bytes as an RSA signature value (free-form too)
    n = int.from_bytes(b"\x01" + value + bytes(8), "big")
    with pytest.raises(MalformedInputError, match=why):
        parse_detached_signature(new_packet(body_v4(pk=1, values=mpi(n))))


def test_harmless_notation_passes() -> None:
    # Sequoia adds a 32-byte salt notation to every signature
    sig = parse_detached_signature(new_packet(body_v4(hashed=subpacket(2, TS) + _notation(os.urandom(32).replace(b"PK", b"pk")))))
    assert sig.packets[0].creation_time == 1_700_000_000


# --- fuzzing: only typed errors -------------------------------------------------------

@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_fuzz_mutated_gpg_signatures(gpg_sigs: dict[str, bytes], data: st.DataObject) -> None:
    base = bytearray(gpg_sigs[data.draw(st.sampled_from(["ed", "rsa", "ec", "two"]))])
    for _ in range(data.draw(st.integers(1, 4))):
        op = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        i = data.draw(st.integers(0, max(0, len(base) - 1)))
        if op == "flip" and base:
            base[i] ^= data.draw(st.integers(1, 255))
        elif op == "cut":
            del base[i:i + data.draw(st.integers(1, 8))]
        else:
            base[i:i] = data.draw(st.binary(min_size=1, max_size=8))
    try:
        parse_detached_signature(bytes(base))
    except MalformedInputError:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_random_bytes(data: bytes) -> None:
    try:
        parse_detached_signature(data)
    except MalformedInputError:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300), st.integers(0, 3))
def test_fuzz_random_bodies_behind_valid_headers(body: bytes, form: int) -> None:
    data = new_packet(body) if form == 0 else old_packet(body)
    try:
        parse_detached_signature(data)
    except MalformedInputError:
        pass


def test_zip_in_a_signature_value_is_a_real_polyglot_and_refused(tmp_path: Path) -> None:
    """A structurally valid packet whose RSA value ends in a zip: bsdtar (libarchive, pacman's reader) opens it."""
    import io
    import zipfile

    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        z.writestr(".PKGINFO", "pkgname = evil\npkgver = 1.0-1\n")
    zipped = bytearray(buf.getvalue())
    offset = len(new_packet(body_v4(pk=1, values=mpi(int.from_bytes(b"\x01" + zipped, "big"))))) - len(zipped)
    # shift the zip's offsets by where it starts inside the packet
    eocd, cd = zipped.rfind(b"PK\x05\x06"), zipped.find(b"PK\x01\x02")
    struct.pack_into("<I", zipped, eocd + 16, struct.unpack_from("<I", zipped, eocd + 16)[0] + offset)
    struct.pack_into("<I", zipped, cd + 42, struct.unpack_from("<I", zipped, cd + 42)[0] + offset)
    data = new_packet(body_v4(pk=1, values=mpi(int.from_bytes(b"\x01" + bytes(zipped), "big"))))
    poly = tmp_path / "evil-1.0-1-x86_64.pkg.tar.zst.sig"
    poly.write_bytes(data)
    assert shutil.which("bsdtar"), "bsdtar is part of the test toolchain"
    listed = subprocess.run(["bsdtar", "-xOf", str(poly), ".PKGINFO"], capture_output=True, timeout=30)
    assert listed.returncode == 0 and b"pkgname = evil" in listed.stdout
    with pytest.raises(MalformedInputError, match="zip"):
        parse_detached_signature(data)


def test_tar_in_a_notation_is_a_real_polyglot_and_refused(tmp_path: Path) -> None:
    """A valid v4 packet whose first block is a tar header and whose notation holds .PKGINFO: bsdtar reads it."""
    import io
    import tarfile

    tb = io.BytesIO()
    with tarfile.open(fileobj=tb, mode="w", format=tarfile.USTAR_FORMAT) as tf:
        info = b"pkgname = evil\npkgver = 1.0-1\n"
        ti = tarfile.TarInfo(".PKGINFO")
        ti.size = len(info)
        tf.addfile(ti, io.BytesIO(info))
    tar = tb.getvalue()
    pkt = bytearray(new_packet(body_v4(hashed=subpacket(2, TS) + _notation(bytes(512 + len(tar))))))
    assert pkt.find(b"x@example.invalid") + 17 < 100  # the notation value covers the header's fields
    blk = pkt[:512]
    for at, field in ((100, b"0000644\x00"), (108, b"0000000\x00"), (116, b"0000000\x00"),
                      (124, b"00000000000\x00"), (136, b"00000000000\x00"), (156, b"0"), (257, b"ustar\x0000")):
        blk[at:at + len(field)] = field
    blk[148:156] = b" " * 8
    blk[148:156] = b"%06o\x00 " % sum(blk)
    pkt[:512] = blk
    pkt[512:512 + len(tar)] = tar
    poly = tmp_path / "evil.sig"
    poly.write_bytes(bytes(pkt))
    listed = subprocess.run(["bsdtar", "-xOf", str(poly), ".PKGINFO"], capture_output=True, timeout=30)
    assert listed.returncode == 0 and b"pkgname = evil" in listed.stdout
    with pytest.raises(MalformedInputError, match="tar header"):
        parse_detached_signature(bytes(pkt))


def test_old_format_four_byte_length_is_refused_libarchive_reads_it_as_lzma(tmp_path: Path) -> None:
    """0x8a (old format, 4-byte length) passes libarchive's raw-lzma bid: byte 0 is a valid LZMA properties
    byte and bytes 1..4, the length, read as a listed dictionary size (0x2000 → 2 MiB). Only the packet's
    fixed bytes 5..12 (the lzma header's uncompressed size) keep it from decoding today; no signing tool
    writes a 4-byte length below 64 KiB, so the header itself is refused."""
    # a notation sized so that the body is 0x2000 bytes: the length bytes 00 00 20 00 read LE as 2 MiB
    body = next(b for k in range(8000, 8192)
                if len(b := body_v4(hashed=subpacket(2, TS) + _notation(bytes(k)))) == 0x2000)
    data = old_packet(body, ltype=2)
    assert data[:5] == b"\x8a\x00\x00\x20\x00", data[:5].hex()
    poly = tmp_path / "evil-1.0-1-x86_64.pkg.tar.zst.sig"
    poly.write_bytes(data)
    listed = subprocess.run(["bsdtar", "-tf", str(poly)], capture_output=True, timeout=30)
    assert b"lzma" in listed.stderr.lower()  # libarchive chose its lzma filter for these bytes
    with pytest.raises(MalformedInputError, match="4-byte length"):
        parse_detached_signature(data)
    # the same body with the 2-byte length gpg writes is a signature
    assert parse_detached_signature(old_packet(body, ltype=1)).packets[0].body_length == len(body)
