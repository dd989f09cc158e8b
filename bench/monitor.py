"""`torfetch monitor` at scale: N log entries for one key, all but a few in the repository db.

    .venv/bin/python bench/monitor.py [--n 1000000] [--rogue 3] [--jobs 4] [--cache /tmp/torfetch-bench-monitor]

What is pre-built (once, cached under --cache, keyed by N) and why that is honest:
  * the log's ECDSA key and one real signed entry timestamp (SET) per entry, signed at build time: real Rekor
    re-signs on every read, but a SET signed earlier is exactly as valid, and signing 10^6 of them per run
    would measure the server, not the monitor;
  * the entry bodies are real canonical `rekord` bodies for the operator's minisign key, but their minisign
    signature bytes are filler: the monitor never checks an entry's minisign signature (it cannot for a
    rogue entry, whose artifact it does not know; Rekor checked it at upload);
  * the repository db (N - rogue packages, zstd), in repo-add's desc format.
The server (a separate process, so its memory is not counted) computes the RFC 6962 tree once, signs one
checkpoint, and answers the real API: POST /api/v1/index/retrieve (all N UUIDs), POST
/api/v1/log/entries/retrieve (10 entries per request, Rekor's limit, each with an inclusion proof and the
checkpoint), GET /api/v1/log, GET /api/v1/log/proof.

Measured, in the same run: the baseline (a plain client making the same requests — index search and N/10
batch fetches, same concurrency — and discarding the answers: the HTTP and server floor), the monitor's
first run (everything new: verify N inclusion proofs, classify, commit; peak RSS of the monitor process via
wait4), and a second run (nothing new). The monitor must report exactly the rogue entries.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import io
import json
import multiprocessing
import os
import socket
import subprocess
import sys
import tarfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

OFFSET = 1000  # an inactive shard before this one: global index = OFFSET + shard index
TREE_ID = 77
T0 = 1_790_000_000
MINISIGN_KEY = b"Ed" + bytes(range(8)) + hashlib.sha256(b"bench operator").digest()
KEY_LINE = base64.b64encode(MINISIGN_KEY)
PUB_LINE = KEY_LINE.decode()


def package_sha(i: int) -> str:
    return hashlib.sha256(b"bench package %d" % i).hexdigest()


def body(i: int) -> bytes:
    from torfetch.verify.rekor import rekord_body

    sig_line = base64.b64encode(b"ED" + MINISIGN_KEY[2:10] + hashlib.sha512(b"sig %d" % i).digest())
    return rekord_body(sig_line, KEY_LINE, package_sha(i).encode())


def _sign_range(args: tuple[bytes, str, int, int]) -> bytes:
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem, log_id, start, stop = args
    key = serialization.load_pem_private_key(pem, None)
    out = bytearray()
    for i in range(start, stop):
        payload = json.dumps({"body": base64.b64encode(body(i)).decode(), "integratedTime": T0 + i // 100,
                              "logID": log_id, "logIndex": OFFSET + i}, sort_keys=True, separators=(",", ":"))
        sig = key.sign(payload.encode(), ec.ECDSA(hashes.SHA256()))
        out += bytes([len(sig)]) + sig.ljust(72, b"\0")
    return bytes(out)


def build(cache: Path, n: int, rogue: list[int]) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    import zstandard

    if (cache / "meta.json").exists() and json.loads((cache / "meta.json").read_text()) == {"n": n, "rogue": rogue}:
        return
    cache.mkdir(parents=True, exist_ok=True)
    t = time.perf_counter()
    key = ec.generate_private_key(ec.SECP256R1())
    pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    log_id = hashlib.sha256(der).hexdigest()
    step = 20000
    with multiprocessing.Pool(os.cpu_count() or 2) as pool:
        parts = pool.map(_sign_range, [(pem, log_id, s, min(s + step, n)) for s in range(0, n, step)])
    (cache / "sets.bin").write_bytes(b"".join(parts))
    (cache / "log.key").write_bytes(pem)
    (cache / "log.pem").write_bytes(key.public_key().public_bytes(serialization.Encoding.PEM,
                                                                  serialization.PublicFormat.SubjectPublicKeyInfo))
    skip = set(rogue)
    cctx = zstandard.ZstdCompressor()
    with open(cache / "repo.db", "wb") as f, cctx.stream_writer(f) as w:
        for i in range(n):
            if i in skip:
                continue
            name, ver = f"p{i}", "1-1"
            desc = (f"%FILENAME%\n{name}-{ver}-x86_64.pkg.tar.zst\n\n%NAME%\n{name}\n\n%VERSION%\n{ver}\n\n"
                    f"%SHA256SUM%\n{package_sha(i)}\n\n").encode()
            ti = tarfile.TarInfo(f"{name}-{ver}/desc")
            ti.size = len(desc)
            w.write(ti.tobuf(format=tarfile.USTAR_FORMAT) + desc + b"\0" * (-len(desc) % 512))
        w.write(b"\0" * 1024)
    (cache / "meta.json").write_text(json.dumps({"n": n, "rogue": rogue}))
    print(f"built {n} entries (SETs signed) and a {n - len(rogue)}-package db in {time.perf_counter() - t:.1f} s",
          flush=True)


# --- the server (runs in its own process) -------------------------------------------------------


def serve(cache: Path, port_file: Path) -> None:
    from cryptography.hazmat.primitives import serialization

    from tests.servers.base import make_httpd
    from torfetch.verify.checkpoint import Checkpoint, sign_checkpoint
    from torfetch.verify.merkle import leaf_hash, node_hash

    n = json.loads((cache / "meta.json").read_text())["n"]
    key = serialization.load_pem_private_key((cache / "log.key").read_bytes(), None)
    der = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    log_id = hashlib.sha256(der).hexdigest()
    sets = (cache / "sets.bin").read_bytes()
    levels = [[leaf_hash(body(i)) for i in range(n)]]
    while len(levels[-1]) > 1:
        prev = levels[-1]
        nxt = [node_hash(prev[j], prev[j + 1]) for j in range(0, len(prev) - 1, 2)]
        if len(prev) % 2:
            nxt.append(prev[-1])  # RFC 6962's tree, built bottom-up: an odd last node moves up unchanged
        levels.append(nxt)
    root = levels[-1][0]
    index = {h: i for i, h in enumerate(levels[0])}
    origin = f"rekor.bench.test - {TREE_ID}"
    note = sign_checkpoint(Checkpoint(origin, n, root, ()), "rekor.bench.test", key)
    uuid_list = json.dumps([f"{TREE_ID:016x}{h.hex()}" for h in levels[0]]).encode()

    def proof(i: int) -> list[str]:
        out = []
        for level in levels[:-1]:
            sib = i ^ 1
            if sib < len(level):
                out.append(level[sib].hex())
            i >>= 1
        return out

    def entry(i: int) -> dict:
        b = base64.b64encode(body(i)).decode()
        ln = sets[i * 73]
        set_sig = base64.b64encode(sets[i * 73 + 1: i * 73 + 1 + ln]).decode()
        return {f"{TREE_ID:016x}{levels[0][i].hex()}": {
            "body": b, "integratedTime": T0 + i // 100, "logID": log_id, "logIndex": OFFSET + i,
            "verification": {"inclusionProof": {"logIndex": i, "treeSize": n, "rootHash": root.hex(),
                                                "hashes": proof(i), "checkpoint": note},
                             "signedEntryTimestamp": set_sig}}}

    def send(h, code: int, data: bytes) -> None:
        # headers and body leave at once: no Nagle/delayed-ACK stall between two small writes
        h.connection.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        h.send_response(code)
        h.send_header("Content-Type", "application/json")
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        h.wfile.write(data)

    def handle(h, method: str) -> None:
        path = h.path.split("?")[0]
        raw = h.rfile.read(int(h.headers.get("Content-Length") or 0)) if method == "POST" else b""
        if method == "POST" and path == "/api/v1/index/retrieve":
            content = base64.b64decode(json.loads(raw)["publicKey"]["content"])
            return send(h, 200, uuid_list if KEY_LINE in content else b"[]")
        if method == "POST" and path == "/api/v1/log/entries/retrieve":
            uuids = json.loads(raw)["entryUUIDs"][:10]
            found = [index.get(bytes.fromhex(u[-64:])) for u in uuids]
            return send(h, 200, json.dumps([entry(i) for i in found if i is not None]).encode())
        if method == "GET" and path == "/api/v1/log":
            return send(h, 200, json.dumps({"rootHash": root.hex(), "treeSize": n, "treeID": str(TREE_ID),
                                            "signedTreeHead": note}).encode())
        return send(h, 404, b'{"code":404}')

    httpd = make_httpd("127.0.0.1", 0, handle)
    port_file.write_text(str(httpd.server_address[1]))
    httpd.serve_forever()


# --- the measurements ----------------------------------------------------------------------------


async def baseline(url: str, n: int, jobs: int) -> tuple[float, float]:
    """The same requests as the monitor, answers discarded: (wall seconds, this client's CPU seconds)."""
    import trio

    from torfetch.config import Timeouts
    from torfetch.net.http import Network
    from torfetch.verify.monitor import UuidListParser, retrieve_request, search_request

    t, cpu = time.perf_counter(), time.process_time()
    uuids: list[str] = []
    parser = UuidListParser()
    pub_file = b"untrusted comment: bench\n" + KEY_LINE + b"\n"
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        await net.stream("log", "POST", url + "/api/v1/index/retrieve", lambda c: uuids.extend(parser.feed(c)),
                         content=search_request(pub_file), max_bytes=1 << 33, timeout=3600)
        limiter = trio.CapacityLimiter(jobs)

        async def one(batch: list[str]) -> None:
            async with limiter:
                r = await net.request("log", "POST", url + "/api/v1/log/entries/retrieve",
                                      content=retrieve_request(batch), max_bytes=1 << 22, timeout=600)
                assert r.status == 200

        for start in range(0, len(uuids), 2000):
            async with trio.open_nursery() as nursery:
                for i in range(start, min(start + 2000, len(uuids)), 10):
                    nursery.start_soon(one, uuids[i:i + 10])
    assert len(uuids) == n
    return time.perf_counter() - t, time.process_time() - cpu


def run_monitor(url: str, cache: Path, state: Path, jobs: int) -> tuple[float, float, int, subprocess.CompletedProcess]:
    torfetch = str(Path(sys.executable).with_name("torfetch"))
    cmd = [torfetch, "monitor", "--pubkey", PUB_LINE, "--repo-db", str(cache / "repo.db"), "--log-url", url,
           "--log-key", str(cache / "log.pem"), "--state-dir", str(state), "--jobs", str(jobs), "--json"]
    import tempfile

    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        t = time.perf_counter()
        p = subprocess.Popen(cmd, stdout=out, stderr=err)
        _, status, usage = os.wait4(p.pid, 0)  # this child's own rusage: its peak RSS, not the server's
        elapsed = time.perf_counter() - t
        p.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0)
        err.seek(0)
        cpu = usage.ru_utime + usage.ru_stime
        return elapsed, cpu, usage.ru_maxrss, subprocess.CompletedProcess(cmd, p.returncode, out.read().decode(),
                                                                     err.read().decode())


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--n", type=int, default=1_000_000)
    ap.add_argument("--rogue", type=int, default=3)
    ap.add_argument("--jobs", type=int, default=4)
    ap.add_argument("--cache", type=Path, default=Path("/tmp/torfetch-bench-monitor"))
    ap.add_argument("--serve", type=Path, help=argparse.SUPPRESS)
    args = ap.parse_args()
    cache = args.cache / str(args.n)
    if args.serve:
        return serve(cache, args.serve)
    rogue = sorted({args.n // 3, args.n // 2, args.n - 1})[: args.rogue]
    build(cache, args.n, rogue)

    import tempfile

    import trio

    with tempfile.TemporaryDirectory() as tmp:
        port_file = Path(tmp) / "port"
        t = time.perf_counter()
        server = subprocess.Popen([sys.executable, __file__, "--n", str(args.n), "--cache", str(args.cache),
                                   "--serve", str(port_file)])
        try:
            for _ in range(6000):  # bounded: 10 min for the server to build its tree
                if port_file.exists() and port_file.read_text():
                    break
                if server.poll() is not None:
                    raise SystemExit("bench server died")
                time.sleep(0.1)
            url = f"http://127.0.0.1:{port_file.read_text()}"
            print(f"server up ({args.n} entries, tree built) in {time.perf_counter() - t:.1f} s", flush=True)
            base, base_cpu = trio.run(baseline, url, args.n, args.jobs)
            print(f"baseline (same requests, answers discarded): {base:.1f} s, client CPU {base_cpu:.1f} s "
                  f"({base_cpu / args.n * 1e6:.0f} us/entry)", flush=True)
            state = Path(tmp) / "state"
            first, cpu, rss, r = run_monitor(url, cache, state, args.jobs)
            doc = json.loads(r.stdout) if r.stdout.strip() else {}
            got = sorted(a["log_index"] - OFFSET for a in doc.get("alerts", []))
            ok = r.returncode == 1 and got == rogue
            print(f"monitor, first run: {first:.1f} s ({first / base:.2f}x baseline; {args.n / first:,.0f} entries/s), "
                  f"monitor CPU {cpu:.1f} s ({cpu / args.n * 1e6:.0f} us/entry), peak RSS {rss / 1024:.1f} MiB; alerts {got} {'== planted' if ok else '!= planted ' + str(rogue)}",
                  flush=True)
            if not ok:
                print(r.stderr[-2000:], file=sys.stderr)
            second, cpu2, rss2, r2 = run_monitor(url, cache, state, args.jobs)
            print(f"monitor, second run (nothing new): {second:.1f} s ({second / first:.3f}x the first), "
                  f"CPU {cpu2:.1f} s, peak RSS {rss2 / 1024:.1f} MiB; exit {r2.returncode}", flush=True)
        finally:
            server.terminate()
            server.wait(timeout=30)


if __name__ == "__main__":
    main()
