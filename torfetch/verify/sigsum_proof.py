"""Sigsum proof files and the log's ASCII answers: strict parsers and the version-2 writer (pure).

The format (sigsum-go doc/sigsum-proof.md, pkg/ascii): ``key=value`` lines,
each ended by a newline, in a fixed order; blank lines separate the parts::

    version=2
    log=<log keyhash>
    leaf=<submitter keyhash> <leaf signature>         (v1: leaf=<4 hex> <keyhash> <sig>)

    size=<n>
    root_hash=<hex>
    signature=<log signature>
    cosignature=<witness keyhash> <time> <signature>  (zero or more)

    leaf_index=<i>                                    (absent when size is 1)
    node_hash=<hex>                                   (one or more)

Anything else (an unknown or repeated key, a key out of order, bad hex, a wrong
length, a number with a sign or a leading zero, a CR, a missing final newline)
is a SigsumMalformedError, as sigsum-go refuses it. Sizes are capped before parsing.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SigsumMalformedError

MAX_PROOF_BYTES = 64 * 1024  # 63 node hashes and 256 cosignatures fit in ~60 KiB
MAX_BODY_BYTES = 1024 * 1024  # get-leaves answers: up to a few thousand leaves
MAX_COSIGNATURES = 256
MAX_PATH = 63  # sigsum-go's proofSizeLimit: a tree of 2**63 leaves needs no more
MAX_LEAVES = 8192
_HEX = frozenset("0123456789abcdefABCDEF")


@dataclass(frozen=True)
class TreeHead:
    size: int
    root_hash: bytes
    signature: bytes


@dataclass(frozen=True)
class Cosignature:
    keyhash: bytes
    timestamp: int
    signature: bytes


@dataclass(frozen=True)
class CosignedTreeHead:
    tree_head: TreeHead
    cosignatures: tuple[Cosignature, ...]


@dataclass(frozen=True)
class SigsumLeaf:
    checksum: bytes
    signature: bytes
    keyhash: bytes


@dataclass(frozen=True)
class SigsumProof:
    version: int
    log_keyhash: bytes
    leaf_keyhash: bytes
    leaf_signature: bytes
    cosigned_tree_head: CosignedTreeHead
    leaf_index: int
    path: tuple[bytes, ...]
    short_checksum: bytes | None = None  # version 1 only: the checksum's first 2 bytes


class _Lines:
    """The body's lines, read in order; every error names the line."""

    def __init__(self, data: bytes, what: str, cap: int) -> None:
        if not isinstance(data, bytes):
            raise SigsumMalformedError(f"{what} must be bytes")
        if len(data) > cap:
            raise SigsumMalformedError(f"{what} is larger than {cap} bytes")
        if not data:
            raise SigsumMalformedError(f"{what} is empty")
        if not data.endswith(b"\n"):
            raise SigsumMalformedError(f"{what} does not end with a newline (truncated?)")
        try:
            text = data.decode("ascii")
        except UnicodeDecodeError as exc:
            raise SigsumMalformedError(f"{what} is not ASCII text") from exc
        self.lines = text[:-1].split("\n")
        self.pos = 0
        self.what = what

    def error(self, why: str, lineno: int | None = None) -> SigsumMalformedError:
        return SigsumMalformedError(f"{self.what}, line {lineno or self.pos}: {why}")

    def at_end(self) -> bool:
        return self.pos >= len(self.lines)

    def peek(self) -> str | None:
        return None if self.at_end() else self.lines[self.pos]

    def blank(self) -> None:
        line = self.take_line()
        if line != "":
            raise self.error(f"expected a blank line, got {line[:60]!r}")

    def take_line(self) -> str:
        if self.at_end():
            raise SigsumMalformedError(f"{self.what} ends early, after line {self.pos}")
        line = self.lines[self.pos]
        self.pos += 1
        return line

    def value(self, key: str) -> str:
        line = self.take_line()
        k, sep, v = line.partition("=")
        if not sep:
            raise self.error(f"expected {key}=, got {line[:60]!r}")
        if k != key:
            raise self.error(f"expected {key}=, got {k[:30]!r}")
        return v

    def values(self, key: str, count: int) -> list[str]:
        v = self.value(key).split(" ")
        if len(v) != count:
            raise self.error(f"{key}= has {len(v)} values, expected {count}")
        return v

    def hexbytes(self, s: str, n: int, what: str) -> bytes:
        if len(s) != 2 * n or not _HEX.issuperset(s):
            raise self.error(f"{what} is not {2 * n} hex digits")
        return bytes.fromhex(s)

    def number(self, s: str, what: str) -> int:
        # sigsum-go's IntFromDecimal: ASCII digits, no sign, no leading zero, below 2**63
        if not s or not s.isascii() or not s.isdigit() or (len(s) > 1 and s[0] == "0") or len(s) > 19:
            raise self.error(f"{what} {s[:30]!r} is not a decimal number")
        n = int(s)
        if n >= 1 << 63:
            raise self.error(f"{what} is too large")
        return n


