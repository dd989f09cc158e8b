"""Reproducible-build confirmations from rebuilderd: parsing, matching, attestations, the tally (pure).

pacman-bintrans counts a rebuilder once if it lists the package's exact name
and version as GOOD. torfetch does the same for unpinned rebuilders; for a
rebuilder whose key the user pinned (``--rebuilder-key URL=KEY``) a confirm
counts only with an in-toto link attestation, signed by that key, whose
product is exactly the downloaded file.

Nothing here does I/O; ``torfetch.net.rebuilders`` asks the rebuilders and
hands the bytes in. Every malformed answer is a TorfetchError (never a raw
ValueError/KeyError); facts about the formats are in
``shared/notes/rebuilderd.md``.
"""

from __future__ import annotations

import base64
import binascii
import gzip
import hashlib
import json
import os
import urllib.parse
import zlib
from dataclasses import dataclass, field
from enum import Enum

import zstandard
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from ..errors import AttestationError, ConfigError, MalformedInputError
from .jsondoc import loads_limited

MAX_RECORDS = 100_000
MAX_SIGNATURES = 64
# Ed25519 SubjectPublicKeyInfo DER prefixes: RFC 8410's, and rebuilderd's with
# a NULL algorithm parameter (which `cryptography` refuses to load).
_SPKI_PREFIXES = (bytes.fromhex("302a300506032b6570032100"), bytes.fromhex("302c300706032b65700500032100"))


class Verdict(Enum):
    CONFIRMED = "confirmed"
    BAD = "BAD"
    UNKNOWN = "unknown"  # not listed, UNKWN, FAIL, other version, ...
    FAILED = "failed"  # timeout, malformed answer, bad or missing attestation


@dataclass(frozen=True)
class RebuilderSpec:
    url: str
    pinned_key: str | bytes | None = None  # text as given to --rebuilder-key, or 32 raw bytes

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

    @property
    def counted(self) -> bool:
        return self.verdict is Verdict.CONFIRMED

    def line(self) -> str:
        """One line for ``-v``: what the rebuilder said and whether it counted."""
        return f"{self.rebuilder}: {self.detail} — {'counted' if self.counted else 'not counted'}"


# --- URLs and keys from the command line -------------------------------------------------


def normalise_rebuilder_url(url: str) -> str:
    """``HTTPS://Host/rebuild`` → ``https://host/rebuild/``: one spelling per rebuilder.

    The base keeps its path (wolfpit.net/rebuild/): API paths are appended to
    it, never replace it.
    """
    u = url.strip()
    parts = urllib.parse.urlsplit(u)
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"rebuilder URL {url!r} must be http:// or https:// with a host")
    if parts.query or parts.fragment:
        raise ConfigError(f"rebuilder URL {url!r} must not have a query or fragment")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    return urllib.parse.urlunsplit((parts.scheme.lower(), parts.netloc.lower(), path, "", ""))


def endpoint(base: str, path: str, query: dict[str, str] | None = None) -> str:
    """Join an API path onto a rebuilder's base URL, keeping the base's own path."""
    url = normalise_rebuilder_url(base) + path.lstrip("/")
    return url + ("?" + urllib.parse.urlencode(query) if query else "")


def parse_pinned_key(text: str | bytes) -> bytes:
    """A pinned rebuilder key → 32 raw Ed25519 bytes. Raises ConfigError.

    Accepted, in this order:
      * 32 raw bytes (already parsed);
      * 64 hex digits: the raw Ed25519 public key;
      * a PEM ``PUBLIC KEY`` block, as rebuilderd serves at /api/v1/meta/public-keys
        (its non-standard SPKI with a NULL parameter, or the RFC 8410 one): the
        last 32 bytes of the DER are the key;
      * the base64 of such a DER (one line, as inside the PEM);
      * a path to a file holding any of the above.
    """
    if isinstance(text, bytes):
        if len(text) != 32:
            raise ConfigError("a raw rebuilder key must be 32 bytes")
        return text
    t = text.strip()
    if len(t) == 64:
        try:
            return bytes.fromhex(t)
        except ValueError:
            pass
    if "BEGIN PUBLIC KEY" not in t and not t.startswith("MC"):
        try:
            with open(os.path.expanduser(t), encoding="ascii") as f:
                t = f.read(8192).strip()
        except (OSError, UnicodeDecodeError, ValueError) as exc:
            raise ConfigError(
                f"--rebuilder-key: {text[:80]!r} is neither 64 hex digits, a PEM/base64 Ed25519 key, nor a readable file"
            ) from exc
        if len(t) == 64:
            try:
                return bytes.fromhex(t)
            except ValueError:
                pass
    if "BEGIN PUBLIC KEY" in t:
        body = t.split("-----BEGIN PUBLIC KEY-----", 1)[1].split("-----END PUBLIC KEY-----", 1)[0]
        t = "".join(body.split())
    try:
        der = base64.b64decode(t, validate=True)
    except (binascii.Error, ValueError) as exc:
        raise ConfigError(f"--rebuilder-key: cannot decode key {text[:40]!r}") from exc
    for prefix in _SPKI_PREFIXES:
        if der.startswith(prefix) and len(der) == len(prefix) + 32:
            return der[len(prefix):]
    raise ConfigError("--rebuilder-key: not an Ed25519 public key (SubjectPublicKeyInfo)")


