"""``torfetch monitor --sigsum-policy FILE --sigsum-key KEY --repo-db ...``: every leaf of the log, checked.

Unlike Rekor's index search, a Sigsum log hands out all its leaves, and each names its submitter's keyhash, so
the monitor sees every leaf signed with the operator's key. Per log of the policy (with a URL):
(1) ``get-tree-head``, verified against the policy (log signature, witness quorum); (2) against the head
remembered from the last run: a smaller tree or the same size with another root is a split view, a larger one
must be proven consistent (``get-consistency-proof``, RFC 9162); (3) ``get-leaves`` from where the last run
stopped, in batches of at most ``BATCH``, each appended to the remembered Merkle frontier
(``verify.log_frontier``) and committed with the operator's leaves it holds, so an interrupted run resumes;
(4) when the frontier reaches the head's size its root must be the head's root — the leaves really are the
tree the log and witnesses signed — and only then is that head remembered; (5) the operator's leaves: the
signature must verify, and a checksum that is sha256(sha256(p)) of no package p in the dbs is an alert,
re-reported every run until a db holds the package.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ..config import Timeouts
from ..errors import ConsistencyProofError, SigsumSplitViewError, TorfetchError, TransparencyLogError
from ..net.http import Network
from ..net.sigsum_log import SigsumLogClient
from ..report import Reporter
from ..store.monitorstate import MonitorStore, SigsumLeafRow
from ..store.signatures import DB_FILE as SIGNER_DB, SignatureStore
from ..verify import merkle
from ..verify.log_frontier import ALERT, BAD_SIGNATURE, FOREIGN, OK, Frontier, classify_leaf
from ..verify.minisign import sanitise
from ..verify.sigsum import ed25519_ok, leaf_signed_data, sigsum_leaf_hash, verify_tree_head
from ..verify.sigsum_key import key_hash
from ..verify.sigsum_policy import Policy
from ..verify.sigsum_proof import SigsumLeaf
from .sigsum_common import load_policy, load_public_key, logs_with_url

BATCH = 512  # leaves per get-leaves request (sigsum-log-go's default --max-range)
# get-leaves requests per log and run: witnesses cosign a size, not the leaves, so a hostile log can claim 2**62
# leaves and answer each request with one; the run stops there (progress kept), reported, and the next resumes
MAX_REQUESTS = 4096


@dataclass(frozen=True)
class SigsumMonitorConfig:
    policy_path: Path
    submitter_key: str  # --sigsum-key: an ssh-ed25519 line, 64 hex digits or a file
    batch: int = BATCH
    max_requests: int = MAX_REQUESTS
    signer_state: Path | None = None  # --signer-state: the signer's records name alerts (default: --state-dir)


UNKNOWN = "filename unknown (a Sigsum leaf names no file, and the signer has no record of it)"


def signer_names(signer: SignatureStore | None, checksums: set[str]) -> dict[str, str]:
    """Leaf checksum (hex) → what the signer recorded for it, for the given checksums (a package released and
    later removed from the db, told apart from a leaf nobody here made). Blocking: run in a thread."""
    out: dict[str, str] = {}
    if signer is None or not checksums:
        return out
    for rec in signer.sigsum_all():
        try:
            checksum = hashlib.sha256(bytes.fromhex(rec.sha256)).hexdigest()  # what the signer submitted for it
        except ValueError:
            continue
        if checksum in checksums and checksum not in out:
            out[checksum] = (f"the signer recorded it as {sanitise(rec.filename)} "
                             f"(sha256 {sanitise(rec.sha256, 64)}), not in any given db")
    return out


@dataclass(frozen=True)
class SigsumAlert:
    log_url: str
    log_keyhash: str
    leaf_index: int
    checksum: str
    known: str = UNKNOWN  # what the signer's records say of it

    def line(self) -> str:
        return (f"torfetch monitor: ALERT: Sigsum log {self.log_url} leaf index {self.leaf_index}, checksum "
                f"{self.checksum}: signed with the operator's Sigsum key but sha256(sha256(package)) of no package "
                f"in the given repository dbs; {self.known}")

    def as_dict(self) -> dict[str, object]:
        return {"log": "sigsum", "log_url": self.log_url, "log_keyhash": self.log_keyhash,
                "log_index": self.leaf_index, "checksum": self.checksum, "known": self.known}


@dataclass
class SigsumMonitorResult:
    alerts: list[SigsumAlert] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    leaves_read: int = 0
    operator_leaves: int = 0  # of those read now
    foreign_leaves: int = 0  # of those read now
    tree_sizes: dict[str, int] = field(default_factory=dict)  # log URL -> verified size
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict[str, object]:
        return {"alerts": [a.as_dict() for a in self.alerts], "problems": self.problems,
                "leaves_read": self.leaves_read, "operator_leaves_read": self.operator_leaves,
                "foreign_leaves_read": self.foreign_leaves, "tree_sizes": self.tree_sizes,
                "operator_leaves_by_status": self.counts}


async def run_sigsum_monitor(net: Network, cfg: SigsumMonitorConfig, expected: set[bytes], store: MonitorStore,
                             timeouts: Timeouts, report: Reporter,
                             signer: SignatureStore | None = None) -> SigsumMonitorResult:
    """``expected``: the checksums (sha256 of each package's raw sha256) of every package in the dbs."""
    policy = load_policy(cfg.policy_path)
    pub = load_public_key(cfg.submitter_key)
    result = SigsumMonitorResult()
    urls: dict[str, str] = {}
    for log_kh, url in logs_with_url(policy, cfg.policy_path):
        urls[log_kh.hex()] = url
        client = SigsumLogClient.create(net, url, timeouts.lookup_total)
        try:
            await _one_log(client, cfg, policy, log_kh, pub, expected, store, result, report)
        except TorfetchError as exc:
            # the message, not one_line(): the PROBLEM line already carries the program's prefix
            result.problems.append(exc.message if exc.message.startswith(f"Sigsum log {url}")
                                   else f"Sigsum log {url}: {exc.message}")
    for log_kh, log in policy.logs.items():
        if not log.url:  # clients accept its proofs all the same: unwatched is not clean
            result.problems.append(f"Sigsum log {log_kh.hex()} of the policy has no URL: proofs from it verify, "
                                   "but this monitor cannot read its leaves (give its log line a URL)")
    # every standing alert, against today's dbs
    standing = []
    for row in list(store.sigsum_leaves(ALERT)):
        if bytes.fromhex(row.checksum) in expected:
            store.sigsum_set_status(row.log_keyhash, row.leaf_index, OK)
            continue
        standing.append(row)
    names = await trio.to_thread.run_sync(signer_names, signer, {r.checksum for r in standing})
    for row in standing:
        result.alerts.append(SigsumAlert(urls.get(row.log_keyhash, f"(log {row.log_keyhash[:16]}…)"),
                                         row.log_keyhash, row.leaf_index, row.checksum,
                                         names.get(row.checksum, UNKNOWN)))
    for row in store.sigsum_leaves(BAD_SIGNATURE):
        result.problems.append(f"Sigsum log {urls.get(row.log_keyhash, row.log_keyhash)}: leaf {row.leaf_index} "
                               f"names the operator's key but its signature does not verify (a log must refuse it)")
    result.counts = store.sigsum_counts()
    result.alerts.sort(key=lambda a: (a.log_url, a.leaf_index))
    return result


async def _one_log(client: SigsumLogClient, cfg: SigsumMonitorConfig, policy: Policy, log_kh: bytes, pub: bytes,
                   expected: set[bytes], store: MonitorStore, result: SigsumMonitorResult, report: Reporter) -> None:
    kh = log_kh.hex()
    url = client.url
    # (1) the log's head, against the policy
    cth = await client.tree_head()
    head = verify_tree_head(policy, log_kh, cth, what=f"tree head of Sigsum log {url}")
    report.passed(f"Sigsum log {url}: tree head of size {head.size} verified, "
                  f"{len(head.witnesses)} witness cosignature(s) meeting the policy")
    # (2) against what this monitor remembered
    row = await trio.to_thread.run_sync(store.sigsum_log, kh)
    old = Frontier.from_bytes(row.head_size, row.head_nodes) if row else Frontier()
    old_root = row.head_root if row and row.head_size else old.root()
    if head.size < old.size:
        raise SigsumSplitViewError(f"Sigsum log {url}: split view: its tree head has {head.size} leaves, but this "
                                   f"monitor verified {old.size} before: the log went back in time")
    if head.size == old.size:
        if head.root_hash != old_root:
            raise SigsumSplitViewError(f"Sigsum log {url}: split view: a tree head of size {head.size} with another "
                                       "root than the one verified before: the log forked its history")
    elif old.size > 0:
        proof = await client.consistency_proof(old.size, head.size)
        try:
            merkle.verify_consistency(old.size, head.size, old_root, head.root_hash, proof)
        except ConsistencyProofError as exc:
            raise SigsumSplitViewError(f"Sigsum log {url}: split view: the tree of {head.size} leaves is not an "
                                       f"extension of the {old.size} verified before ({exc.message})") from exc
        report.passed(f"Sigsum log {url}: consistent from size {old.size} to {head.size}")
    # (3) leaves from where the last run stopped (a run cut short resumes at pos; beyond the head: read again)
    pos = Frontier.from_bytes(row.pos_size, row.pos_nodes) if row else Frontier()
    if pos.size > head.size or pos.size < old.size:
        pos = old
    submitter = key_hash(pub)
    saved = False
    for _ in range(min(head.size - pos.size + 1, cfg.max_requests)):  # every batch returns at least one leaf
        if pos.size >= head.size:
            break
        leaves = await client.leaves(pos.size, min(head.size, pos.size + cfg.batch))
        mine, foreign = _classify(leaves, pos.size, kh, submitter, pub, expected)
        pos = pos.extend([sigsum_leaf_hash(lf) for lf in leaves])
        done = None
        if pos.size == head.size:
            await _check_root(store, kh, url, pos, head.size, head.root_hash)
            done = (head.size, head.root_hash, pos.to_bytes())
            saved = True
        frontier = pos
        await trio.to_thread.run_sync(lambda: store.sigsum_progress(kh, url, frontier.size, frontier.to_bytes(),
                                                                    foreign, mine, head=done))
        result.leaves_read += len(leaves)
        result.operator_leaves += len(mine)
        result.foreign_leaves += foreign
        report.detail(f"Sigsum log {url}: read leaves up to {pos.size} of {head.size}")
    if pos.size < head.size:
        raise TransparencyLogError(f"Sigsum log {url}: read leaves up to {pos.size} of the {head.size} its tree "
                                   f"head claims in {cfg.max_requests} get-leaves requests; the next run goes on "
                                   "from there", hint="a log that answers a few leaves at a time is slow or hostile")
    if not saved:  # nothing left to read (a run cut short read them all, or no new leaves): still the root check
        await _check_root(store, kh, url, pos, head.size, head.root_hash)
        frontier = pos
        await trio.to_thread.run_sync(lambda: store.sigsum_progress(
            kh, url, frontier.size, frontier.to_bytes(), 0, [], head=(head.size, head.root_hash, frontier.to_bytes())))
    result.tree_sizes[url] = head.size


async def _check_root(store: MonitorStore, kh: str, url: str, pos: Frontier, size: int, root: bytes) -> None:
    """(4) the leaves make the root the log and its witnesses signed: only then is the head remembered."""
    if pos.size != size or pos.root() != root:
        await trio.to_thread.run_sync(store.sigsum_rewind, kh)
        raise TransparencyLogError(f"Sigsum log {url}: the {size} leaves get-leaves returned do not hash to the "
                                   "root of its cosigned tree head")


def _classify(leaves: list[SigsumLeaf], start: int, kh: str, submitter: bytes, pub: bytes,
              expected: set[bytes]) -> tuple[list[SigsumLeafRow], int]:
    mine: list[SigsumLeafRow] = []
    foreign = 0
    for i, lf in enumerate(leaves):
        ok = lf.keyhash == submitter and ed25519_ok(pub, leaf_signed_data(lf.checksum), lf.signature)
        status = classify_leaf(lf.checksum, lf.signature, lf.keyhash, submitter_keyhash=submitter, signature_ok=ok,
                               expected=expected)
        if status == FOREIGN:
            foreign += 1
        else:
            mine.append(SigsumLeafRow(kh, start + i, lf.checksum.hex(), status))
    return mine, foreign


__all__ = ["SigsumMonitorConfig", "SigsumMonitorResult", "SigsumAlert", "run_sigsum_monitor", "OK", "ALERT"]


async def monitor_sigsum(cfg: SigsumMonitorConfig, *, repo_dbs: tuple[str, ...], state_dir: Path | None,
                         proxy: str | None, timeouts: Timeouts, report: Reporter) -> SigsumMonitorResult:
    """The whole Sigsum monitor run: the dbs' checksums, then every log of the policy."""
    from ..errors import ConfigError
    from ..store.statedir import default_operator_state_dir
    from ..verify.log_frontier import expected_checksum
    from .repodb_fetch import read_repodb

    if not repo_dbs:
        raise ConfigError("give at least one --repo-db: the packages the operator released")
    load_policy(cfg.policy_path)  # usage errors before anything is read
    load_public_key(cfg.submitter_key)
    expected: set[bytes] = set()
    state_dir = state_dir or default_operator_state_dir()
    store = MonitorStore(state_dir)
    signer_dir = cfg.signer_state or state_dir
    signer = SignatureStore(signer_dir, readonly=True) if (signer_dir / SIGNER_DB).exists() else None
    try:
        async with Network(proxy=proxy, timeouts=timeouts) as net:
            n = 0
            for db in repo_dbs:
                n += await read_repodb(net, db, lambda p: expected.add(expected_checksum(p.sha256)),
                                       timeouts=timeouts)
            report.passed(f"Sigsum: {n} packages in {len(repo_dbs)} db(s)")
            return await run_sigsum_monitor(net, cfg, expected, store, timeouts, report, signer)
    finally:
        store.close()
        if signer is not None:
            signer.close()