def _hash(p: _Lines, key: str, what: str) -> bytes:
    return p.hexbytes(p.value(key), 32, what)


def _cosignatures(p: _Lines) -> tuple[Cosignature, ...]:
    """cosignature= lines up to a blank line or the end; the blank line is left for the caller."""
    out: list[Cosignature] = []
    seen: set[bytes] = set()
    while not p.at_end() and p.peek() != "":
        kh_s, ts_s, sig_s = p.values("cosignature", 3)
        kh = p.hexbytes(kh_s, 32, "witness keyhash")
        ts = p.number(ts_s, "cosignature timestamp")
        sig = p.hexbytes(sig_s, 64, "cosignature")
        if kh in seen:
            raise p.error(f"a second cosignature by witness {kh.hex()}")
        if len(out) >= MAX_COSIGNATURES:
            raise p.error(f"more than {MAX_COSIGNATURES} cosignatures")
        seen.add(kh)
        out.append(Cosignature(kh, ts, sig))
    return tuple(out)


def _cosigned_tree_head(p: _Lines) -> CosignedTreeHead:
    size = p.number(p.value("size"), "tree size")
    root = _hash(p, "root_hash", "root hash")
    sig = p.hexbytes(p.value("signature"), 64, "tree head signature")
    return CosignedTreeHead(TreeHead(size, root, sig), _cosignatures(p))


def _node_hashes(p: _Lines) -> tuple[bytes, ...]:
    path: list[bytes] = []
    while not p.at_end():
        if len(path) >= MAX_PATH:
            raise p.error(f"more than {MAX_PATH} node hashes")
        path.append(_hash(p, "node_hash", "node hash"))
    if not path:
        raise p.error("no node_hash line (an empty path)")
    return tuple(path)


def parse_proof(data: bytes, *, what: str = "proof") -> SigsumProof:
    """A ``.proof`` file (version 1 or 2) → SigsumProof. Raises SigsumMalformedError naming ``what`` and the line."""
    p = _Lines(data, what, MAX_PROOF_BYTES)
    version_s = p.value("version")
    if version_s not in ("1", "2"):
        raise p.error(f"unknown proof version {version_s[:20]!r} (torfetch reads versions 1 and 2)")
    version = int(version_s)
    log = _hash(p, "log", "log keyhash")
    short: bytes | None = None
    if version == 1:
        short_s, kh_s, sig_s = p.values("leaf", 3)
        short = p.hexbytes(short_s, 2, "short checksum")
    else:
        kh_s, sig_s = p.values("leaf", 2)
    leaf_kh = p.hexbytes(kh_s, 32, "submitter keyhash")
    leaf_sig = p.hexbytes(sig_s, 64, "leaf signature")
    p.blank()
    cth = _cosigned_tree_head(p)
    size = cth.tree_head.size
    if size == 0:
        raise p.error("the tree head is of an empty tree: it cannot include the leaf")
    index = 0
    path: tuple[bytes, ...] = ()
    if size == 1:
        if not p.at_end():
            raise p.error("a tree of size 1 has no inclusion part, but the proof goes on", p.pos + 1)
    else:
        if p.at_end():
            raise SigsumMalformedError(f"{what} lacks its inclusion proof part (tree size {size})")
        p.blank()
        index = p.number(p.value("leaf_index"), "leaf index")
        path = _node_hashes(p)
    return SigsumProof(version, log, leaf_kh, leaf_sig, cth, index, path, short)