def parse_rebuilder_key(text: str) -> tuple[str, str]:
    """``URL=KEY`` (the --rebuilder-key value) → (normalised URL, 64 hex digits of the raw key).

    The split is at the first ``=`` (rebuilder URLs have no query; a base64
    key may end in ``=``). KEY is any form ``parse_pinned_key`` accepts: raw
    hex, a PEM block or file (rebuilderd's /api/v1/meta/public-keys format),
    or base64 SPKI. Raises ConfigError, so a bad key is a usage error before
    anything is fetched.
    """
    url, sep, key = text.partition("=")
    if not sep or not url.strip() or not key.strip():
        raise ConfigError(f"--rebuilder-key wants URL=KEY, got {text[:100]!r}")
    return normalise_rebuilder_url(url), parse_pinned_key(key).hex()


# --- answers -----------------------------------------------------------------------------


def _int_or_none(v: object) -> int | None:
    return v if isinstance(v, int) and not isinstance(v, bool) and 0 <= v < 2**63 else None


def _record(obj: object) -> Record | None:
    if not isinstance(obj, dict):
        return None
    name, version, status = obj.get("name"), obj.get("version"), obj.get("status")
    if status is None:
        status = "UNKWN"  # v1's status is nullable: not rebuilt yet
    if not all(isinstance(x, str) for x in (name, version, status)):
        return None
    ha = obj.get("has_attestation")
    return Record(name, version, status, _int_or_none(obj.get("build_id")), _int_or_none(obj.get("artifact_id")),
                  ha if isinstance(ha, bool) else None)


def _rows(rows: list) -> list[Record]:
    return [r for r in (_record(x) for x in rows[:MAX_RECORDS]) if r is not None]


def parse_v1(data: bytes, max_bytes: int) -> list[Record]:
    """``GET /api/v1/packages/binary`` → ``{"total": n, "records": [...]}``. Rows that are not records are skipped."""
    doc = loads_limited(data, max_bytes=max_bytes, what="rebuilder answer")
    if not isinstance(doc, dict):
        raise MalformedInputError("rebuilder answer: expected a JSON object with 'records'")
    records = doc.get("records")
    if not isinstance(records, list):
        raise MalformedInputError("rebuilder answer: 'records' is not a list")
    return _rows(records)


def parse_v0(data: bytes, max_bytes: int) -> list[Record]:
    """``GET /api/v0/pkgs/list`` → a JSON list of PkgRelease rows."""
    doc = loads_limited(data, max_bytes=max_bytes, what="rebuilder answer")
    if not isinstance(doc, list):
        raise MalformedInputError("rebuilder answer: expected a JSON list")
    return _rows(doc)


def parse_records(data: bytes, max_bytes: int) -> list[Record]:
    """Either shape (a v1 object or a v0 list): some servers and proxies mix them up."""
    doc = loads_limited(data, max_bytes=max_bytes, what="rebuilder answer")
    if isinstance(doc, list):
        return _rows(doc)
    if isinstance(doc, dict) and isinstance(doc.get("records"), list):
        return _rows(doc["records"])
    raise MalformedInputError("rebuilder answer: neither a v1 {'records': [...]} object nor a v0 list")


