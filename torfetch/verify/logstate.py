"""What the log showed this user before, and whether today's view is consistent (pure).

A sans-I/O decision, like python-tuf's trusted metadata set: given the tree
head remembered for (log key, tree) and a newly verified checkpoint, say what
must be proven; then, given a consistency proof, say what to remember. A log
that shows one user a history that does not extend (or is not extended by)
what it showed before has presented a split view: a hard failure, with both
tree heads, never silently reset.
"""

from __future__ import annotations

from dataclasses import dataclass

from ..errors import SplitViewError
from . import merkle

REPORT_HINT = (
    "the log presented two histories that cannot both be true. Keep both tree heads above and report them to the "
    "log operator and the repository operator; do not install packages from this run"
)


@dataclass(frozen=True)
class TreeHead:
    size: int
    root_hash: bytes

    def describe(self) -> str:
        return f"size {self.size} root {self.root_hash.hex()}"


@dataclass(frozen=True)
class ConsistencyNeeded:
    """Fetch GET /api/v1/log/proof?firstSize=old.size&lastSize=new.size and call ``apply``."""

    old: TreeHead
    new: TreeHead


def check_against_remembered(remembered: TreeHead | None, seen: TreeHead, *, log: str) -> ConsistencyNeeded | TreeHead:
    """Either the head to remember now, or the consistency proof still needed."""
    if remembered is None:
        return seen  # trust on first use; later runs are held to it
    if seen.size == remembered.size:
        if seen.root_hash != remembered.root_hash:
            raise SplitViewError(
                f"log {log} presented an inconsistent history: tree of {seen.size} entries with root "
                f"{seen.root_hash.hex()}, but earlier the same size had root {remembered.root_hash.hex()}",
                hint=REPORT_HINT,
            )
        return remembered
    if seen.size > remembered.size:
        return ConsistencyNeeded(old=remembered, new=seen)
    return ConsistencyNeeded(old=seen, new=remembered)


def apply_consistency(needed: ConsistencyNeeded, proof: list[bytes], *, log: str) -> TreeHead:
    """Verify the proof between the two heads; return the larger to remember."""
    try:
        merkle.verify_consistency(needed.old.size, needed.new.size, needed.old.root_hash, needed.new.root_hash, proof)
    except Exception as exc:
        from ..errors import TorfetchError

        if not isinstance(exc, TorfetchError):
            raise
        raise SplitViewError(
            f"log {log} presented an inconsistent history: tree head ({needed.old.describe()}) is not a prefix of "
            f"({needed.new.describe()}): {exc.message if hasattr(exc, 'message') else exc}",
            hint=REPORT_HINT,
        ) from exc
    return needed.new
