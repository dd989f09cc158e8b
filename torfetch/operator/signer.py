"""``torfetch sign``: sign every package of a repository db and prove each signature in the log.

(1) read the db (streamed, capped) — packages are never downloaded, the db's
%SHA256SUM% is what is signed; (2) decide per package from the sqlite record
what is left to do (a rerun does only new or failed packages); (3) only if
something must be signed, decrypt the secret key once and check it matches
--pubkey-path; (4) per package, bounded by --jobs: write
``<signature-dir>/<filename>.t`` atomically, record it, upload the entry and
fetch it back and verify it exactly as the fetch path does
(``net.rekor.prove_in_log``: body, inclusion, checkpoint, SET, history), then
record log index and uuid. Ed25519 signatures are deterministic, so re-signing
after an interruption writes the same bytes. (5) with ``--sigsum-policy`` and
``--sigsum-key-path``, a verified ``<filename>.proof`` per package
(operator/sigsum_sign.py); either path may run alone.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

import trio

from ..config import Limits, Timeouts
from ..errors import ConfigError, NetworkError, RepoDbError, TorfetchError, TransparencyLogError, UsageError
from ..net.http import Network
from ..net.rekor import DEFAULT_LOG_URL, LogConfig, load_log_key, prove_in_log
from ..report import Reporter
from ..store.logstate import LogStateStore
from ..store.statedir import default_operator_state_dir
from ..store.output import fsync_directory
from ..store.signatures import FAILED, VERIFIED, SignatureStore
from ..verify.minisign import PublicKey, Signature, sanitise
from ..verify.minisign_secret import EncryptedSecretKey, SecretKey
from .repodb_fetch import default_repo_db, read_repodb

if TYPE_CHECKING:
    from .sigsum_sign import SigsumSignConfig

MAX_KEY_FILE = 4096


@dataclass(frozen=True)
class SignOptions:
    signature_dir: Path
    pubkey_path: Path | None = None  # with seckey_path: the minisign .t + Rekor path
    seckey_path: Path | None = None
    repo_db: str | None = None
    repo_url: str | None = None
    repo_name: str | None = None
    architecture: str | None = None
    skip_upload: bool = False
    reupload_sigs: bool = False
    dry_run: bool = False
    verbose: int = 0
    log_url: str | None = None
    log_key: str | None = None
    state_dir: Path | None = None
    proxy: str | None = None
    jobs: int = 4
    timeouts: Timeouts = field(default_factory=Timeouts)
    limits: Limits = field(default_factory=Limits)
    sigsum: "SigsumSignConfig | None" = None  # the Sigsum .proof path (--sigsum-policy, --sigsum-key-path)


@dataclass
class SignSummary:
    packages: int = 0
    signed: int = 0
    proven: int = 0
    already: int = 0
    refused: int = 0
    failed: int = 0
    first_error: TorfetchError | None = None
    proofs: int = 0  # Sigsum .proof files written (dry run: to write)
    proofs_already: int = 0  # a valid .proof was already there
    sigsum: bool = False
    minisign: bool = True

    def line(self, dry_run: bool) -> str:
        parts = [f"torfetch sign: {self.packages} packages in the db"]
        if self.minisign:
            verb = "would sign" if dry_run else "signed"
            verb2 = "would upload" if dry_run else "proven in the log"
            parts.append(f"{verb} {self.signed}, {verb2} {self.proven}, already done {self.already}")
        if self.sigsum:
            verb3 = "Sigsum proofs to write" if dry_run else "Sigsum proofs written"
            parts.append(f"{verb3} {self.proofs}, already proven {self.proofs_already}")
        return "; ".join(parts) + f", refused {self.refused}, failed {self.failed}"


def check_filename(filename: str) -> None:
    """What pacman-bintrans-sign refuses, and what could not be a file in --signature-dir."""
    if not filename or "/" in filename or filename.startswith(".") or "\0" in filename:
        raise RepoDbError(f"refusing to sign {sanitise(filename)!r}: a package filename may not contain '/' or start with '.'")
    if not all(ch.isprintable() for ch in filename) or len(filename) > 250:
        raise RepoDbError(f"refusing to sign {sanitise(filename)!r}: control characters or too long")


def _read_small(path: Path, what: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_KEY_FILE + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {path}: {exc.strerror}") from exc


#: a .t or .proof exists to be published: readable by the web server that serves --signature-dir
PUBLISHED_MODE = 0o644


def write_atomically(path: Path, data: bytes) -> None:
    """Temporary file in the same directory, fsync, rename, fsync the directory: never half a .t.

    The file is 0644 whatever the umask (mkstemp makes 0600, which a web server running as another user
    cannot read: every client would then fail closed on a 404 or 403)."""
    fd, tmp = tempfile.mkstemp(prefix=".torfetch-sign.", suffix=".tmp", dir=path.parent)
    try:
        os.fchmod(fd, PUBLISHED_MODE)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
        fsync_directory(path.parent)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise


def _key_id_of(signature: str) -> bytes | None:
    try:
        return Signature.parse(signature.encode()).key_id
    except TorfetchError:
        return None


def _existing(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(4096)
    except OSError:
        return None


async def run_sign(opts: SignOptions, report: Reporter, password: Callable[[], bytes | None],
                   out: Callable[[str], None] = print) -> SignSummary:
    if opts.jobs < 1:
        raise UsageError("--jobs must be 1 or more")
    minisign = opts.pubkey_path is not None or opts.seckey_path is not None
    if minisign and (opts.pubkey_path is None or opts.seckey_path is None):
        raise UsageError("--pubkey-path and --seckey-path go together (the minisign .t path)")
    if not minisign and opts.sigsum is None:
        raise UsageError("give --pubkey-path and --seckey-path (minisign .t files, proven in Rekor), "
                         "--sigsum-policy and --sigsum-key-path (Sigsum .proof files), or both")
    repo_db = opts.repo_db or default_repo_db(opts.repo_url, opts.repo_name, opts.architecture)
    pub: PublicKey | None = None
    pub_file = b""
    enc: EncryptedSecretKey | None = None
    if minisign:
        assert opts.pubkey_path is not None and opts.seckey_path is not None
        pub_file = _read_small(opts.pubkey_path, "--pubkey-path")
        try:
            pub = PublicKey.parse(pub_file)
        except TorfetchError as exc:
            raise ConfigError(f"--pubkey-path {opts.pubkey_path} is not a minisign public key: {exc.message}") from exc
        pub_file = pub.pub_file()  # the canonical .pub text: what is uploaded as the entry's key
        enc = EncryptedSecretKey.parse(_read_small(opts.seckey_path, "--seckey-path"), path=str(opts.seckey_path))
    log_url = (opts.log_url or DEFAULT_LOG_URL).rstrip("/")
    if minisign and not opts.skip_upload and not opts.log_key and log_url != DEFAULT_LOG_URL:
        raise ConfigError(f"--log-url {log_url} needs --log-key (the log's public key, PEM)")
    if opts.sigsum is not None:
        from .sigsum_sign import prepare

        prepare(opts.sigsum)  # a bad policy or key is a usage error before the db is read
    state_dir = opts.state_dir or default_operator_state_dir()
    summary = SignSummary(sigsum=opts.sigsum is not None, minisign=minisign)

    async with Network(proxy=opts.proxy, timeouts=opts.timeouts) as net:
        # (1) the db
        pkgs: dict[tuple[str, str], None] = {}

        def on_package(p) -> None:
            pkgs.setdefault((p.sha256, p.filename), None)

        summary.packages = await read_repodb(net, repo_db, on_package, timeouts=opts.timeouts)
        report.passed(f"read {summary.packages} packages from {repo_db}")

        # (2) what is left to do
        store: SignatureStore | None = None
        if opts.dry_run:
            if (state_dir / "signatures.sqlite").exists():
                store = SignatureStore(state_dir, readonly=True)
        else:
            opts.signature_dir.mkdir(parents=True, exist_ok=True)
            store = SignatureStore(state_dir)
        try:
            valid: list[tuple[str, str]] = []
            todo: list[tuple[str, str, bool, bool]] = []  # sha, filename, sign?, log?
            for sha, filename in pkgs:
                try:
                    check_filename(filename)
                except RepoDbError as exc:
                    summary.refused += 1
                    summary.first_error = summary.first_error or exc
                    print(exc.one_line(), file=report.stream, flush=True)
                    continue
                valid.append((sha, filename))
                if pub is None:
                    continue
                rec = store.get(sha, filename) if store else None
                t_path = opts.signature_dir / (filename + ".t")
                on_disk = await trio.to_thread.run_sync(_existing, t_path)
                need_sign = (rec is None or rec.signature is None or on_disk != rec.signature.encode()
                             or _key_id_of(rec.signature) != pub.key_id)  # a rotated key signs again
                need_log = not opts.skip_upload and (opts.reupload_sigs or rec is None or rec.state != VERIFIED or need_sign)
                if need_sign or need_log:
                    todo.append((sha, filename, need_sign, need_log))
                else:
                    summary.already += 1
            if opts.dry_run:
                for sha, filename, s, lg in todo:
                    out(f"{'sign' if s else '    '} {'upload' if lg else '      '} {filename} {sha}")
                summary.signed = sum(1 for t in todo if t[2])
                summary.proven = sum(1 for t in todo if t[3])
                if opts.sigsum is not None:
                    await _sigsum(opts, net, valid, store, report, out, summary)
                return summary
            assert store is not None

            if pub is not None:
                await _minisign(opts, report, password, net, store, enc, pub, pub_file, log_url, state_dir, todo,
                                summary)
            if opts.sigsum is not None:
                await _sigsum(opts, net, valid, store, report, out, summary)
        finally:
            if store is not None:
                store.close()
    return summary


async def _minisign(opts: SignOptions, report: Reporter, password: Callable[[], bytes | None], net: Network,
                    store: SignatureStore, enc: EncryptedSecretKey | None, pub: PublicKey, pub_file: bytes,
                    log_url: str, state_dir: Path, todo: list[tuple[str, str, bool, bool]],
                    summary: SignSummary) -> None:
    # (3) the key, once, only if needed
    key: SecretKey | None = None
    if any(t[2] for t in todo):
        assert enc is not None
        pw = password() if enc.encrypted else None
        key = await trio.to_thread.run_sync(enc.decrypt, pw)
        key.check_matches(pub, pub_path=str(opts.pubkey_path))
        report.passed(f"secret key {opts.seckey_path} matches {opts.pubkey_path} (key id {pub.key_id_hex})")

    cfg: LogConfig | None = None
    if any(t[3] for t in todo):
        cfg = LogConfig(url=log_url, key=load_log_key(opts.log_key), store=LogStateStore(state_dir))
        await _probe_log(net, cfg, opts)

    # (4) sign, upload, verify, bounded
    limiter = trio.CapacityLimiter(opts.jobs)

    async def one(sha: str, filename: str, need_sign: bool, need_log: bool) -> None:
        async with limiter:
            await _one(opts, report, net, cfg, store, key, pub, pub_file, sha, filename, need_sign, need_log,
                       summary)

    async with trio.open_nursery() as nursery:
        for t in todo:
            nursery.start_soon(one, *t)


async def _sigsum(opts: SignOptions, net: Network, valid: list[tuple[str, str]], store: SignatureStore | None,
                  report: Reporter, out: Callable[[str], None], summary: SignSummary) -> None:
    """(5) the Sigsum path (operator/sigsum_sign.py): a verified <filename>.proof per package."""
    from .sigsum_sign import sign_with_sigsum

    assert opts.sigsum is not None
    counts = await sign_with_sigsum(net, opts.sigsum, valid, signature_dir=opts.signature_dir, store=store,
                                    jobs=opts.jobs, timeouts=opts.timeouts, dry_run=opts.dry_run, report=report,
                                    out=out)
    summary.proofs, summary.proofs_already = counts.proofs, counts.already
    summary.failed += counts.failed
    summary.first_error = summary.first_error or counts.first_error


async def _probe_log(net: Network, cfg: LogConfig, opts: SignOptions) -> None:
    """One clear line if the log cannot be reached at all, before any package is tried."""
    url = cfg.url + "/api/v1/log"
    try:
        r = await net.request("log", "GET", url, max_bytes=opts.limits.rekor_max_bytes,
                              timeout=opts.timeouts.lookup_total)
    except NetworkError as exc:
        raise type(exc)(f"the transparency log {cfg.url} is unreachable: {exc.message}") from exc
    if r.status != 200:
        raise TransparencyLogError(f"the transparency log {cfg.url} answered HTTP {r.status} to GET /api/v1/log")


async def _one(opts: SignOptions, report: Reporter, net: Network, cfg: LogConfig | None, store: SignatureStore,
               key: SecretKey | None, pub: PublicKey, pub_file: bytes, sha: str, filename: str, need_sign: bool,
               need_log: bool, summary: SignSummary) -> None:
    t_path = opts.signature_dir / (filename + ".t")
    try:
        if need_sign:
            assert key is not None
            sig_file = key.sign(sha.encode(), filename)
            await trio.to_thread.run_sync(write_atomically, t_path, sig_file)
            await trio.to_thread.run_sync(store.record_signed, sha, filename, sig_file.decode())
            summary.signed += 1
            report.passed(f"signed {filename} ({sha[:16]}…) into {t_path}")
        else:
            rec = await trio.to_thread.run_sync(store.get, sha, filename)
            assert rec is not None and rec.signature is not None
            sig_file = rec.signature.encode()
        if not need_log:
            return
        assert cfg is not None
        sig = Signature.parse(sig_file)
        entry = await prove_in_log(
            net, cfg, signature_line=sig.signature_line(), key_line=pub.key_line(), artifact=sha.encode(),
            signature_file=sig_file, pub_file=pub_file, limits=opts.limits, timeouts=opts.timeouts,
            package=filename, subject=filename, report=report.passed)
        await trio.to_thread.run_sync(store.record_verified, sha, filename, entry.log_index, entry.uuid)
        summary.proven += 1
        report.passed(f"{filename}: log entry {entry.log_index} verified (uuid {entry.uuid})")
    except TorfetchError as exc:
        summary.failed += 1
        summary.first_error = summary.first_error or exc
        print(f"{exc.one_line()} ({filename})", file=report.stream, flush=True)
        with contextlib.suppress(TorfetchError):
            await trio.to_thread.run_sync(store.record_failed, sha, filename, exc.one_line())


__all__ = ["SignOptions", "SignSummary", "run_sign", "check_filename", "write_atomically", "FAILED"]
