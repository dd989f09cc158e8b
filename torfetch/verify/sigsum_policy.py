"""The Sigsum policy file (sigsum-go doc/policy.md): which logs, which witnesses, which quorum (pure).

    log <hex pubkey> [url]
    witness <name> <hex pubkey> [url]
    group <name> all|any|<k> <member>...
    quorum <name>|none

Lines are split on spaces and tabs; ``#`` starts a comment line. A group may
name only witnesses and groups defined above it, each name at most once
in all groups (so a witness counts once toward the quorum); ``none`` is the
predefined empty group. Exactly one quorum line. Duplicate keys or names are
refused, as sigsum-go refuses them; so is a witness with a log's key (sigsum-go
accepts it, but then the log's operator alone meets the quorum). Names are opaque octets (kept as str
with surrogateescape, so two byte strings never collide).
"""

from __future__ import annotations

from dataclasses import dataclass, field

from ..errors import SigsumPolicyError
from .sigsum_key import key_hash

MAX_POLICY_BYTES = 64 * 1024
MAX_ENTRIES = 256  # logs, witnesses and groups each; sigsum-go recommends supporting at least 32
MAX_URL = 2048
NONE = "none"


@dataclass(frozen=True)
class PolicyLog:
    pubkey: bytes
    keyhash: bytes
    url: str | None = None


@dataclass(frozen=True)
class PolicyWitness:
    name: str
    pubkey: bytes
    keyhash: bytes
    url: str | None = None


@dataclass(frozen=True)
class QuorumWitness:
    """A leaf of the quorum tree: satisfied when this witness cosigned."""

    keyhash: bytes


@dataclass(frozen=True)
class QuorumGroup:
    """Satisfied when at least ``threshold`` members are (``none`` is the group with threshold 0)."""

    name: str
    threshold: int
    members: tuple[QuorumWitness | QuorumGroup, ...]


QuorumNode = QuorumWitness | QuorumGroup


def _met(node: QuorumNode, cosigned: set[bytes] | frozenset[bytes]) -> bool:
    if isinstance(node, QuorumWitness):
        return node.keyhash in cosigned
    return sum(1 for m in node.members if _met(m, cosigned)) >= node.threshold


def _min_needed(node: QuorumNode) -> int:
    """Fewest witness cosignatures that can satisfy ``node`` (for "N of M required" messages)."""
    if isinstance(node, QuorumWitness):
        return 1
    costs = sorted(_min_needed(m) for m in node.members)
    return sum(costs[: node.threshold])


@dataclass(frozen=True, eq=False)
class Policy:
    logs: dict[bytes, PolicyLog]  # by keyhash
    witnesses: dict[bytes, PolicyWitness]  # by keyhash
    quorum: QuorumNode
    quorum_name: str = NONE
    names: dict[str, QuorumNode] = field(default_factory=dict)

    def quorum_met(self, witness_keyhashes: set[bytes] | frozenset[bytes]) -> bool:
        """Do cosignatures by these witnesses satisfy the quorum? (Keyhashes not in the policy count for nothing.)"""
        known = {kh for kh in witness_keyhashes if kh in self.witnesses}
        return _met(self.quorum, known)

    def required_cosignatures(self) -> int:
        """The smallest number of policy witnesses whose cosignatures can meet the quorum."""
        return _min_needed(self.quorum)


def _err(lineno: int, why: str) -> SigsumPolicyError:
    return SigsumPolicyError(f"policy line {lineno}: {why}")


