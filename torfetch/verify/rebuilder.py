"""Reproducible-build confirmations from rebuilderd: answers, matching, the tally (pure).

pacman-bintrans counts a rebuilder once if it lists the package's exact name
and version as GOOD. torfetch does the same for unpinned rebuilders; for a
rebuilder whose key the user pinned (``--rebuilder-key URL=KEY``) a confirm
counts only with an in-toto link attestation, signed by that key, whose
product is exactly the downloaded file (``torfetch.verify.intoto``).

Nothing here does I/O; ``torfetch.net.rebuilders`` asks the rebuilders and
hands the bytes in. Every malformed answer is a TorfetchError (never a raw
ValueError/KeyError); facts about the formats are in
``shared/notes/rebuilderd.md``.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from ..errors import MalformedInputError
from .jsondoc import loads_limited

MAX_RECORDS = 100_000


class Verdict(Enum):
    CONFIRMED = "confirmed"
    BAD = "BAD"
    UNKNOWN = "unknown"  # not listed, UNKWN, FAIL, other version, ...
    FAILED = "failed"  # timeout, malformed answer, bad or missing attestation


@dataclass(frozen=True)
class RebuilderSpec:
    url: str
    pinned_key: str | bytes | None = None  # key text (verify.pinned_key: hex, PEM, base64), or 32 raw bytes

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
