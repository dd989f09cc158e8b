"""Prove a transparency signature is in a Rekor v1 log: the thin trio layer.

All checks are in ``verify.rekor`` / ``verify.logstate`` (pure); this module
only fetches what ``verify.logstate.HistoryCheck`` asks for (on the log's own
circuit: log info, consistency proofs) and persists what it says to remember.
An upload's answer is never taken as proof: after a 201 or 409 the entry is
fetched and verified like any other.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from importlib import resources

import trio

from ..config import Limits, Options, Timeouts
from ..errors import ConfigError, EntryNotFoundError, FetchTimeout, HTTPStatusError, StateError, TransparencyLogError
from ..store.logstate import LogStateStore
from ..store.statedir import state_dir_for
from ..verify import merkle
from ..verify.checkpoint import LogKey
from ..verify.logstate import HistoryCheck, LogState, NeedConsistency, NeedLogInfo, SeenTree, TreeHead, Trusted
from ..verify.rekor import (VerifiedEntry, parse_consistency_proof, parse_log_info, rekord_body, upload_request,
                            verify_log_entry)
from .http import Network

LOCK_RETRIES = 600  # × 50 ms = 30 s waiting for another torfetch's state write
DEFAULT_LOG_URL = "https://rekor.sigstore.dev"
MAX_KEY_FILE_BYTES = 16384
# the origin name shipped with a log key (by logID): checkpoints must be "<name> - <tree id>"
KNOWN_ORIGINS = {"c0d23d6ad406973f9559f3ba2d1ca01f84147d8ffc5b8445c224f98b9591801d": "rekor.sigstore.dev"}


def load_log_key(text: str | None) -> LogKey:
    """A PEM given inline or as a file path; ``None`` is the shipped public-good key."""
    if text is None:
        pem = resources.files("torfetch").joinpath("data/rekor.sigstore.dev.pem").read_bytes()
    elif "BEGIN PUBLIC KEY" in text:
        pem = text.encode()
    else:
        try:
            with open(text, "rb") as f:
                pem = f.read(MAX_KEY_FILE_BYTES)
        except OSError as exc:
            raise ConfigError(f"cannot read --log-key {text}: {exc.strerror}") from exc
    return LogKey.from_pem(pem)


@dataclass(frozen=True)
class LogConfig:
    url: str
    key: LogKey
    store: LogStateStore
    upload: bool = True
    origin: str | None = None  # --log-origin; else the name shipped with the key; else the state's first-seen
    # one history check at a time for the tasks that share this config (torfetch prefetch, sign --jobs): one that
    # raced another's commit would only start over against the new state (at most 5 times, then fail)
    history_lock: trio.Lock = field(default_factory=trio.Lock, compare=False, repr=False)

    @property
    def origin_name(self) -> str | None:
        """The pinned origin name, never derived from the URL (the log may be reached via an onion or a mirror)."""
        return self.origin or KNOWN_ORIGINS.get(self.key.log_id)

    @classmethod
    def from_options(cls, opts: Options) -> "LogConfig":
        """--log-url/--log-key/--log-origin/--state-dir/--no-upload; the public-good key ships for the default URL."""
        url = (opts.log_url or DEFAULT_LOG_URL).rstrip("/")
        if not opts.log_key and url != DEFAULT_LOG_URL:
            raise ConfigError(f"--log-url {url} needs --log-key (the log's public key, PEM)")
        origin = opts.log_origin
        if origin is not None and (not origin or " - " in origin or not origin.isprintable() or len(origin) > 512):
            raise ConfigError("--log-origin must be the log's origin name (e.g. rekor.sigstore.dev), without ' - <tree id>'")
        return cls(url=url, key=load_log_key(opts.log_key), store=LogStateStore(state_dir_for(opts.state_dir)),
                   upload=not opts.no_upload, origin=origin)


def _api(base: str, path: str) -> str:
    return base.rstrip("/") + path


async def _get_entry(net: Network, cfg: LogConfig, leaf_hex: str, limits: Limits, timeout: float, package: str):
    url = _api(cfg.url, f"/api/v1/log/entries/{leaf_hex}")
    return await net.request("log", "GET", url, max_bytes=limits.rekor_max_bytes, timeout=timeout, package=package)


async def _upload(net: Network, cfg: LogConfig, body: bytes, limits: Limits, timeout: float, package: str) -> int:
    url = _api(cfg.url, "/api/v1/log/entries")
    r = await net.request("log", "POST", url, content=body, headers={"Content-Type": "application/json"},
                          max_bytes=limits.rekor_max_bytes, timeout=timeout, package=package)
    if r.status not in (201, 409):
        raise HTTPStatusError(f"the log refused to record the signature (HTTP {r.status})", status=r.status)
    return r.status


async def _consistency_proof(net: Network, cfg: LogConfig, need: NeedConsistency, limits: Limits, timeout: float,
                             package: str) -> list[bytes]:
    q = {"firstSize": need.old.size, "lastSize": need.new.size, "treeID": need.tree}
    url = _api(cfg.url, "/api/v1/log/proof?" + urllib.parse.urlencode(q))
    r = await net.request("log", "GET", url, max_bytes=limits.rekor_max_bytes, timeout=timeout, package=package)
    if r.status != 200:
        raise TransparencyLogError(
            f"the log did not give a consistency proof from size {need.old.size} to {need.new.size} in tree "
            f"{need.tree} (HTTP {r.status})",
            hint="a log that cannot prove its history consistent may be presenting a split view",
        )
    return parse_consistency_proof(r.body, max_bytes=limits.rekor_max_bytes)


async def preconnect(net: Network, cfg: LogConfig, *, limits: Limits, timeout: float, package: str) -> None:
    """Open the log's connection while what the lookup needs (the signature) is still on its way: GET
    /api/v1/log, the log's public tree head, the same for every client (nothing about the package)."""
    await net.preconnect("log", _api(cfg.url, "/api/v1/log"), max_bytes=limits.rekor_max_bytes, timeout=timeout,
                         package=package)