def _show(name: str) -> str:
    return repr(name.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")[:64])


def _pubkey(lineno: int, text: str) -> bytes:
    if len(text) != 64 or any(c not in "0123456789abcdefABCDEF" for c in text):
        raise _err(lineno, f"public key {text[:70]!r} is not 64 hex digits")
    return bytes.fromhex(text)


def _url(lineno: int, text: str) -> str:
    if len(text) > MAX_URL:
        raise _err(lineno, f"URL longer than {MAX_URL} characters")
    return text


def _threshold(lineno: int, text: str, n: int) -> int:
    if text == "any":
        return 1
    if text == "all":
        return n
    if not text.isascii() or not text.isdigit() or len(text) > 6:
        raise _err(lineno, f"group threshold {_show(text)} is not all, any or a number")
    k = int(text)
    if k < 1 or k > n:
        raise _err(lineno, f"group threshold {k} is outside 1..{n} (the number of members)")
    return k


@dataclass
class _Builder:
    logs: dict[bytes, PolicyLog] = field(default_factory=dict)
    witnesses: dict[bytes, PolicyWitness] = field(default_factory=dict)
    names: dict[str, QuorumNode] = field(default_factory=lambda: {NONE: QuorumGroup(NONE, 0, ())})
    used: dict[str, str] = field(default_factory=lambda: {NONE: ""})  # member name → the group using it
    quorum: QuorumNode | None = None
    quorum_name: str = NONE
    groups: int = 0

    def line(self, lineno: int, fields: list[str]) -> None:
        keyword, args = fields[0], fields[1:]
        if keyword == "log":
            self.log(lineno, args)
        elif keyword == "witness":
            self.witness(lineno, args)
        elif keyword == "group":
            self.group(lineno, args)
        elif keyword == "quorum":
            self.set_quorum(lineno, args)
        else:
            raise _err(lineno, f"unknown keyword {_show(keyword)} (expected log, witness, group or quorum)")

    def log(self, lineno: int, args: list[str]) -> None:
        if not 1 <= len(args) <= 2:
            raise _err(lineno, "a log line is: log <hex public key> [url]")
        pub = _pubkey(lineno, args[0])
        kh = key_hash(pub)
        if kh in self.logs:
            raise _err(lineno, f"duplicate log {pub.hex()}")
        if kh in self.witnesses:
            raise _err(lineno, f"log {pub.hex()} has the key of a witness: a log cannot witness itself")
        if len(self.logs) >= MAX_ENTRIES:
            raise _err(lineno, f"more than {MAX_ENTRIES} logs")
        self.logs[kh] = PolicyLog(pub, kh, _url(lineno, args[1]) if len(args) > 1 else None)

    def witness(self, lineno: int, args: list[str]) -> None:
        if not 2 <= len(args) <= 3:
            raise _err(lineno, "a witness line is: witness <name> <hex public key> [url]")
        name = args[0]
        if name in self.names:
            raise _err(lineno, f"duplicate name {_show(name)}")
        pub = _pubkey(lineno, args[1])
        kh = key_hash(pub)
        if kh in self.witnesses:
            raise _err(lineno, f"duplicate witness key {pub.hex()}")
        if kh in self.logs:
            # its operator alone would meet the quorum: no independent check of the log
            raise _err(lineno, f"witness {_show(name)} has the key of a log: a log cannot witness itself")
        if len(self.witnesses) >= MAX_ENTRIES:
            raise _err(lineno, f"more than {MAX_ENTRIES} witnesses")
        self.witnesses[kh] = PolicyWitness(name, pub, kh, _url(lineno, args[2]) if len(args) > 2 else None)
        self.names[name] = QuorumWitness(kh)

    def group(self, lineno: int, args: list[str]) -> None:
        if len(args) < 3:
            raise _err(lineno, "a group line is: group <name> all|any|<k> <member>...")
        name, members = args[0], args[2:]
        if name in self.names:
            raise _err(lineno, f"duplicate name {_show(name)}")
        if self.groups >= MAX_ENTRIES:
            raise _err(lineno, f"more than {MAX_ENTRIES} groups")
        k = _threshold(lineno, args[1], len(members))
        nodes: list[QuorumNode] = []
        for m in members:
            if m in self.used:
                other = self.used[m]
                if not other:
                    raise _err(lineno, f"{_show(m)} cannot be a group member")
                raise _err(lineno, f"{_show(m)} is already a member of group {_show(other)}")
            if m not in self.names:
                raise _err(lineno, f"group {_show(name)} names {_show(m)}, which is not defined above")
            self.used[m] = name
            nodes.append(self.names[m])
        self.names[name] = QuorumGroup(name, k, tuple(nodes))
        self.groups += 1

    def set_quorum(self, lineno: int, args: list[str]) -> None:
        if len(args) != 1:
            raise _err(lineno, "a quorum line is: quorum <witness or group name>|none")
        if self.quorum is not None:
            raise _err(lineno, "a second quorum line")
        if args[0] not in self.names:
            raise _err(lineno, f"quorum {_show(args[0])} is not a witness or group defined above")
        self.quorum = self.names[args[0]]
        self.quorum_name = args[0]


def _check_chars(lineno: int, line: bytes) -> None:
    # doc/policy.md: tab, newline, 0x20-0x7e and 0x80-0xff only
    for b in line:
        if b < 0x20 and b != 0x09 or b == 0x7F:
            raise _err(lineno, f"control character 0x{b:02x}")


def parse_policy(data: bytes) -> Policy:
    """A policy file's bytes → Policy. Raises SigsumPolicyError (a ConfigError: exit 2)."""
    if not isinstance(data, bytes):
        raise SigsumPolicyError("policy must be bytes")
    if len(data) > MAX_POLICY_BYTES:
        raise SigsumPolicyError(f"policy is larger than {MAX_POLICY_BYTES} bytes")
    lines = data.split(b"\n")
    if lines and lines[-1] == b"":
        lines.pop()  # the final newline ends the last line, it does not start another
    b = _Builder()
    for lineno, raw in enumerate(lines, 1):
        if raw.endswith(b"\r"):
            raw = raw[:-1]  # as Go's bufio.ScanLines: a CRLF file reads the same
        _check_chars(lineno, raw)
        fields = raw.decode("utf-8", "surrogateescape").replace("\t", " ").split(" ")
        fields = [f for f in fields if f]
        if not fields or fields[0].startswith("#"):
            continue
        b.line(lineno, fields)
    if b.quorum is None:
        raise SigsumPolicyError("policy has no quorum line (write 'quorum none' to require no witnesses)")
    if not b.logs:
        raise SigsumPolicyError("policy names no log: no proof could verify")
    return Policy(logs=b.logs, witnesses=b.witnesses, quorum=b.quorum, quorum_name=b.quorum_name, names=b.names)
