"""The orchestrator: download → verify → hand over, with numbered steps.

Only this module joins the pure verifiers (``verify/``, ``pacman/``) with the
I/O layer (``net/``, ``store/``). The package download, the signature lookup,
the log proof, the Sigsum proof and the rebuilder lookups run side by side in
one trio nursery; the file reaches OUTPUT only after every configured check passed.
"""

from __future__ import annotations

import contextlib
import os
import threading
import urllib.parse
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import trio

from .config import Options
from .errors import (
    ConfigError,
    DownloadTooLarge,
    MalformedInputError,
    NotFoundError,
    SignatureError,
    SigsumError,
    SigsumMalformedError,
    TorfetchError,
    UsageError,
    VerificationError,
)
from .net.http import Network
from .net.isolation import IsolationPolicy
from .net.rebuilders import confirm_rebuilds
from .net.rekor import LogConfig, preconnect, prove_in_log
from .net.tor import TorContext, tor_context
from .pacman.classify import Classification, Package, PackageSignature, classify
from .pacman.filename import filename_from_url, parse_package_filename
from .pacman.pkginfo import PkgInfoReader, check_matches_filename
from .report import Reporter
from .store.output import AtomicOutput
from .store.package_sink import PackageSink
from .store.statedir import state_dir_for
from .verify import minisign
from .verify.rebuilder import RebuilderSpec
from .verify.transparency import check_transparency_signature

if TYPE_CHECKING:
    from .store.sigsumstate import SigsumStateStore
    from .store.syncdb import SyncDbAnswer
    from .verify.sigsum_policy import Policy


# Seconds a log lookup waits for the warm-up's connection before opening its own: a slow answer to the
# warm-up (GET /api/v1/log) then costs at most this, and a prompt one lets the lookup reuse the connection.
LOG_WARM_UP_WAIT = 5.0


@dataclass
class FetchResult:
    url: str
    filename: str
    size: int = 0
    sha256_hex: str = ""
    verified: bool = False
    checks: list[str] = field(default_factory=list)


def signature_url(opts: Options, filename: str, suffix: str = ".t") -> str:
    """``<transparency-url>/<filename>.t``; without --transparency-url, ``<url>.t`` (as pacman-bintrans)."""
    if opts.transparency_url:
        base = opts.transparency_url
        if not base.endswith("/"):
            base += "/"  # keep the base's path: join, don't replace
        return base + urllib.parse.quote(filename + suffix, safe="")
    return opts.url + suffix


def proof_url(opts: Options, filename: str) -> str:
    """The Sigsum proof beside the signature: ``<transparency-url>/<filename>.proof`` (else ``<url>.proof``)."""
    return signature_url(opts, filename, ".proof")


class _Future:
    """A value set once by one task and awaited by others (trio has no Future)."""

    def __init__(self) -> None:
        self._event = trio.Event()
        self._value: object = None

    def set(self, value: object) -> None:
        self._value = value
        self._event.set()

    @property
    def done(self) -> bool:
        return self._event.is_set()

    async def get(self) -> object:
        await self._event.wait()
        return self._value


def first_error(exc: BaseException) -> BaseException:
    """Pick the error to show from a (nested) ExceptionGroup.

    Ctrl-C wins; then a verification failure (the data is wrong) over a
    network failure it may have caused in a sibling task.
    """
    if not isinstance(exc, BaseExceptionGroup):
        return exc
    leaves: list[BaseException] = []

    def walk(e: BaseException, depth: int) -> None:
        if isinstance(e, BaseExceptionGroup) and depth < 20:
            for sub in e.exceptions:
                walk(sub, depth + 1)
        else:
            leaves.append(e)

    walk(exc, 0)
    for e in leaves:
        if isinstance(e, KeyboardInterrupt):
            return e
    for cls in (VerificationError, TorfetchError):
        for e in leaves:
            if isinstance(e, cls):
                return e
    return leaves[0] if leaves else exc