async def _log_info(net: Network, cfg: LogConfig, limits: Limits, timeout: float, package: str):
    r = await net.request("log", "GET", _api(cfg.url, "/api/v1/log"), max_bytes=limits.rekor_max_bytes, timeout=timeout,
                          package=package)
    if r.status != 200:
        raise TransparencyLogError(
            f"the log did not say which trees it has (GET /api/v1/log: HTTP {r.status})",
            hint="an entry in a tree this machine never saw is accepted only when the log announces that tree",
        )
    return parse_log_info(r.body, log_key=cfg.key, max_bytes=limits.rekor_max_bytes)


async def _with_lock(store: LogStateStore, fn: Callable):
    for _ in range(LOCK_RETRIES):
        try:
            with store.locked(wait=False) as state:
                return fn(state)
        except BlockingIOError:
            await trio.sleep(0.05)
    raise StateError(f"the log state in {store.directory} stayed locked for 30 s")


async def check_history(net: Network, cfg: LogConfig, entry: VerifiedEntry, *, limits: Limits, timeout: float,
                        package: str, report: Callable[[str], None]) -> LogState:
    """Hold the log to what it showed this machine before; remember what the check says.

    The lock is held only to read and to write, never across the network: if
    another run changed this log's state meanwhile, the check runs again
    against that (bounded).
    """
    async with cfg.history_lock:
        return await _check_history(net, cfg, entry, limits=limits, timeout=timeout, package=package, report=report)