def match(records: list[Record], pkgname: str, version: str) -> tuple[Verdict, Record | None, str]:
    """One verdict per rebuilder, however many rows it returns.

    Only rows with exactly this name and version (``[epoch:]pkgver-pkgrel``)
    matter, as in pacman-bintrans. GOOD confirms; otherwise BAD is reported;
    FAIL (the rebuild itself failed) and UNKWN (not tried yet) are unknown.
    """
    exact = [r for r in records if r.name == pkgname and r.version == version]
    good = [r for r in exact if r.status == "GOOD"]
    if good:
        # prefer a row that can carry an attestation
        good.sort(key=lambda r: (r.build_id is None, r.artifact_id is None))
        also_bad = " (another row says BAD)" if any(r.status == "BAD" for r in exact) else ""
        return Verdict.CONFIRMED, good[0], f"reproduced {pkgname} {version} (GOOD){also_bad}"
    if any(r.status == "BAD" for r in exact):
        return Verdict.BAD, None, f"reports BAD for {pkgname} {version} (its rebuild differs)"
    if any(r.status == "FAIL" for r in exact):
        return Verdict.UNKNOWN, None, f"could not rebuild {pkgname} {version} (FAIL)"
    if exact:
        status = "".join(c for c in exact[0].status[:20] if c.isprintable())
        return Verdict.UNKNOWN, None, f"has not reproduced {pkgname} {version} yet ({status})"
    others = sorted({r.version for r in records if r.name == pkgname})
    if others:
        shown = ", ".join("".join(c for c in v[:40] if c.isprintable()) for v in others[:3])
        more = f" and {len(others) - 3} more" if len(others) > 3 else ""
        return Verdict.UNKNOWN, None, f"knows {pkgname} only in other versions ({shown}{more})"
    return Verdict.UNKNOWN, None, f"does not list {pkgname} {version}"


def decode_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo a ``Content-Encoding`` (zstd, gzip) a server used anyway, within ``max_bytes``.

    rebuilderd compresses attestations only if asked; torfetch asks for
    identity, but a proxy or another implementation may still compress.
    """
    enc = (content_encoding or "identity").strip().lower()
    try:
        if enc in ("identity", ""):
            return body
        if enc == "zstd":
            d = zstandard.ZstdDecompressor(max_window_size=1 << 23).decompressobj()
            out = bytearray()
            for i in range(0, len(body), 64):  # small slices bound each step's output
                out += d.decompress(body[i : i + 64])
                if len(out) > max_bytes:
                    break
        elif enc in ("gzip", "x-gzip"):
            z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = bytearray(z.decompress(body, max_bytes + 1))
        else:
            raise MalformedInputError(f"unsupported Content-Encoding {enc[:20]!r}")
    except (zstandard.ZstdError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise MalformedInputError(f"body is not valid {enc} ({type(exc).__name__})") from exc
    if len(out) > max_bytes:
        raise MalformedInputError(f"decoded body is over the limit of {max_bytes} bytes")
    return bytes(out)


# --- attestations (in-toto v0.9 link metablock, Ed25519) ------------------------------


def _check_cjson_value(obj: object, depth: int = 0) -> None:
    """in-toto-rs's canonical JSON has only i64/u64 numbers and valid UTF-8 strings."""
    if depth > 64:
        raise AttestationError("attestation is nested too deeply")
    if isinstance(obj, bool) or obj is None:
        return
    if isinstance(obj, int):
        if not -(2**63) <= obj < 2**64:
            raise AttestationError("attestation has an integer out of range for canonical JSON")
        return
    if isinstance(obj, float):
        raise AttestationError("attestation has a floating-point number (not canonical JSON)")
    if isinstance(obj, str):
        return
    if isinstance(obj, list):
        for v in obj:
            _check_cjson_value(v, depth + 1)
        return
    if isinstance(obj, dict):
        for v in obj.values():
            _check_cjson_value(v, depth + 1)
        return
    raise AttestationError(f"attestation has an unexpected value ({type(obj).__name__})")


def in_toto_canonical(obj: object) -> bytes:
    """in-toto-rs canonical JSON: the bytes its Metablock signs and verifies.

    Keys sorted (by code point, which is UTF-8 byte order), no whitespace,
    strings escaped as serde_json does (``"``, ``\\``, ``\\n``, ``\\t``...,
    other control characters as ``\\u00xx``; non-ASCII raw), integers only.
    Then, as in-toto-rs does on the whole text, every ``\\n`` escape is turned
    back into a real newline; without that real signatures fail.
    """
    _check_cjson_value(obj)
    text = json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False, allow_nan=False)
    try:
        return text.replace("\\n", "\n").encode("utf-8")
    except UnicodeEncodeError as exc:  # a lone surrogate from "\ud800"
        raise AttestationError("attestation has a string that is not valid Unicode") from exc


def ed25519_keyid(raw: bytes) -> str:
    """in-toto keyid: sha256 of the canonical JSON of the key (as in-toto-rs computes it)."""
    doc = {"keyid_hash_algorithms": ["sha256", "sha512"], "keytype": "ed25519",
           "keyval": {"public": raw.hex()}, "scheme": "ed25519"}
    return hashlib.sha256(in_toto_canonical(doc)).hexdigest()