@dataclass(frozen=True)
class FilePlan:
    """What one file needs, decided before any network work and before -O is touched (step 1)."""

    kind: Classification
    filename: str
    pubkey: minisign.PublicKey | None = None
    log: LogConfig | None = None
    sigsum: "SigsumCheck | None" = None


@dataclass
class Session:
    """One Tor context and one Network for a run: a prefetch shares them (circuits per purpose, keep-alive
    connections) across its files; ``--isolate package`` still scopes every key by file name."""

    tor: TorContext
    net: Network


async def run(opts: Options, report: Reporter) -> FetchResult:
    """Fetch ``opts.url`` to ``opts.output``, verifying whatever it needs."""
    if opts.config_note:
        report.info(opts.config_note)
    # (0) A file:// URL is a local repository, as trusted as the disk it is on (pacman-bintrans copies it
    # without proof too): copied atomically, no Tor, no network at all.
    if urllib.parse.urlsplit(opts.url).scheme.lower() == "file":
        return await _copy_local(opts, report)
    plan = plan_file(opts)
    async with open_session(opts, report) as session:
        return await fetch_in_session(opts, report, session, plan)


def plan_file(opts: Options) -> FilePlan:
    """(1) Decide what this file needs: only what pacman positively writes as repository metadata skips the proof."""
    kind = classify(opts.url, pacman_output_path(opts.output))
    filename = kind.filename
    proof = isinstance(kind, Package)
    pubkey: minisign.PublicKey | None = None
    sigsum = SigsumCheck.from_options(opts) if proof else None
    if proof:
        if not opts.pubkey and sigsum is None:
            raise UsageError(f"{filename} is a package and needs a transparency signature: {opts.missing_pubkey_hint}")
        if opts.pubkey:
            try:
                pubkey = minisign.PublicKey.parse(opts.pubkey)
            except TorfetchError as exc:
                raise ConfigError(f"--pubkey is not a minisign public key: {exc.message}") from exc
    _validate_rebuilder_options(opts)
    # a bad --log-key is a usage error before any network work; with only Sigsum there is no Rekor lookup
    log = LogConfig.from_options(opts) if pubkey is not None else None
    if opts.bypass_proxy_for_pkgs and opts.direct:
        raise ConfigError("--bypass-proxy-for-pkgs with --direct: nothing would go through Tor")
    return FilePlan(kind=kind, filename=filename, pubkey=pubkey, log=log, sigsum=sigsum)


@asynccontextmanager
async def open_session(opts: Options, report: Reporter) -> AsyncIterator[Session]:
    """(2) Tor: bootstrap check / private tor / circuit audit, where configured; then one Network."""
    async with tor_context(opts, report.info) as tor:
        direct = frozenset({"package"}) if opts.bypass_proxy_for_pkgs else frozenset()
        net = Network(
            proxy=tor.proxy,
            timeouts=opts.timeouts,
            isolation=IsolationPolicy.new(opts.isolate),
            direct_purposes=direct,
            user_agent=opts.user_agent or "torfetch",
        )
        async with net:
            yield Session(tor=tor, net=net)


async def fetch_in_session(opts: Options, report: Reporter, session: Session, plan: FilePlan, *,
                           db_answer: SyncDbAnswer | None = None,
                           download_slots: trio.CapacityLimiter | None = None) -> FetchResult:
    """Steps (3)-(8) for one file on a session's Network. ``db_answer``: the package's sha256 from the sync
    dbs, already read (prefetch reads them once for all packages); else ``opts.pacman_conf`` is read here.
    ``download_slots``: a package download waits for one (prefetch --jobs), its lookups do not."""
    tor, net, kind, filename = session.tor, session.net, plan.kind, plan.filename
    result = FetchResult(url=opts.url, filename=filename)

    async def before_commit() -> None:
        # (8) with --audit-circuits: no two isolation keys shared a circuit
        if tor.audit is not None:
            await tor.audit.check(net.opened_streams())
            for line in tor.audit.describe():
                report.detail(line)

    try:
        if isinstance(kind, Package):
            assert plan.pubkey is not None or plan.sigsum is not None
            await _fetch_verified(opts, report, net, filename, plan.pubkey, plan.log, result, before_commit,
                                  sigsum=plan.sigsum, db_answer=db_answer, download_slots=download_slots)
        elif isinstance(kind, PackageSignature):
            await _fetch_package_signature(opts, report, net, kind, result, before_commit)
        else:
            await _fetch_plain(opts, report, net, filename, result, before_commit)
    except BaseExceptionGroup as eg:
        raise first_error(eg) from None
    return result


