"""Reproducible-build confirmations from rebuilderd: parsing, matching, attestations, the tally (pure).

pacman-bintrans counts a rebuilder once if it lists the package's exact name
and version as GOOD. torfetch does the same for unpinned rebuilders; for a
rebuilder whose key the user pinned (``--rebuilder-key URL=KEY``) a confirm
counts only with an in-toto link attestation, signed by that key, whose
product is exactly the downloaded file.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
from dataclasses import dataclass, field
from enum import Enum

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import AttestationError, ConfigError, MalformedInputError
from .jsondoc import expect_dict, loads_limited

MAX_RECORDS = 10000


class Verdict(Enum):
    CONFIRMED = "confirmed"
    BAD = "BAD"
    UNKNOWN = "unknown"  # not listed, UNKWN, other version, ...
    FAILED = "failed"  # timeout, malformed answer, bad attestation


@dataclass(frozen=True)
class RebuilderSpec:
    url: str
    pinned_key: str | None = None  # raw text as given; parsed with parse_pinned_key

    @property
    def name(self) -> str:
        return self.url


@dataclass(frozen=True)
class Record:
    name: str
    version: str
    status: str
    build_id: int | None = None
    artifact_id: int | None = None
    has_attestation: bool | None = None


@dataclass(frozen=True)
class Answer:
    rebuilder: str
    verdict: Verdict
    detail: str

    def line(self) -> str:
        return f"{self.rebuilder}: {self.detail}"


def _int_or_none(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _record(obj: object) -> Record | None:
    if not isinstance(obj, dict):
        return None
    name, version, status = obj.get("name"), obj.get("version"), obj.get("status")
    if not all(isinstance(x, str) for x in (name, version, status)):
        return None
    return Record(name, version, status, _int_or_none(obj.get("build_id")), _int_or_none(obj.get("artifact_id")),
                  obj.get("has_attestation") if isinstance(obj.get("has_attestation"), bool) else None)


def parse_v1(data: bytes, max_bytes: int) -> list[Record]:
    doc = expect_dict(loads_limited(data, max_bytes=max_bytes, what="rebuilder answer"), "rebuilder answer")
    records = doc.get("records")
    if not isinstance(records, list):
        raise MalformedInputError("rebuilder answer: 'records' is not a list")
    return [r for r in (_record(x) for x in records[:MAX_RECORDS]) if r is not None]


def parse_v0(data: bytes, max_bytes: int) -> list[Record]:
    doc = loads_limited(data, max_bytes=max_bytes, what="rebuilder answer")
    if not isinstance(doc, list):
        raise MalformedInputError("rebuilder answer: expected a JSON list")
    return [r for r in (_record(x) for x in doc[:MAX_RECORDS]) if r is not None]


def match(records: list[Record], pkgname: str, version: str) -> tuple[Verdict, Record | None, str]:
    """One verdict per rebuilder, however many rows it returns."""
    exact = [r for r in records if r.name == pkgname and r.version == version]
    good = [r for r in exact if r.status == "GOOD"]
    if good:
        # prefer a row that can carry an attestation
        good.sort(key=lambda r: (r.build_id is None, r.artifact_id is None))
        return Verdict.CONFIRMED, good[0], "reproduced it (GOOD)"
    if any(r.status == "BAD" for r in exact):
        return Verdict.BAD, None, f"reports BAD for {pkgname} {version}"
    if exact:
        return Verdict.UNKNOWN, None, f"has not reproduced {pkgname} {version} yet ({exact[0].status[:20]})"
    others = sorted({r.version for r in records if r.name == pkgname})[:3]
    if others:
        return Verdict.UNKNOWN, None, f"knows {pkgname} only in other versions ({', '.join(others)})"
    return Verdict.UNKNOWN, None, f"does not list {pkgname}"


# --- attestations (in-toto v0.9 link metablock, Ed25519) ------------------------------


def in_toto_canonical(obj: object) -> bytes:
    """in-toto-rs canonical JSON: sorted keys, no whitespace, escaped newlines turned back into real ones."""
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return text.replace("\\n", "\n").encode("utf-8")


def ed25519_keyid(raw: bytes) -> str:
    doc = {"keyid_hash_algorithms": ["sha256", "sha512"], "keytype": "ed25519",
           "keyval": {"public": raw.hex()}, "scheme": "ed25519"}
    return hashlib.sha256(in_toto_canonical(doc)).hexdigest()


def parse_pinned_key(text: str) -> bytes:
    """A pinned rebuilder key → 32 raw Ed25519 bytes.

    Accepts 64 hex digits (the raw key), a PEM block (rebuilderd serves a
    non-standard SPKI with a NULL parameter that ``cryptography`` rejects, so
    the last 32 bytes of the DER are the key), base64 of such a DER, or a path
    to a PEM file.
    """
    t = text.strip()
    if len(t) == 64:
        try:
            return bytes.fromhex(t)
        except ValueError:
            pass
    if "BEGIN PUBLIC KEY" not in t and not t.startswith("MC"):
        try:
            with open(t, encoding="ascii") as f:
                t = f.read(8192).strip()
        except (OSError, UnicodeDecodeError) as exc:
            raise ConfigError(f"--rebuilder-key: {text!r} is not a hex key, PEM or readable file") from exc
    if "BEGIN PUBLIC KEY" in t:
        t = "".join(ln for ln in t.splitlines() if ln and not ln.startswith("-----"))
    try:
        der = base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"--rebuilder-key: cannot decode key {text[:40]!r}") from exc
    if len(der) < 44 or len(der) > 64 or b"\x2b\x65\x70" not in der[:16]:  # OID 1.3.101.112 (Ed25519)
        raise ConfigError("--rebuilder-key: not an Ed25519 public key")
    return der[-32:]


@dataclass(frozen=True)
class AttestationCheck:
    keyid: str
    product_sha256: str


def verify_attestation(data: bytes, *, pinned_key: bytes, filename: str, sha256_hex: str,
                       max_bytes: int = 1024 * 1024) -> AttestationCheck:
    doc = expect_dict(loads_limited(data, max_bytes=max_bytes, what="attestation"), "attestation")
    signed = doc.get("signed")
    sigs = doc.get("signatures")
    if not isinstance(signed, dict) or not isinstance(sigs, list) or len(sigs) > 64:
        raise AttestationError(f"attestation for {filename} is not an in-toto metablock")
    keyid = ed25519_keyid(pinned_key)
    payload = in_toto_canonical(signed)
    pk = Ed25519PublicKey.from_public_bytes(pinned_key)
    ok = False
    for s in sigs:
        if not isinstance(s, dict) or not isinstance(s.get("sig"), str):
            continue
        if s.get("keyid") not in (keyid, None):
            continue
        try:
            pk.verify(bytes.fromhex(s["sig"]), payload)
            ok = True
            break
        except (InvalidSignature, ValueError):
            continue
    if not ok:
        raise AttestationError(f"attestation for {filename} is not signed by the pinned key {keyid[:16]}…")
    if signed.get("_type") != "link":
        raise AttestationError(f"attestation for {filename} is not an in-toto link")
    if signed.get("name") != f"rebuild {filename}":
        raise AttestationError(f"attestation is for {str(signed.get('name'))[:100]!r}, not 'rebuild {filename}'")
    products = signed.get("products")
    prod = products.get(filename) if isinstance(products, dict) else None
    digest = prod.get("sha256") if isinstance(prod, dict) else None
    if not isinstance(digest, str) or digest.lower() != sha256_hex.lower():
        raise AttestationError(f"the rebuilt {filename} has sha256 {str(digest)[:64]}, not the downloaded {sha256_hex}")
    return AttestationCheck(keyid, digest.lower())


# --- the tally ---------------------------------------------------------------------------


@dataclass
class RebuildTally:
    """N-of-M: done as soon as ``required`` confirmed; hopeless as soon as too few can still confirm."""

    required: int
    total: int
    answers: dict[str, Answer] = field(default_factory=dict)

    def add(self, answer: Answer) -> None:
        self.answers[answer.rebuilder] = answer

    @property
    def confirmed(self) -> int:
        return sum(1 for a in self.answers.values() if a.verdict is Verdict.CONFIRMED)

    @property
    def pending(self) -> int:
        return self.total - len(self.answers)

    def reached(self) -> bool:
        return self.confirmed >= self.required

    def hopeless(self) -> bool:
        return self.confirmed + self.pending < self.required

    def summary(self, subject: str) -> str:
        parts = [a.line() for a in self.answers.values()]
        return (f"only {self.confirmed} of {self.total} rebuilders confirmed {subject} (need {self.required}): "
                + "; ".join(parts))
