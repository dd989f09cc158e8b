"""``torfetch sign --sigsum-policy FILE --sigsum-key-path SECRET``: a Sigsum proof beside every package.

Per package of the db, bounded by --jobs: message = its %SHA256SUM% (32 raw bytes, what ``sigsum-submit FILE``
takes from the file), checksum = sha256(message), leaf signature = Ed25519 over "sigsum.org/v1/tree-leaf" NUL
checksum (deterministic: a resubmission after an interruption is the same leaf, and the log answers 200 at once).
(1) ``add-leaf`` until the log says the leaf is sequenced (200); (2) poll ``get-tree-head`` until a tree head
verifies against the policy (log signature, witness quorum: ``verify.sigsum.verify_tree_head``) and contains the
leaf (``get-inclusion-proof``, or root = leaf hash for a tree of one); (3) build the version-2 proof, parse it back
and verify it exactly as the fetch path will (``verify.sigsum.verify_proof``), and only then write
``<signature-dir>/<filename>.proof`` atomically and record it. Logs of the policy are tried in its order; a log
that fails or times out hands the package to the next one.

A rerun verifies the ``.proof`` already on disk against today's policy and key: one that verifies is kept (also
one made by ``sigsum-submit``), anything else is made again.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..config import Timeouts
from ..errors import FetchTimeout, NetworkError, SigsumError, SigsumQuorumError, TorfetchError
from ..net.http import Network
from ..net.sigsum_log import SigsumLogClient
from ..report import Reporter
from ..store.signatures import VERIFIED, SignatureStore
from ..verify.sigsum import leaf_signed_data, policy_cosigners, sigsum_leaf_hash, verify_proof, verify_tree_head
from ..verify.sigsum_key import key_hash
from ..verify.sigsum_policy import Policy
from ..verify.sigsum_proof import MAX_PROOF_BYTES, SigsumLeaf, SigsumProof, parse_proof, serialize_proof
from .sigsum_common import at_log, load_policy, load_secret_key, logs_with_url, raw_public

POLL_INTERVAL = 1.0  # seconds between add-leaf / get-tree-head polls (sigsum-submit: 2 s)
WAIT_REPORT_INTERVAL = 10.0  # seconds between -v lines while waiting for a tree head meeting the quorum
PROOF_WAIT = 300.0  # seconds per package and log until a cosigned proof (a public log rotates every 30 s or so)


@dataclass(frozen=True)
class SigsumSignConfig:
    policy_path: Path
    key_path: Path
    token: str | None = None  # the sigsum-token header value (net.sigsum_log.parse_token)
    poll_interval: float = POLL_INTERVAL
    proof_wait: float = PROOF_WAIT


@dataclass
class SigsumCounts:
    proofs: int = 0  # written now
    already: int = 0  # a valid proof was on disk
    failed: int = 0
    first_error: TorfetchError | None = None


@dataclass(frozen=True)
class _Ready:
    policy: Policy
    key: Ed25519PrivateKey
    pub: bytes
    keyhash: bytes
    logs: list[tuple[bytes, str]]


def proof_path(signature_dir: Path, filename: str) -> Path:
    return signature_dir / (filename + ".proof")


def _read_proof(path: Path) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read(MAX_PROOF_BYTES + 1)
    except OSError:
        return None


def proof_on_disk_ok(path: Path, sha: str, filename: str, pub: bytes, policy: Policy) -> bool:
    """Does the .proof already there verify for this package, key and policy? (Blocking: run in a thread.)"""
    return proof_on_disk_problem(path, sha, filename, pub, policy) is None


def proof_on_disk_problem(path: Path, sha: str, filename: str, pub: bytes, policy: Policy) -> str | None:
    """None if the .proof there verifies; else why not ("" when there is none). Blocking: run in a thread."""
    data = _read_proof(path)
    if data is None:
        return ""
    try:
        verify_proof(parse_proof(data, what=f"proof for {filename}"), bytes.fromhex(sha), pub, policy, filename)
    except TorfetchError as exc:
        return f"{exc.check}: {exc.message}"
    return None


def prepare(cfg: SigsumSignConfig) -> _Ready:
    policy = load_policy(cfg.policy_path)
    key = load_secret_key(cfg.key_path)
    pub = raw_public(key)
    return _Ready(policy, key, pub, key_hash(pub), logs_with_url(policy, cfg.policy_path))


async def sign_with_sigsum(net: Network, cfg: SigsumSignConfig, pkgs: list[tuple[str, str]], *,
                           signature_dir: Path, store: SignatureStore | None, jobs: int, timeouts: Timeouts,
                           dry_run: bool, report: Reporter, out: Callable[[str], None] = print) -> SigsumCounts:
    """A verified ``.proof`` for every (sha256 hex, filename) of ``pkgs`` (filenames already checked)."""
    ready = await trio.to_thread.run_sync(prepare, cfg)
    counts = SigsumCounts()
    todo: list[tuple[str, str]] = []
    for sha, filename in pkgs:
        path = proof_path(signature_dir, filename)
        problem = await trio.to_thread.run_sync(proof_on_disk_problem, path, sha, filename, ready.pub, ready.policy)
        if problem:  # damaged, of another key or log, or short of today's quorum: made again, and -v says why
            report.info(f"{filename}: {path} on disk does not verify ({problem[:300]}): submitted again")
        if problem is None:
            counts.already += 1
            rec = store.sigsum_get(sha, filename) if store is not None else None
            if store is not None and not dry_run and (rec is None or rec.state != VERIFIED):
                # a proof made elsewhere (sigsum-submit) or written just before an interruption: record it
                proof = parse_proof(_read_proof(path) or b"")
                await trio.to_thread.run_sync(store.sigsum_record_verified, sha, filename, proof.log_keyhash.hex(),
                                              proof.leaf_index, proof.cosigned_tree_head.tree_head.size)
        else:
            todo.append((sha, filename))
    if dry_run:
        for sha, filename in todo:
            out(f"proof  {filename} {sha}")
        counts.proofs = len(todo)
        return counts
    if not todo:
        return counts
    assert store is not None
    report.passed(f"Sigsum: {len(todo)} package(s) to submit with key {ready.keyhash.hex()[:16]}… "
                  f"to {', '.join(u for _, u in ready.logs)}")
    limiter = trio.CapacityLimiter(jobs)

    async def one(sha: str, filename: str) -> None:
        async with limiter:
            try:
                await _submit_one(net, cfg, ready, store, timeouts, signature_dir, sha, filename, report)
                counts.proofs += 1
            except TorfetchError as exc:
                counts.failed += 1
                counts.first_error = counts.first_error or exc
                print(f"{exc.one_line()} ({filename})", file=report.stream, flush=True)
                await trio.to_thread.run_sync(store.sigsum_record_failed, sha, filename, exc.one_line())

    async with trio.open_nursery() as nursery:
        for sha, filename in todo:
            nursery.start_soon(one, sha, filename)
    return counts


async def _submit_one(net: Network, cfg: SigsumSignConfig, ready: _Ready, store: SignatureStore, timeouts: Timeouts,
                      signature_dir: Path, sha: str, filename: str, report: Reporter) -> None:
    message = bytes.fromhex(sha)
    checksum = hashlib.sha256(message).digest()
    signature = ready.key.sign(leaf_signed_data(checksum))
    leaf_hash = sigsum_leaf_hash(SigsumLeaf(checksum, signature, ready.keyhash))
    failures: list[TorfetchError] = []
    for log_kh, url in ready.logs:
        client = SigsumLogClient.create(net, url, timeouts.lookup_total, cfg.token)
        try:
            proof = await _proof_from(client, cfg, ready, store, log_kh, message, signature, leaf_hash, sha, filename,
                                      report)
        except (NetworkError, SigsumError) as exc:
            exc = at_log(exc, url, cfg.policy_path)  # which log failed, and where its URL came from
            failures.append(exc)
            if len(ready.logs) > 1:
                report.detail(f"{filename}: {exc.one_line()}; trying the next log")
            continue
        data = serialize_proof(proof)
        # the fetch path's check, on the bytes that will be served, before anything is written
        verified = verify_proof(parse_proof(data, what=f"proof for {filename}"), message, ready.pub, ready.policy,
                                filename)
        from .signer import write_atomically  # one atomic writer for .t and .proof

        path = proof_path(signature_dir, filename)
        await trio.to_thread.run_sync(write_atomically, path, data)
        await trio.to_thread.run_sync(store.sigsum_record_verified, sha, filename, log_kh.hex(), verified.leaf_index,
                                      verified.tree_head.size)
        report.passed(f"{filename}: Sigsum leaf {verified.leaf_index} in tree {verified.tree_head.size} of {url}, "
                      f"{len(verified.tree_head.witnesses)} witness cosignature(s); proof written to {path}")
        return
    if len(failures) == 1:
        raise failures[0]
    raise type(failures[-1])(f"no log of the policy gave a proof for {filename}: "
                             + "; ".join(f.message for f in failures)[:600])


async def _proof_from(client: SigsumLogClient, cfg: SigsumSignConfig, ready: _Ready, store: SignatureStore,
                      log_kh: bytes, message: bytes, signature: bytes, leaf_hash: bytes, sha: str,
                      filename: str, report: Reporter) -> SigsumProof:
    last: TorfetchError | None = None
    next_report = trio.current_time()
    try:
        with trio.fail_after(cfg.proof_wait):
            for _ in range(100_000):  # bounded in time above; in count here
                if await client.add_leaf(message, signature, ready.pub):
                    break
                await trio.sleep(cfg.poll_interval)
            await trio.to_thread.run_sync(store.sigsum_record_submitted, sha, filename, log_kh.hex())
            for _ in range(100_000):
                cth = await client.tree_head()
                try:
                    verify_tree_head(ready.policy, log_kh, cth, what=f"tree head of Sigsum log {client.url}")
                except SigsumQuorumError as exc:
                    last = exc  # not cosigned enough yet: the witnesses cosign at the log's next rotation
                    if trio.current_time() >= next_report:  # can take minutes: say so at -v, bounded
                        next_report = trio.current_time() + WAIT_REPORT_INTERVAL
                        have = len(policy_cosigners(ready.policy, log_kh, cth)[0])
                        report.info(f"{filename}: waiting for a tree head of log {client.url} meeting the policy's "
                                    f"quorum: {have} of {ready.policy.required_cosignatures()} cosignatures so far")
                    await trio.sleep(cfg.poll_interval)
                    continue
                size = cth.tree_head.size
                found: tuple[int, tuple[bytes, ...]] | None = None
                if size == 1 and cth.tree_head.root_hash == leaf_hash:
                    found = (0, ())
                elif size > 1:
                    found = await client.inclusion_proof(size, leaf_hash)
                if found is None:
                    await trio.sleep(cfg.poll_interval)  # sequenced, but not yet in a published tree head
                    continue
                return SigsumProof(2, log_kh, ready.keyhash, signature, cth, found[0], found[1])
    except trio.TooSlowError:
        why = f" (last: {last.message})" if last is not None else ""
        raise FetchTimeout(f"Sigsum log {client.url}: no cosigned tree head including {filename} within "
                           f"{cfg.proof_wait:g} s{why}") from None
    raise FetchTimeout(f"Sigsum log {client.url}: gave up polling for {filename}")
