"""What the log showed this machine before, and whether today's view is consistent with it (pure).

A sans-I/O trust state, like python-tuf's trusted metadata set. Per log key
this machine remembers the pinned origin name and every tree (Rekor shard) it
has seen: its largest head, and whether the log froze it (with its final
head). ``HistoryCheck`` takes that and a newly verified checkpoint and answers
with typed steps: ``NeedLogInfo`` (the entry is in a tree never seen before:
fetch ``GET /api/v1/log``), ``NeedConsistency`` (fetch a consistency proof in
one tree), and finally ``Trusted`` (the state to remember). The I/O layer only
fetches what is asked and hands the parsed answers back.

The rules: the checkpoint's origin name must be the pinned one; a tree never
seen before is accepted only if the log's current info announces it and lists
every remembered tree consistently with what this machine saw (a tree the log
froze is then frozen here at its final head); an entry claimed in a frozen
tree beyond its final size is refused. The very first view of a log is trust
on first use. A view that contradicts what was seen is a split view: a hard
failure printing both tree heads, never silently reset.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import CheckpointError, SplitViewError, TorfetchError
from . import merkle
from .checkpoint import safe_text

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
class TreeRecord:
    """One remembered tree: its largest head seen, or its final head once the log froze it."""

    head: TreeHead
    frozen: bool = False

    def describe(self, tree: int) -> str:
        return f"tree {tree} {'frozen at' if self.frozen else 'at'} {self.head.describe()}"


@dataclass(frozen=True)
class LogState:
    """What this machine remembers for one log key (treat ``trees`` as read-only)."""

    origin_name: str | None = None
    trees: dict[int, TreeRecord] = field(default_factory=dict)

    def describe(self) -> str:
        return "; ".join(r.describe(t) for t, r in sorted(self.trees.items())) or "nothing"


@dataclass(frozen=True)
class SeenTree:
    """A verified checkpoint: its tree (equal to the entry UUID's prefix), origin name and head."""

    tree: int
    origin_name: str
    head: TreeHead


@dataclass(frozen=True)
class ShardHead:
    """One tree as ``GET /api/v1/log`` lists it, its signed tree head already verified by the pinned key."""

    tree: int
    origin_name: str
    head: TreeHead


@dataclass(frozen=True)
class LogInfo:
    active: ShardHead
    inactive: tuple[ShardHead, ...] = ()


# -- the steps ------------------------------------------------------------------


@dataclass(frozen=True)
class NeedLogInfo:
    """Fetch ``GET /api/v1/log``, parse it with the pinned key, and call ``HistoryCheck.give_log_info``."""

    tree: int


@dataclass(frozen=True)
class NeedConsistency:
    """Fetch ``/api/v1/log/proof?firstSize=old.size&lastSize=new.size&treeID=tree``, call ``give_consistency``."""

    tree: int
    old: TreeHead
    new: TreeHead


@dataclass(frozen=True)
class Trusted:
    """Every check passed: remember ``state``. ``notes`` say what happened, for -v."""

    state: LogState
    notes: tuple[str, ...]


Step = NeedLogInfo | NeedConsistency | Trusted


def _split_view(log: str, message: str) -> SplitViewError:
    return SplitViewError(f"log {log} presented an inconsistent history: {message}", hint=REPORT_HINT)


class HistoryCheck:
    """Hold one verified checkpoint against what this machine remembers for the log key.

    Call ``next_step()`` until it returns ``Trusted``; every other step names
    what to fetch. Any contradiction raises ``SplitViewError`` (or
    ``CheckpointError`` for an origin that is not the pinned one).
    """

    def __init__(self, remembered: LogState, seen: SeenTree, *, pinned_name: str | None, log: str) -> None:
        self._remembered = remembered
        self._seen = seen
        self._log = log
        self._trees: dict[int, TreeRecord] = dict(remembered.trees)
        self._pending: list[NeedConsistency] = []
        self._notes: list[str] = []
        self._need_info = False
        self._name = pinned_name or remembered.origin_name or seen.origin_name
        self._check_name(seen.origin_name, f"checkpoint of tree {seen.tree}")
        if not remembered.trees:
            # trust on first use; later runs are held to it
            self._trees[seen.tree] = TreeRecord(seen.head)
            self._notes.append(f"first view of log {self._name!r}: remembering tree {seen.tree} at {seen.head.describe()}")
        elif seen.tree in remembered.trees:
            self._reconcile_seen()
        else:
            self._need_info = True

    # -- the protocol ------------------------------------------------------------

    def next_step(self) -> Step:
        if self._need_info:
            return NeedLogInfo(self._seen.tree)
        if self._pending:
            return self._pending[0]
        return Trusted(LogState(self._name, dict(self._trees)), tuple(self._notes))

    def give_log_info(self, info: LogInfo) -> None:
        if not self._need_info:
            raise ValueError("no log info was asked for")
        self._need_info = False
        shards = {s.tree: (s, s is info.active) for s in (info.active, *info.inactive)}
        for s, _ in shards.values():
            self._check_name(s.origin_name, f"log info's tree {s.tree}")
        seen = self._seen
        if seen.tree not in shards:
            raise _split_view(
                self._log,
                f"the entry is in tree {seen.tree} ({seen.head.describe()}), which this machine never saw and the "
                f"log does not announce ({self._announced(info)}); this machine remembers "
                f"{self._remembered.describe()}",
            )
        if not shards[seen.tree][1]:
            # Only the active tree may be new to this machine (issue 13): a never-seen tree that the log calls
            # inactive cannot be told from a fork shown to this user alone, and nothing later would catch it.
            raise _split_view(
                self._log,
                f"the entry is in tree {seen.tree} ({seen.head.describe()}), which this machine never saw and which "
                f"is not the log's active tree ({self._announced(info)}); this machine remembers "
                f"{self._remembered.describe()}",
            )
        for tree, rec in sorted(self._remembered.trees.items()):
            if tree not in shards:
                raise _split_view(
                    self._log,
                    f"the entry is in new tree {seen.tree} ({seen.head.describe()}), but the log no longer lists "
                    f"{rec.describe(tree)} that this machine saw ({self._announced(info)})",
                )
            shard, active = shards[tree]
            self._reconcile(tree, rec, shard.head, frozen=not active, source="the log info")
        shard, active = shards[seen.tree]
        self._trees[seen.tree] = TreeRecord(shard.head, frozen=not active)
        self._notes.append(f"new log tree {seen.tree} announced by the log ({self._announced(info)}), "
                           f"consistent with {self._remembered.describe()}")
        self._reconcile_seen()

    def give_consistency(self, step: NeedConsistency, proof: list[bytes]) -> None:
        if not self._pending or self._pending[0] != step:
            raise ValueError("that consistency proof was not asked for")
        try:
            merkle.verify_consistency(step.old.size, step.new.size, step.old.root_hash, step.new.root_hash, proof)
        except TorfetchError as exc:
            raise _split_view(
                self._log,
                f"in tree {step.tree}, ({step.old.describe()}) is not a prefix of ({step.new.describe()}): {exc.message}",
            ) from exc
        self._pending.pop(0)
        self._notes.append(f"log tree {step.tree} consistent: {step.old.describe()} is a prefix of {step.new.describe()}")

    # -- the rules -----------------------------------------------------------------

    def _check_name(self, name: str, what: str) -> None:
        if name != self._name:
            raise CheckpointError(
                f"{what} names the log {safe_text(name)}, but this log key is pinned to {safe_text(self._name or '')}",
                hint="the origin name is pinned per log key (rekor.sigstore.dev for the public-good key, --log-origin, "
                "or the first name this machine saw); it never follows --log-url",
            )

    @staticmethod
    def _announced(info: LogInfo) -> str:
        inactive = ", ".join(str(s.tree) for s in info.inactive) or "none"
        return f"active tree {info.active.tree} at {info.active.head.describe()}, inactive trees: {inactive}"

    def _reconcile_seen(self) -> None:
        self._reconcile(self._seen.tree, self._trees[self._seen.tree], self._seen.head, frozen=None,
                        source="the entry's checkpoint")

    def _reconcile(self, tree: int, rec: TreeRecord, other: TreeHead, *, frozen: bool | None, source: str) -> None:
        """Hold ``other`` (a head of ``tree`` shown now) against ``rec``; queue the proof and set what to remember.

        ``frozen``: True when the log now says the tree is frozen at ``other``
        (its final head), False when it says the tree is active, None for a
        checkpoint that says neither.
        """
        mine = rec.head
        if rec.frozen:
            if frozen is False:
                raise _split_view(self._log, f"{source} names tree {tree} active, but it was {rec.describe(tree)}")
            if other.size > mine.size:
                raise _split_view(self._log, f"{source} shows tree {tree} at {other.describe()}, beyond the final "
                                             f"head it was frozen at ({mine.describe()})")
            if frozen and other != mine:
                raise _split_view(self._log, f"{source} says tree {tree} is frozen at {other.describe()}, but it was "
                                             f"{rec.describe(tree)}")
        if frozen and other.size < mine.size:
            raise _split_view(self._log, f"{source} says tree {tree} froze at {other.describe()}, smaller than "
                                         f"{mine.describe()} that this machine saw")
        if other.size == mine.size:
            if other.root_hash != mine.root_hash:
                raise _split_view(self._log, f"tree {tree} of {other.size} entries has root {other.root_hash.hex()} in "
                                             f"{source}, but earlier the same size had root {mine.root_hash.hex()}")
        elif other.size > mine.size:
            self._queue(NeedConsistency(tree, mine, other))
        else:
            self._queue(NeedConsistency(tree, other, mine))
        larger = other if other.size > mine.size else mine
        self._trees[tree] = TreeRecord(larger, frozen=rec.frozen or bool(frozen))

    def _queue(self, step: NeedConsistency) -> None:
        if step.old.size == 0:
            return  # the empty tree is a prefix of every tree
        if step not in self._pending:
            self._pending.append(step)