def pacman_output_path(output) -> str:
    """-O as a string for the classifier: absolute (pacman passes absolute paths), never normalised."""
    text = os.fspath(output)
    return text if text.startswith("/") else os.getcwd().rstrip("/") + "/" + text


async def _fetch_package_signature(opts: Options, report: Reporter, net: Network, kind: PackageSignature,
                                   result: FetchResult, before_commit) -> None:
    """A package's detached .sig: small, and handed over only if it is an OpenPGP signature."""
    from .verify import openpgp  # here, not at the top: a package fetch never needs it

    with AtomicOutput(opts.output) as out:
        data = bytearray()

        def sink(chunk: bytes) -> None:
            out.write(chunk)
            data.extend(chunk)

        try:
            await net.stream(
                "database", "GET", opts.url, sink,
                max_bytes=openpgp.MAX_SIGNATURE_BYTES, timeout=opts.timeouts.download_total,
            )
        except DownloadTooLarge as exc:
            raise MalformedInputError(
                f"{kind.filename} is over {openpgp.MAX_SIGNATURE_BYTES} bytes: not a package signature") from exc
        try:
            sig = openpgp.parse_detached_signature(bytes(data))
        except MalformedInputError as exc:
            raise MalformedInputError(f"{kind.filename} is refused: {exc.message}") from exc
        await before_commit()
        out.commit()
        result.size = out.size
    report.passed(f"downloaded {kind.filename} ({result.size} bytes, an OpenPGP signature of "
                  f"{len(sig.packets)} packet(s); pacman checks it)")


async def _copy_local(opts: Options, report: Reporter) -> FetchResult:
    filename = filename_from_url(opts.url)
    result = FetchResult(url=opts.url, filename=filename)
    cap = max(opts.limits.package_max_bytes, opts.limits.other_max_bytes)
    # proxy=None is safe here: Network.stream reads file:// itself and never opens a socket for it
    async with Network(proxy=None, timeouts=opts.timeouts) as net:
        with report.file(filename, checks=()) as progress, AtomicOutput(opts.output) as out:
            def sink(chunk: bytes) -> None:
                out.write(chunk)
                progress.add(len(chunk))

            await net.stream("local", "GET", opts.url, sink, max_bytes=cap, timeout=opts.timeouts.download_total)
            out.commit()
            result.size = out.size
            progress.finish("copied from a local repository (file://, no proof checked)")
    report.passed(f"copied {filename} ({result.size} bytes) from the local repository: a file:// URL is trusted "
                  "as the disk it is on, no proof checked")
    return result


async def _fetch_plain(opts: Options, report: Reporter, net: Network, filename: str, result: FetchResult,
                       before_commit) -> None:
    """Repository metadata (sync dbs, their .sig): no proof, but still size-capped, atomic and proxied."""
    with report.file(filename, checks=()) as progress, AtomicOutput(opts.output) as out:
        def sink(chunk: bytes) -> None:
            out.write(chunk)
            progress.add(len(chunk))

        await net.stream(
            "database", "GET", opts.url, sink,
            max_bytes=opts.limits.other_max_bytes, timeout=opts.timeouts.download_total,
        )
        await before_commit()
        out.commit()
        result.size = out.size
        progress.finish("downloaded (no proof needed)")
    report.passed(f"downloaded {filename} ({result.size} bytes, no proof needed)")


