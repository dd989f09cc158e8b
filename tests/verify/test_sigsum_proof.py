"""Sigsum proof files and log answers: strict parsing, and the version-2 writer byte-identical to sigsum-submit."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sigsum_vectors import Key, TestLog, message_of, serialize_v1
from torfetch.errors import MalformedInputError, SigsumMalformedError
from torfetch.verify.sigsum_proof import (
    MAX_PROOF_BYTES,
    parse_consistency_body,
    parse_inclusion_body,
    parse_leaves_body,
    parse_proof,
    parse_tree_head_body,
    serialize_proof,
)

VECTORS = Path(__file__).parent.parent / "vectors" / "sigsum"
REAL_PROOFS = sorted(VECTORS.glob("*.proof"))


@pytest.mark.parametrize("path", REAL_PROOFS, ids=lambda p: p.name)
def test_real_proofs_round_trip_byte_for_byte(path: Path) -> None:
    data = path.read_bytes()
    proof = parse_proof(data)
    assert proof.version == 2 and proof.short_checksum is None
    assert serialize_proof(proof) == data
    th = proof.cosigned_tree_head.tree_head
    assert len(proof.cosigned_tree_head.cosignatures) == 2
    if th.size == 1:
        assert proof.leaf_index == 0 and proof.path == ()
    else:
        assert 0 <= proof.leaf_index < th.size and proof.path


def test_real_proof_fields() -> None:
    proof = parse_proof((VECTORS / "pkg4.pkg.tar.zst.proof").read_bytes())
    assert proof.log_keyhash.hex() == "6ec6b028ab595bcfc9a63ebcf85590376941e6203ae25a0667d7d3b52026d9b6"
    assert proof.leaf_keyhash.hex() == "7671ad57af34c96fe2b8d6112db2f9e4d020d6282bd80ad3518bf39a4e5d6595"
    assert proof.cosigned_tree_head.tree_head.size == 4 and proof.leaf_index == 3 and len(proof.path) == 2
    assert proof.cosigned_tree_head.cosignatures[0].timestamp == 1796125007


def _log_with(n: int) -> tuple[TestLog, int]:
    log = TestLog(witnesses=[Key(1), Key(2)])
    log.add_filler(n // 2)
    i = log.add_message(Key(5), message_of(b"pkg"))
    log.add_filler(n - n // 2 - 1)
    return log, i


@pytest.mark.parametrize("size", [1, 2, 3, 7, 8, 33])
def test_hand_made_round_trip(size: int) -> None:
    log, i = _log_with(size)
    proof = log.proof(i)
    data = serialize_proof(proof)
    assert parse_proof(data) == proof
    assert (b"leaf_index=" in data) == (size > 1)


def test_version_1() -> None:
    log, i = _log_with(5)
    proof = log.proof(i, version=1)
    data = serialize_v1(proof)
    assert data.startswith(b"version=1\n") and data.split(b"\n")[2].count(b" ") == 2
    got = parse_proof(data)
    assert got == proof and got.short_checksum == log.leaves[i].checksum[:2]
    # written back as version 2, which drops the short checksum
    v2 = parse_proof(serialize_proof(got))
    assert v2.version == 2 and v2.short_checksum is None and v2.leaf_signature == proof.leaf_signature


GOOD = serialize_proof(_log_with(5)[0].proof(2)).decode()
LINES = GOOD.split("\n")


def _edit(line_no: int, new: str | None) -> bytes:
    lines = list(LINES)
    if new is None:
        del lines[line_no]
    else:
        lines[line_no] = new
    return "\n".join(lines).encode()


def _insert(line_no: int, new: str) -> bytes:
    lines = list(LINES)
    lines.insert(line_no, new)
    return "\n".join(lines).encode()


def test_lines_are_where_the_tests_think() -> None:
    assert LINES[0] == "version=2" and LINES[3] == "" and LINES[4].startswith("size=")
    assert LINES[7].startswith("cosignature=") and LINES[9] == "" and LINES[10].startswith("leaf_index=")


@pytest.mark.parametrize(("data", "why"), [
    (b"", "empty"),
    (GOOD.encode()[:-1], "newline"),
    (GOOD.encode()[:200], "newline"),
    (GOOD.encode() + b"\n", "expected node_hash="),
    (GOOD.encode() + b"extra=1\n", "expected node_hash="),
    (GOOD.replace("\n", "\r\n").encode(), "version"),
    (_edit(0, "version=3"), "unknown proof version"),
    (_edit(0, "version=02"), "unknown proof version"),
    (_edit(0, "Version=2"), "expected version="),
    (_edit(1, "log=" + "0" * 63), "log keyhash"),
    (_edit(1, "log=" + "g" * 64), "log keyhash"),
    (_edit(1, "log=" + " " + "0" * 63), "log keyhash"),
    (_insert(2, LINES[1]), "expected leaf="),  # a duplicate key
    (_edit(2, LINES[2] + " 00"), "2 values, expected|3 values, expected 2"),
    (_edit(2, LINES[2].replace(" ", "  ")), "values, expected 2"),
    (_edit(2, LINES[2][:-2]), "leaf signature"),
    (_edit(3, None), "expected a blank line"),
    (_edit(4, "size=0"), "empty tree"),
    (_edit(4, "size=-5"), "not a decimal"),
    (_edit(4, "size=+5"), "not a decimal"),
    (_edit(4, "size=05"), "not a decimal"),
    (_edit(4, "size=\u0665"), "not ASCII"),
    (_edit(4, "size=9223372036854775808"), "too large"),
    (_edit(4, "size=99999999999999999999"), "not a decimal"),
    (_insert(5, LINES[4]), "expected root_hash="),
    (_edit(5, "root_hash=" + "00" * 31), "root hash"),
    (_edit(6, "signature=" + "00" * 63), "tree head signature"),
    (_edit(7, LINES[7].rsplit(" ", 1)[0]), "3 values|2 values"),
    (_edit(7, LINES[7].replace(" 1700000000 ", " 01700000000 ")), "timestamp"),
    (_insert(8, LINES[7]), "a second cosignature by witness"),
    (_edit(9, None), "expected cosignature="),
    (_edit(10, "leaf_index=x"), "leaf index"),
    (_edit(10, "node_hash=" + "00" * 32), "expected leaf_index="),
    (_edit(11, "node_hash=" + "00" * 33), "node hash"),
    ("\n".join(LINES[:9]).encode() + b"\n", "lacks its inclusion proof part"),
    ("\n".join(LINES[:11]).encode() + b"\n", "no node_hash line"),
    (b"\xff" + GOOD.encode(), "not ASCII"),
])
def test_refused(data: bytes, why: str) -> None:
    with pytest.raises(SigsumMalformedError, match=why):
        parse_proof(data)


def test_refusals_are_malformed_input_naming_the_file() -> None:
    with pytest.raises(MalformedInputError, match=r"^proof for foo\.pkg\.tar\.zst, line 1"):
        parse_proof(_edit(0, "version=9"), what="proof for foo.pkg.tar.zst")


def test_size_one_with_inclusion_part_refused() -> None:
    log, i = _log_with(1)
    data = serialize_proof(log.proof(i))
    with pytest.raises(SigsumMalformedError, match="size 1 has no inclusion part"):
        parse_proof(data + b"\nleaf_index=0\n")
    with pytest.raises(SigsumMalformedError, match="size 1 has no inclusion part"):
        parse_proof(data + b"\n")


def test_caps() -> None:
    with pytest.raises(SigsumMalformedError, match="larger than"):
        parse_proof(GOOD.encode() + b"node_hash=" + b"00" * 32 + b"\n" + b"#" * MAX_PROOF_BYTES)
    too_long = GOOD.encode() + b"".join(b"node_hash=" + b"ab" * 32 + b"\n" for _ in range(64))
    with pytest.raises(SigsumMalformedError, match="more than 63 node hashes"):
        parse_proof(too_long)
    many = "".join(f"cosignature={Key(i).keyhash.hex()} 1 {'00' * 64}\n" for i in range(257))
    with pytest.raises(SigsumMalformedError, match="more than 256 cosignatures"):
        parse_proof("\n".join(LINES[:7]).encode() + b"\n" + many.encode() + b"\n" + "\n".join(LINES[10:]).encode())


def test_not_bytes_refused() -> None:
    with pytest.raises(SigsumMalformedError):
        parse_proof(GOOD)  # type: ignore[arg-type]


# --- the log's answers, as the real sigsum-log-primary sent them --------------------


def test_real_get_tree_head() -> None:
    cth = parse_tree_head_body((VECTORS / "get-tree-head.body").read_bytes())
    assert cth.tree_head.size == 5 and len(cth.cosignatures) == 2


def test_real_get_leaves() -> None:
    leaves = parse_leaves_body((VECTORS / "get-leaves.body").read_bytes())
    proof = parse_proof((VECTORS / "pkg1.pkg.tar.zst.proof").read_bytes())
    assert len(leaves) == 5 and leaves[0].signature == proof.leaf_signature
    assert leaves[0].keyhash == proof.leaf_keyhash and leaves[4].keyhash != proof.leaf_keyhash  # pkg5: other key


def test_real_inclusion_and_consistency() -> None:
    index, path = parse_inclusion_body((VECTORS / "get-inclusion-proof.body").read_bytes())
    assert index == 1 and len(path) == 3
    assert len(parse_consistency_body((VECTORS / "get-consistency-proof.body").read_bytes())) == 2


@pytest.mark.parametrize(("parser", "data", "why"), [
    (parse_tree_head_body, b"size=1\nroot_hash=" + b"00" * 32 + b"\nsignature=" + b"00" * 64 + b"\n\n", "blank"),
    (parse_tree_head_body, b"size=1\nroot_hash=" + b"00" * 32 + b"\n", "ends early"),
    (parse_inclusion_body, b"leaf_index=1\n", "no node_hash"),
    (parse_consistency_body, b"\n", "expected node_hash="),
    (parse_leaves_body, b"leaf=" + b"00" * 32 + b" " + b"00" * 64 + b"\n", "2 values"),
    (parse_leaves_body, b"leaf=" + b"00" * 32 + b" " + b"00" * 64 + b" " + b"00" * 31 + b"\n", "leaf keyhash"),
])
def test_bodies_refused(parser, data: bytes, why: str) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(SigsumMalformedError, match=why):
        parser(data)


def test_leaves_cap() -> None:
    line = b"leaf=" + b"00" * 32 + b" " + b"00" * 64 + b" " + b"00" * 32 + b"\n"
    assert len(parse_leaves_body(line * 3, max_leaves=3)) == 3
    with pytest.raises(SigsumMalformedError, match="more than 3 leaves"):
        parse_leaves_body(line * 4, max_leaves=3)
