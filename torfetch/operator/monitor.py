"""``torfetch monitor``: find every log entry made with the operator's key and alert on those no db explains.

(1) read every given db (streamed) into the set of expected artifact hashes,
sha256(hex sha256 of each package); (2) collect candidate entries: Rekor's
index search by public key (streamed: a list of 10^6 UUIDs is never held in
memory, it goes straight into the state db) — documented by Rekor as possibly
incomplete — plus every entry the signer recorded; (3) fetch what is not yet
checked, ten per ``POST /api/v1/log/entries/retrieve`` (``GET`` per entry if
the log lacks it), several requests in flight, and verify each entry: UUID,
log id, inclusion proof to a checkpoint signed by the pinned key (one ECDSA
check per distinct checkpoint body), then ``net.rekor.check_history`` once per
distinct tree head, against the remembered heads; an entry that becomes an
alert is verified again exactly as the fetch path does
(``verify.rekor.verify_log_entry``, signed entry timestamp included, since its
index and time are what the alert prints); (4) classify
(ok / alert / foreign), committing each batch; (5) report every standing
alert, re-checked against today's dbs.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ..config import Limits, Timeouts
from ..errors import ConfigError, HTTPStatusError, TorfetchError
from ..net.http import Network
from ..net.rekor import DEFAULT_LOG_URL, LogConfig, check_history, load_log_key
from ..report import Reporter
from ..store.logstate import LogStateStore
from ..store.statedir import default_operator_state_dir
from ..store.monitorstate import MISSING, CheckedEntry, MonitorStore
from ..store.signatures import DB_FILE as SIGNER_DB, SignatureStore
from ..verify.minisign import PublicKey, sanitise
from ..verify.monitor import (ALERT, FOREIGN, MAX_RETRIEVE_BYTES, OK, RETRIEVE_BATCH, CheckpointCache, ExpectedArtifacts,
                              UuidListParser, classify, retrieve_request, search_request, split_retrieve_response,
                              summarise_body, verify_inclusion)
from ..verify.rekor import VerifiedEntry, verify_log_entry
from .repodb_fetch import read_repodb

SEARCH_NOTE = ("Rekor documents its index search (POST /api/v1/index/retrieve) as possibly incomplete: entries it "
               "does not list are checked only if the signer recorded them")
MAX_SEARCH_BYTES = 8 * 1024 * 1024 * 1024
PAGE = 2000  # pending entries taken from the state db at a time


@dataclass(frozen=True)
class MonitorOptions:
    pubkey: str
    repo_dbs: tuple[str, ...]
    log_url: str | None = None
    log_key: str | None = None
    state_dir: Path | None = None
    signer_state: Path | None = None
    proxy: str | None = None
    jobs: int = 4
    verbose: int = 0
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)


@dataclass(frozen=True)
class Alert:
    log_index: int | None
    integrated_time: int | None
    artifact_hash: str | None
    uuid: str
    known: str

    def line(self) -> str:
        when = (time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(self.integrated_time))
                if self.integrated_time is not None else "?")
        return (f"torfetch monitor: ALERT: log index {self.log_index}, integrated {when}, artifact sha256 "
                f"{self.artifact_hash or '?'}: signed with the operator's key but in no given repository db; "
                f"{self.known} (uuid {self.uuid})")

    def as_dict(self) -> dict:
        return {"log_index": self.log_index, "integrated_time": self.integrated_time,
                "artifact_hash": self.artifact_hash, "uuid": self.uuid, "known": self.known}


@dataclass
class MonitorResult:
    alerts: list[Alert] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    db_packages: int = 0
    search_listed: int = 0
    signer_listed: int = 0
    new_candidates: int = 0
    checked: int = 0
    counts: dict[str, int] = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {"alerts": [a.as_dict() for a in self.alerts], "problems": self.problems,
                "db_packages": self.db_packages, "search_listed": self.search_listed,
                "signer_listed": self.signer_listed, "new_candidates": self.new_candidates,
                "checked_now": self.checked, "entries_by_status": self.counts,
                "search_may_be_incomplete": True, "note": SEARCH_NOTE}


def load_pubkey(text: str) -> tuple[PublicKey, bytes]:
    """--pubkey: the base64 line, or a .pub file."""
    data = text.encode()
    if "\n" not in text and not text.startswith("RW") and len(text) < 4096:
        try:
            with open(text, "rb") as f:
                data = f.read(4096)
        except OSError as exc:
            raise ConfigError(f"--pubkey {text}: neither a minisign key nor a readable file ({exc.strerror})") from exc
    try:
        pub = PublicKey.parse(data)
    except TorfetchError as exc:
        raise ConfigError(f"--pubkey is not a minisign public key: {exc.message}") from exc
    return pub, pub.pub_file()


class _Verifier:
    """Verify entries; check history once per distinct tree head seen (not once per entry)."""

    def __init__(self, net: Network, cfg: LogConfig, opts: MonitorOptions, report: Reporter) -> None:
        self.net, self.cfg, self.opts, self.report = net, cfg, opts, report
        self._heads_done: set[tuple[str, int, bytes]] = set()
        self._lock = trio.Lock()

    async def history(self, entry: VerifiedEntry) -> None:
        cp = entry.checkpoint
        head = (cp.tree_id or cp.origin, cp.size, cp.root_hash)
        if head in self._heads_done:
            return
        async with self._lock:
            if head in self._heads_done:
                return
            await check_history(self.net, self.cfg, entry, limits=self.opts.limits,
                                timeout=self.opts.timeouts.lookup_total, package="", report=self.report.passed)
            self._heads_done.add(head)


def _check_batch(items: list[tuple[str, dict]], wanted: dict[str, str], cache: CheckpointCache, key_line: bytes,
                 expected: ExpectedArtifacts) -> tuple[list[CheckedEntry], dict[tuple, VerifiedEntry], list[str]]:
    """CPU part of one batch (run in a worker thread): verify, summarise, classify.

    Every entry: UUID, log id, inclusion proof, checkpoint by the pinned key (``verify_inclusion``). An entry
    that is reported (an alert) is verified again in full, signed entry timestamp included
    (``verify_log_entry``, exactly the fetch path's check), since its log index and time are printed.
    """
    checked: list[CheckedEntry] = []
    heads: dict[tuple, VerifiedEntry] = {}
    problems: list[str] = []
    for uuid, entry in items:
        leaf = uuid[-64:]
        if leaf not in wanted:
            problems.append(f"the log returned entry {sanitise(uuid[:80])} that was not asked for")
            continue
        try:
            inc = verify_inclusion(uuid, entry, cache)
            s = summarise_body(inc.body)
            status = classify(s, key_line, expected)
            log_index, integrated = inc.log_index, inc.integrated_time
            if status == ALERT:
                full = verify_log_entry(json.dumps({uuid: entry}).encode(), log_key=cache.key)
                log_index, integrated = full.log_index, full.integrated_time
        except TorfetchError as exc:
            problems.append(f"entry {uuid}: {exc.check}: {exc.message}")
            continue
        note = None if status != FOREIGN else f"{s.kind} entry not made with the operator's key"
        checked.append(CheckedEntry(leaf, uuid, status, log_index, integrated, s.artifact_hash, note))
        cp = inc.checkpoint
        heads.setdefault((cp.origin, cp.size, cp.root_hash), VerifiedEntry(
            uuid=uuid, log_index=log_index, shard_index=inc.shard_index, integrated_time=integrated, checkpoint=cp,
            tree=inc.tree, origin_name=inc.origin_name))
    return checked, heads, problems


async def _fetch_batch(net: Network, cfg: LogConfig, opts: MonitorOptions, uuids: list[str],
                       batch_ok: list[bool]) -> list[tuple[str, dict]]:
    if batch_ok[0]:
        r = await net.request("log", "POST", cfg.url + "/api/v1/log/entries/retrieve", content=retrieve_request(uuids),
                              headers={"Content-Type": "application/json"}, max_bytes=MAX_RETRIEVE_BYTES,
                              timeout=opts.timeouts.lookup_total)
        if r.status == 200:
            return split_retrieve_response(r.body)
        if r.status not in (404, 405, 501):
            raise HTTPStatusError(f"the log answered HTTP {r.status} to POST /api/v1/log/entries/retrieve", status=r.status)
        batch_ok[0] = False  # an older or smaller log: one GET per entry
    out: list[tuple[str, dict]] = []
    for u in uuids:
        r = await net.request("log", "GET", cfg.url + f"/api/v1/log/entries/{u}", max_bytes=opts.limits.rekor_max_bytes,
                              timeout=opts.timeouts.lookup_total)
        if r.status == 404:
            continue
        if r.status != 200:
            raise HTTPStatusError(f"the log answered HTTP {r.status} for entry {u}", status=r.status)
        out += split_retrieve_response(b"[" + r.body + b"]")
    return out


async def run_monitor(opts: MonitorOptions, report: Reporter) -> MonitorResult:
    if not opts.repo_dbs:
        raise ConfigError("give at least one --repo-db: the packages the operator released")
    if opts.jobs < 1:
        raise ConfigError("--jobs must be 1 or more")
    pub, pub_file = load_pubkey(opts.pubkey)
    key_line = pub.key_line()
    log_url = (opts.log_url or DEFAULT_LOG_URL).rstrip("/")
    if not opts.log_key and log_url != DEFAULT_LOG_URL:
        raise ConfigError(f"--log-url {log_url} needs --log-key (the log's public key, PEM)")
    state_dir = opts.state_dir or default_operator_state_dir()
    cfg = LogConfig(url=log_url, key=load_log_key(opts.log_key), store=LogStateStore(state_dir), upload=False)
    result = MonitorResult()
    expected = ExpectedArtifacts()
    store = MonitorStore(state_dir)
    signer_dir = opts.signer_state or state_dir
    signer = SignatureStore(signer_dir, readonly=True) if (signer_dir / SIGNER_DB).exists() else None
    store.retry_missing()  # a log that could not return an entry last time is asked again
    try:
        async with Network(proxy=opts.proxy, timeouts=opts.timeouts) as net:
            # (1) what was released
            for db in opts.repo_dbs:
                result.db_packages += await read_repodb(net, db, lambda p: expected.add_package(p.sha256),
                                                     timeouts=opts.timeouts)
            report.passed(f"{result.db_packages} packages in {len(opts.repo_dbs)} db(s)")

            # (2) candidates: the index search, streamed into the state db
            parser = UuidListParser()
            buf: list[str] = []

            def flush() -> None:
                if buf:
                    result.new_candidates += store.add_candidates(buf, "search")
                    buf.clear()

            def sink(chunk: bytes) -> None:
                buf.extend(parser.feed(chunk))
                if len(buf) >= 10000:
                    flush()

            status, _ = await net.stream("log", "POST", cfg.url + "/api/v1/index/retrieve", sink,
                                         content=search_request(pub_file), headers={"Content-Type": "application/json"},
                                         max_bytes=MAX_SEARCH_BYTES, timeout=opts.timeouts.download_total,
                                         raise_for_status=False)
            if status != 200:
                raise HTTPStatusError(f"the log answered HTTP {status} to its index search "
                                      "(POST /api/v1/index/retrieve): cannot list the key's entries", status=status)
            parser.finish()
            flush()
            result.search_listed = parser.count
            report.passed(f"the log's index search lists {parser.count} entries for key {pub.key_id_hex}")
            # ... plus what the signer recorded
            if signer is not None:
                for rec in signer.all():
                    if rec.uuid:
                        buf.append(rec.uuid.lower())
                        result.signer_listed += 1
                        if len(buf) >= 10000:
                            result.new_candidates += store.add_candidates(buf, "signer")
                            buf.clear()
                if buf:
                    result.new_candidates += store.add_candidates(buf, "signer")
                    buf.clear()

            # (3) + (4) fetch, verify, classify, commit per batch
            verifier = _Verifier(net, cfg, opts, report)
            cache = CheckpointCache(cfg.key)
            batch_ok = [True]
            limiter = trio.CapacityLimiter(opts.jobs)
            last = 0
            for _ in range(10_000_000):
                page = store.pending(PAGE, last)
                if not page:
                    break
                last = page[-1][0]
                batches = [page[i:i + RETRIEVE_BATCH] for i in range(0, len(page), RETRIEVE_BATCH)]

                async def one(batch) -> None:
                    async with limiter:
                        wanted = {leaf: src for _, leaf, _, src in batch}
                        items = await _fetch_batch(net, cfg, opts, [u for _, _, u, _ in batch], batch_ok)
                        # inline, not in a worker thread: ~0.5 ms of pure CPU per batch, and a thread hop per
                        # batch made every socket call wait out the GIL's switch interval (measured: 2x slower)
                        checked, heads, problems = _check_batch(items, wanted, cache, key_line, expected)
                        for v in heads.values():
                            await verifier.history(v)
                        got = {c.leaf for c in checked} | {i[0][-64:] for i in items}
                        for _, leaf, uuid, src in batch:
                            if leaf not in got:
                                where = "the signer recorded" if src == "signer" else "the log's index lists"
                                checked.append(CheckedEntry(leaf, uuid, MISSING, None, None, None,
                                                            f"{where} this entry but the log does not return it"))
                        result.problems.extend(problems)
                        page_checked.extend(checked)

                page_checked: list[CheckedEntry] = []
                async with trio.open_nursery() as nursery:
                    for b in batches:
                        nursery.start_soon(one, b)
                # one transaction per page: an interruption loses at most this page's work, never half a row
                await trio.to_thread.run_sync(store.record, page_checked)
                result.checked += len(page_checked)
                report.detail(f"checked {result.checked} entries")

            # (5) every standing alert, against today's dbs
            for row in list(store.with_status(ALERT)):
                if row.artifact_hash is not None and row.artifact_hash in expected:
                    store.set_status(row.leaf, OK)
                    continue
                known = "filename unknown (Rekor keeps no trusted comment, the signer has no record of it)"
                rec = signer.by_leaf(row.uuid) if signer is not None else None
                if rec is not None:
                    known = f"the signer recorded it as {sanitise(rec.filename)} (sha256 {rec.sha256})"
                result.alerts.append(Alert(row.log_index, row.integrated_time, row.artifact_hash, row.uuid, known))
            for row in store.with_status(MISSING):
                result.problems.append(f"entry {row.uuid}: {row.note}")
            result.counts = store.counts()
    finally:
        store.close()
        if signer is not None:
            signer.close()
    result.alerts.sort(key=lambda a: (a.log_index is None, a.log_index or 0))
    return result