async def _check_history(net: Network, cfg: LogConfig, entry: VerifiedEntry, *, limits: Limits, timeout: float,
                         package: str, report: Callable[[str], None]) -> LogState:
    cp = entry.checkpoint
    seen = SeenTree(entry.tree, entry.origin_name, TreeHead(cp.size, cp.root_hash))
    log_id = cfg.key.log_id
    for _ in range(5):
        remembered = await _with_lock(cfg.store, lambda st: st.get(log_id))
        check = HistoryCheck(remembered, seen, pinned_name=cfg.origin_name, log=cfg.url)
        # one log info, then at most one proof per remembered tree and one for the entry's tree
        for _ in range(len(remembered.trees) + 3):
            step = check.next_step()
            if isinstance(step, Trusted):
                break
            if isinstance(step, NeedLogInfo):
                check.give_log_info(await _log_info(net, cfg, limits, timeout, package))
            else:
                check.give_consistency(step, await _consistency_proof(net, cfg, step, limits, timeout, package))
        else:
            raise TransparencyLogError("the log history check did not finish (too many steps)")

        def commit(st, remembered=remembered, state=step.state):
            if st.get(log_id) != remembered:
                return None  # moved under us: check again against the new state
            if state != remembered:
                st.put(log_id, state)
            return state

        done = await _with_lock(cfg.store, commit)
        if done is not None:
            for note in step.notes:
                report(note)
            return done
    raise StateError("the remembered log state kept changing under concurrent runs; try again")


async def prove_in_log(net: Network, cfg: LogConfig, *, signature_line: bytes, key_line: bytes, artifact: bytes,
                       signature_file: bytes, pub_file: bytes, limits: Limits, timeouts: Timeouts, package: str,
                       subject: str, report: Callable[[str], None]) -> VerifiedEntry:
    """(1) rebuild the entry body, (2) look it up by leaf hash, (3) upload if absent and allowed,
    (4) verify entry, proof, checkpoint, SET, (5) check history consistency and remember it."""
    body = rekord_body(signature_line, key_line, artifact)
    leaf_hex = merkle.leaf_hash(body).hex()
    timeout = timeouts.lookup_total
    try:
        return await _prove_in_log(net, cfg, body=body, leaf_hex=leaf_hex, signature_file=signature_file,
                                   pub_file=pub_file, artifact=artifact, limits=limits, timeout=timeout,
                                   package=package, subject=subject, report=report)
    except trio.TooSlowError as exc:  # this lookup's own deadline, named as such
        raise FetchTimeout(f"log lookup for {subject} at {cfg.url} took longer than {timeout * 2:g} s "
                           f"(twice --lookup-timeout)") from exc


async def _prove_in_log(net: Network, cfg: LogConfig, *, body: bytes, leaf_hex: str, signature_file: bytes,
                        pub_file: bytes, artifact: bytes, limits: Limits, timeout: float, package: str,
                        subject: str, report: Callable[[str], None]) -> VerifiedEntry:
    with trio.fail_after(timeout * 2):
        r = await _get_entry(net, cfg, leaf_hex, limits, timeout, package)
        if r.status == 404:
            if not cfg.upload:
                raise EntryNotFoundError(
                    f"the transparency signature of {subject} is not in the log {cfg.url} (entry {leaf_hex[:16]}…)",
                    hint="with --no-upload a missing entry is a failure: the operator never published it",
                )
            status = await _upload(net, cfg, upload_request(signature_file, pub_file, artifact), limits, timeout, package)
            report(f"signature of {subject} uploaded to the log (HTTP {status}); fetching it to verify")
            r = await _get_entry(net, cfg, leaf_hex, limits, timeout, package)
        if r.status != 200:
            raise TransparencyLogError(f"the log answered HTTP {r.status} for the entry of {subject}")
        entry = verify_log_entry(r.body, log_key=cfg.key, expected_body=body)
        report(
            f"log entry {entry.log_index} for {subject} is included in tree {entry.tree} "
            f"({entry.checkpoint.describe()}), checkpoint and SET signed by log {cfg.key.log_id[:16]}…"
        )
        await check_history(net, cfg, entry, limits=limits, timeout=timeout, package=package, report=report)
    return entry