def _line(key: str, *values: bytes | int) -> str:
    return f"{key}=" + " ".join(v.hex() if isinstance(v, bytes) else str(v) for v in values) + "\n"


def serialize_cosigned_tree_head(cth: CosignedTreeHead) -> str:
    th = cth.tree_head
    out = _line("size", th.size) + _line("root_hash", th.root_hash) + _line("signature", th.signature)
    return out + "".join(_line("cosignature", c.keyhash, c.timestamp, c.signature) for c in cth.cosignatures)


def serialize_proof(proof: SigsumProof) -> bytes:
    """The version-2 text sigsum-submit writes (cosignatures in the order held; sigsum-go's order is a map's)."""
    out = _line("version", 2) + _line("log", proof.log_keyhash) + _line("leaf", proof.leaf_keyhash, proof.leaf_signature)
    out += "\n" + serialize_cosigned_tree_head(proof.cosigned_tree_head)
    if proof.cosigned_tree_head.tree_head.size > 1:
        out += "\n" + _line("leaf_index", proof.leaf_index) + "".join(_line("node_hash", h) for h in proof.path)
    return out.encode("ascii")


# --- the log's ASCII answers (used by the operator tools: sign, monitor) ------------


def parse_tree_head_body(data: bytes) -> CosignedTreeHead:
    """A ``get-tree-head`` answer: size=, root_hash=, signature=, then cosignature= lines to the end."""
    p = _Lines(data, "get-tree-head answer", MAX_PROOF_BYTES)
    cth = _cosigned_tree_head(p)
    if not p.at_end():
        raise p.error("unexpected blank line", p.pos + 1)
    return cth


def parse_inclusion_body(data: bytes) -> tuple[int, tuple[bytes, ...]]:
    """A ``get-inclusion-proof`` answer → (leaf_index, path)."""
    p = _Lines(data, "get-inclusion-proof answer", MAX_PROOF_BYTES)
    index = p.number(p.value("leaf_index"), "leaf index")
    return index, _node_hashes(p)


def parse_consistency_body(data: bytes) -> list[bytes]:
    """A ``get-consistency-proof`` answer: one or more node_hash= lines."""
    p = _Lines(data, "get-consistency-proof answer", MAX_PROOF_BYTES)
    return list(_node_hashes(p))


def parse_leaves_body(data: bytes, *, max_leaves: int = MAX_LEAVES) -> list[SigsumLeaf]:
    """A ``get-leaves`` answer: one or more ``leaf=<checksum> <signature> <keyhash>`` lines."""
    p = _Lines(data, "get-leaves answer", MAX_BODY_BYTES)
    leaves: list[SigsumLeaf] = []
    while not p.at_end():
        if len(leaves) >= max_leaves:
            raise p.error(f"more than {max_leaves} leaves")
        cs_s, sig_s, kh_s = p.values("leaf", 3)
        leaves.append(SigsumLeaf(p.hexbytes(cs_s, 32, "leaf checksum"), p.hexbytes(sig_s, 64, "leaf signature"),
                                 p.hexbytes(kh_s, 32, "leaf keyhash")))
    if not leaves:
        raise p.error("no leaves")
    return leaves