@dataclass(frozen=True)
class AttestationCheck:
    keyid: str
    product_sha256: str


def verify_attestation(data: bytes, *, pinned_key: bytes, filename: str, sha256_hex: str,
                       max_bytes: int = 1024 * 1024) -> AttestationCheck:
    """Check a rebuilderd attestation against the pinned key and the downloaded file.

    (1) an in-toto Metablock ``{"signatures": [...], "signed": {...}}``;
    (2) one signature verifies under the pinned Ed25519 key over the canonical
        JSON of ``signed`` (every signature is tried: rebuilderd adds a worker
        key's, and a keyid is a hint, not a proof);
    (3) ``_type == "link"`` and ``name == "rebuild " + filename``;
    (4) ``products[filename].sha256`` is the downloaded file's sha256.
    Raises AttestationError (MalformedInputError for bytes that are not JSON).
    """
    doc = loads_limited(data, max_bytes=max_bytes, what="attestation")
    if not isinstance(doc, dict):
        raise AttestationError(f"attestation for {filename} is not an in-toto metablock")
    signed = doc.get("signed")
    sigs = doc.get("signatures")
    if not isinstance(signed, dict) or not isinstance(sigs, list) or not sigs:
        raise AttestationError(f"attestation for {filename} is not a signed in-toto metablock")
    if len(sigs) > MAX_SIGNATURES:
        raise AttestationError(f"attestation for {filename} has more than {MAX_SIGNATURES} signatures")
    if len(pinned_key) != 32:
        raise ConfigError("a pinned rebuilder key must be 32 bytes")
    keyid = ed25519_keyid(pinned_key)
    payload = in_toto_canonical(signed)
    pk = Ed25519PublicKey.from_public_bytes(pinned_key)
    # try the signature that names our key first, then every other one
    ordered = sorted((s for s in sigs if isinstance(s, dict)), key=lambda s: s.get("keyid") != keyid)
    ok = False
    for s in ordered:
        sig = s.get("sig")
        if not isinstance(sig, str) or len(sig) != 128:
            continue
        try:
            pk.verify(bytes.fromhex(sig), payload)
        except (InvalidSignature, ValueError):
            continue
        ok = True
        break
    if not ok:
        raise AttestationError(f"attestation for {filename} is not signed by the pinned key {keyid[:16]}…")
    if signed.get("_type") != "link":
        raise AttestationError(f"attestation for {filename} is not an in-toto link")
    if signed.get("name") != f"rebuild {filename}":
        shown = str(signed.get("name"))[:100]
        raise AttestationError(f"attestation is for {shown!r}, not 'rebuild {filename}'")
    products = signed.get("products")
    prod = products.get(filename) if isinstance(products, dict) else None
    digest = prod.get("sha256") if isinstance(prod, dict) else None
    if not isinstance(digest, str):
        raise AttestationError(f"attestation has no sha256 for the product {filename}")
    if digest.lower() != sha256_hex.lower():
        raise AttestationError(
            f"the rebuilt {filename} has sha256 {digest[:64]!r}, not the downloaded {sha256_hex}")
    return AttestationCheck(keyid, digest.lower())


# --- the tally ---------------------------------------------------------------------------


@dataclass
class RebuildTally:
    """N-of-M: done as soon as ``required`` confirmed; hopeless as soon as too few can still confirm.

    Each rebuilder is counted once: a second answer for the same rebuilder
    replaces the first.
    """

    required: int
    n_rebuilders: int
    answers: dict[str, Answer] = field(default_factory=dict)

    @property
    def total(self) -> int:
        return self.n_rebuilders

    def add(self, answer: Answer) -> None:
        self.answers[answer.rebuilder] = answer

    @property
    def confirmed(self) -> int:
        return sum(1 for a in self.answers.values() if a.verdict is Verdict.CONFIRMED)

    @property
    def bad(self) -> list[Answer]:
        return [a for a in self.answers.values() if a.verdict is Verdict.BAD]

    @property
    def pending(self) -> int:
        return max(self.n_rebuilders - len(self.answers), 0)

    def reached(self) -> bool:
        return self.confirmed >= self.required

    def hopeless(self) -> bool:
        return self.confirmed + self.pending < self.required

    def summary(self, subject: str) -> str:
        parts = [f"{a.rebuilder}: {a.detail}" for a in self.answers.values()]
        return (f"only {self.confirmed} of {self.n_rebuilders} rebuilders confirmed {subject} "
                f"(need {self.required}): " + "; ".join(parts))