@dataclass(frozen=True)
class SigsumCheck:
    """--sigsum-policy and --sigsum-key, and where the largest tree head per log is remembered."""

    policy: Policy
    key: bytes
    store: SigsumStateStore

    @classmethod
    def from_options(cls, opts: Options) -> "SigsumCheck | None":
        if opts.sigsum_key is None:
            return None
        if opts.sigsum_policy is None:
            raise ConfigError("--sigsum-key needs --sigsum-policy (which logs and witnesses a proof must show)")
        from .store.sigsumstate import SigsumStateStore  # the Sigsum modules load only when Sigsum is in use

        return cls(opts.sigsum_policy, opts.sigsum_key, SigsumStateStore(state_dir_for(opts.state_dir)))


async def _fetch_verified(
    opts: Options, report: Reporter, net: Network, filename: str, pubkey: minisign.PublicKey | None,
    log: LogConfig | None, result: FetchResult, before_commit, *, sigsum: SigsumCheck | None = None,
    db_answer: SyncDbAnswer | None = None, download_slots: trio.CapacityLimiter | None = None,
) -> None:
    parsed = parse_package_filename(filename)  # classify() already checked it
    scope = filename  # isolation scope with --isolate package
    sha_future = _Future()
    pkginfo = PkgInfoReader(opts.limits)
    sig_url = signature_url(opts, filename)

    # The sha256 the lookups check: the sync db's if it answers before the download ends (the download must
    # then have exactly it), else the download's own.
    from_db: list[tuple[str, str]] = []  # (sha256, db) once the lookups started from a sync db
    stop_db = threading.Event()
    db_scope = trio.CancelScope()
    downloaded = trio.Event()

    async def blame_db_first() -> None:
        # A check that failed on the db's hash may have failed because the db is wrong: the download decides
        # (a mismatch raises the db's error there, which cancels this wait); a matching download re-raises here.
        if from_db:
            await downloaded.wait()

    async def get_sha256() -> str:
        return str(await sha_future.get())

    async def sync_db() -> None:
        # (3c) The package's sha256 from pacman's sync db, read in a thread while the package streams.
        from .store.syncdb import lookup_sha256

        with db_scope:
            answer = await trio.to_thread.run_sync(lookup_sha256, opts.pacman_conf, filename, stop_db,
                                                   abandon_on_cancel=True)
            if sha_future.done:
                return  # the download ended first: its own hash is what the lookups use
            if answer.sha256 is None:
                report.info(answer.note)
                return
            from_db.append((answer.sha256, answer.db))
            report.info(f"{answer.note}: the signature and log checks start from the sync db, before the "
                        "download ends")
            sha_future.set(answer.sha256)

    checks = ["download"] + (["signature", "log"] if pubkey is not None else []) + (["sigsum"] if sigsum else [])
    if opts.rebuilders or opts.required_rebuild_confirms > 0:
        checks.append("rebuilders")
    checks.append(".PKGINFO")
    with report.file(filename, checks) as progress, AtomicOutput(opts.output) as out:
        async def download() -> None:
            # (3a) Stream the package: temp file, sha256 and .PKGINFO in one pass, the hashing in a worker thread
            # beside the socket reads (store/package_sink.py); in one of the prefetch's download slots, if it
            # gives them: its lookups need no slot and go ahead meanwhile.
            async with download_slots if download_slots is not None else contextlib.nullcontext():
                async with PackageSink.open(out, pkginfo, on_chunk=progress.add) as sink:
                    await net.stream(
                        "package", "GET", opts.url, sink,
                        max_bytes=opts.limits.package_max_bytes, timeout=opts.timeouts.download_total,
                        package=scope,
                    )
                    result.sha256_hex = await sink.finish()
            result.size = out.size
            stop_db.set()
            db_scope.cancel()
            if from_db and from_db[0][0] != result.sha256_hex:
                # the lookups vouched for the db's hash: other bytes are refused, never retried
                raise VerificationError(
                    f"the downloaded file's sha256 {result.sha256_hex} is not the sha256 {from_db[0][0]} the sync "
                    f"db {from_db[0][1]} lists for {filename}"
                )
            report.passed(f"downloaded {filename} ({out.size} bytes, sha256 {result.sha256_hex}"
                          + (f", as the sync db {from_db[0][1]} lists)" if from_db else ")"))
            if not sha_future.done:
                sha_future.set(result.sha256_hex)
            downloaded.set()
            progress.done("download")

        async def sigsum_proof() -> None:
            # (3d) The Sigsum proof beside the package, fetched on the signature circuit while the package
            # streams; checked offline against the downloaded bytes: the log and witnesses are never asked.
            assert sigsum is not None
            from .store.sigsumstate import SplitViewEvidence, remember_async
            from .verify.sigsum import check_sigsum_proof, split_view_signers

            url = proof_url(opts, filename)
            cap = opts.limits.sigsum_proof_max_bytes
            try:
                data = await net.get_ok("signature", url, max_bytes=cap, timeout=opts.timeouts.lookup_total,
                                        package=scope)
            except NotFoundError as exc:
                raise SigsumError(f"no Sigsum proof for {filename} ({url} not found)") from exc
            except DownloadTooLarge as exc:
                raise SigsumMalformedError(f"proof for {filename} is over the limit of {cap} bytes") from exc
            await downloaded.wait()
            # (4b) Pure: the message is the downloaded file's raw sha256, as `sigsum-submit FILE` makes it.
            verified = check_sigsum_proof(filename=filename, proof_bytes=data, sha256=bytes.fromhex(result.sha256_hex),
                                          submitter_pub=sigsum.key, policy=sigsum.policy)
            th = verified.tree_head
            # (5b) A tree head of a size seen before must have the same root (else: a split view).
            await remember_async(sigsum.store, th, filename=filename, evidence=SplitViewEvidence(
                data, url, split_view_signers(sigsum.policy, th)))  # a split view keeps the proof for a report
            names = sorted(w.name for kh, w in sigsum.policy.witnesses.items() if kh in th.witnesses)
            report.passed(f"Sigsum proof of {filename} verified offline: leaf {verified.leaf_index} of log "
                          f"{th.log_keyhash.hex()[:16]}… (tree size {th.size}), cosigned by "
                          f"{', '.join(names)[:200] or 'no witness (quorum none)'}")
            result.checks.append("sigsum")
            progress.done("sigsum")

        log_ready = trio.Event()
        warm_scope = trio.CancelScope()

        async def log_connection() -> None:
            # (3b') The log's circuit and connection open at t=0, while the signature its lookup needs is on its
            # way (the lookup is keyed by the signature, so it cannot start earlier).
            assert log is not None
            with warm_scope:
                try:
                    await preconnect(net, log, limits=opts.limits, timeout=opts.timeouts.lookup_total, package=scope)
                finally:
                    log_ready.set()

        async def signature_and_log() -> None:
            # (3b) The transparency signature, fetched while the package streams.
            assert pubkey is not None and log is not None
            try:
                await _signature_and_log()
            finally:
                warm_scope.cancel()

        async def _signature_and_log() -> None:
            assert pubkey is not None and log is not None
            try:
                sig_bytes = await net.get_ok(
                    "signature", sig_url, max_bytes=opts.limits.signature_max_bytes,
                    timeout=opts.timeouts.lookup_total, package=scope,
                )
            except NotFoundError as exc:
                raise SignatureError(f"no transparency signature for {filename} ({sig_url} not found)") from exc
            except DownloadTooLarge as exc:
                raise SignatureError(
                    f"transparency signature for {filename} is over the limit of {opts.limits.signature_max_bytes} bytes"
                ) from exc
            sha_hex = await get_sha256()
            try:
                # (4) Pure check: key id, signature over the hex sha256, global signature, trusted comment.
                check = check_transparency_signature(
                    filename=filename, sha256_hex=sha_hex, sig_bytes=sig_bytes, pubkey=pubkey,
                    max_bytes=opts.limits.signature_max_bytes,
                )
                report.passed(
                    f"transparency signature of {filename} verified (key {check.key_id}, "
                    f"{'prehashed' if check.prehashed else 'legacy'}, trusted comment {check.trusted_comment!r})"
                )
                result.checks.append("signature")
                progress.done("signature")
                # (5) The signature must be in the transparency log: on the connection opened at t=0 if it is
                # up by now or soon (LOG_WARM_UP_WAIT), else on a new one (the same circuit either way).
                with trio.move_on_after(min(opts.timeouts.connect, LOG_WARM_UP_WAIT)):
                    await log_ready.wait()
                await prove_in_log(
                    net, log, signature_line=check.signature.signature_line(), key_line=pubkey.key_line(),
                    artifact=check.sha256_hex.encode("ascii"), signature_file=sig_bytes, pub_file=pubkey.pub_file(),
                    limits=opts.limits, timeouts=opts.timeouts, package=scope, subject=filename, report=report.passed,
                )
            except VerificationError:
                await blame_db_first()
                raise
            result.checks.append("log")
            progress.done("log")

        async def rebuilders() -> None:
            keys = dict(opts.rebuilder_keys)
            specs = [RebuilderSpec(url, keys.get(url)) for url in opts.rebuilders]
            try:
                await confirm_rebuilds(
                    net, specs, filename=filename, pkgname=parsed.pkgname, version=parsed.version,
                    get_sha256=get_sha256, required=opts.required_rebuild_confirms, fail_on_bad=opts.fail_on_bad,
                    limits=opts.limits, timeouts=opts.timeouts, package=scope, report=report.info, warn=report.warn,
                    detail=report.detail,
                )
            except VerificationError:
                await blame_db_first()
                raise
            result.checks.append("rebuilders")
            progress.done("rebuilders")

        if db_answer is not None:
            # (3c') the db was read already (prefetch): the lookups start at once, the download must match it
            if db_answer.sha256 is None:
                raise VerificationError(f"{filename}: no sha256 to hold the download to ({db_answer.note})")
            from_db.append((db_answer.sha256, db_answer.db))
            report.info(f"{db_answer.note}: the signature and log checks start from the sync db")
            sha_future.set(db_answer.sha256)
        async with trio.open_nursery() as nursery:
            nursery.start_soon(download)
            if opts.pacman_conf is not None and db_answer is None:
                nursery.start_soon(sync_db)
            if pubkey is not None:
                nursery.start_soon(log_connection)
                nursery.start_soon(signature_and_log)
            if sigsum is not None:
                nursery.start_soon(sigsum_proof)
            if opts.rebuilders or opts.required_rebuild_confirms > 0:
                nursery.start_soon(rebuilders)

        # (6) The package's own .PKGINFO must name the file we asked for.
        info = pkginfo.finish()
        check_matches_filename(info, parsed)
        report.passed(f".PKGINFO of {filename} names {info.pkgname} {info.pkgver}")
        progress.done(".PKGINFO")
        await before_commit()
        # (7) Every configured check passed: hand over.
        out.commit()
        result.verified = True
        progress.finish("verified: " + ", ".join(checks[1:]))
    report.passed(f"handed {filename} to pacman")


def _validate_rebuilder_options(opts: Options) -> None:
    keys = dict(opts.rebuilder_keys)
    unknown = set(keys) - set(opts.rebuilders)
    if unknown:
        raise ConfigError(f"--rebuilder-key for a URL that is not a --rebuilder: {sorted(unknown)[0]}")
    if opts.required_rebuild_confirms > len(opts.rebuilders):
        raise ConfigError(
            f"--required-rebuild-confirms {opts.required_rebuild_confirms} but only {len(opts.rebuilders)} --rebuilder given"
        )
