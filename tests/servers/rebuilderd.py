"""A local rebuilderd-compatible server (v1 and v0 API shapes, real Ed25519 attestations). Tests and demo only.

Knows packages as (name, version, status, sha256 of the rebuilt file). Signs
in-toto v0.9 link attestations the way rebuilderd does (a worker key and the
daemon's key; canonical JSON as in-toto-rs) and serves the daemon key as the
same non-standard SPKI PEM at /api/v1/meta/public-keys. Switches
(``server.behaviour``) make it slow, wrong, malformed, huge, lying or BAD.
Listens on 127.0.0.1 only, in a thread (stdlib ThreadingHTTPServer).

    with RebuilderdServer(prefix="rebuild") as srv:      # or: srv.start() ... srv.stop()
        srv.add(Pkg("hello", "1.0-1", sha256=..., filename="hello-1.0-1-x86_64.pkg.tar.zst"))
        srv.behaviour.slow_seconds = 1
        ... srv.url, srv.pinned_key_hex, srv.requests, srv.max_in_flight ...

From a shell (a demo script): ``python -m tests.servers.rebuilderd --port 8484 --package PATH ...``
prints ``URL KEYHEX`` on one line, then serves until killed (see --help).
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import json
import signal
import threading
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import zstandard
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.servers.base import Serving, make_httpd


def _cjson(obj: object) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).replace("\\n", "\n").encode()


def _raw_pub(k: Ed25519PrivateKey) -> bytes:
    return k.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def keyid(k: Ed25519PrivateKey) -> str:
    return hashlib.sha256(_cjson({"keyid_hash_algorithms": ["sha256", "sha512"], "keytype": "ed25519",
                                  "keyval": {"public": _raw_pub(k).hex()}, "scheme": "ed25519"})).hexdigest()


def rebuilderd_pem(k: Ed25519PrivateKey) -> str:
    # rebuilderd's SPKI carries a NULL algorithm parameter (30 2c 30 07 06 03 2b6570 05 00 03 21 00 ‖ key)
    der = bytes.fromhex("302c300706032b65700500032100") + _raw_pub(k)
    b64 = base64.b64encode(der).decode()
    return "-----BEGIN PUBLIC KEY-----\n" + b64 + "\n-----END PUBLIC KEY-----\n"


@dataclass
class Pkg:
    name: str
    version: str
    status: str = "GOOD"  # GOOD | BAD | FAIL | UNKWN
    sha256: str | None = None  # of the rebuilt file (for the attestation)
    filename: str | None = None
    attest: str = "good"  # good | missing | wrong-key | wrong-sha | wrong-name | not-link


@dataclass
class Behaviour:
    slow_seconds: float = 0.0  # sleep before every answer
    malformed: bool = False  # truncated JSON
    huge: bool = False  # ~13 MB answer
    v0_only: bool = False  # rebuilderd < 0.26: v1 routes 404
    html_v1: bool = False  # v1 routes answer 200 with an HTML page (a web front end in the way)
    lie_good: bool = False  # v1 says GOOD for whatever is asked
    lie_attestation: str = "missing"  # with lie_good: missing (404) | invalid (wrong key) | wrong-sha
    wrong: str = ""  # "version" / "name": list the package under another version / name
    bad: bool = False  # report BAD for whatever it knows
    zstd_attestation: bool = False  # Content-Encoding: zstd even though not asked for
    chunked: bool = False  # no Content-Length (Transfer-Encoding: chunked)
    status_code: int = 0  # answer every API request with this HTTP status


class Probe:
    """Shared by several servers: how many requests were in flight at once, across all of them."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self.in_flight = 0
        self.max_in_flight = 0

    def enter(self) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)

    def leave(self) -> None:
        with self._lock:
            self.in_flight -= 1


class RebuilderdServer(Serving):
    def __init__(self, *, prefix: str = "", host: str = "127.0.0.1", port: int = 0, probe: Probe | None = None) -> None:
        if host not in ("127.0.0.1", "localhost"):
            raise ValueError("the test rebuilder listens on 127.0.0.1 only")
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.daemon_key = Ed25519PrivateKey.generate()
        self.worker_key = Ed25519PrivateKey.generate()
        self.pkgs: list[Pkg] = []
        self.behaviour = Behaviour()
        self.requests: list[str] = []
        self.headers_seen: list[dict[str, str]] = []
        self.probe = probe or Probe()
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: list[float] = []  # monotonic times requests arrived / finished
        self.finished: list[float] = []
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._lie_about = Pkg("nothing", "0-0")
        self._httpd = make_httpd("127.0.0.1", port, self._on_request)

    @property
    def url(self) -> str:
        """The base URL a client is given (with the prefix, ending in /)."""
        return f"{self.base_url}{self.prefix}/"

    @property
    def pinned_key_hex(self) -> str:
        return _raw_pub(self.daemon_key).hex()

    @property
    def public_key_pem(self) -> str:
        return rebuilderd_pem(self.daemon_key)

    def add(self, pkg: Pkg) -> Pkg:
        self.pkgs.append(pkg)
        return pkg

    def stop(self) -> None:
        self._stopping.set()  # wakes slow handlers
        super().stop()

    # -- responses ---------------------------------------------------------------------

    def attestation(self, i: int | Pkg, mode: str | None = None) -> dict:
        """The Metablock rebuilderd would serve for package ``i`` (``mode`` overrides its ``attest``)."""
        p = self.pkgs[i] if isinstance(i, int) else i
        mode = mode or p.attest
        fn = p.filename or f"{p.name}-{p.version}-x86_64.pkg.tar.zst"
        sha = p.sha256 or "00" * 32
        if mode == "wrong-sha":
            sha = hashlib.sha256(b"something else").hexdigest()
        signed = {"_type": "link" if mode != "not-link" else "layout",
                  "name": f"rebuild {fn}" if mode != "wrong-name" else "rebuild other-1-1-x86_64.pkg.tar.zst",
                  "materials": {}, "products": {fn: {"sha256": sha, "sha512": hashlib.sha512(sha.encode()).hexdigest()}},
                  "environment": None, "byproducts": {}, "command": []}
        payload = _cjson(signed)
        signer = self.daemon_key if mode not in ("wrong-key", "invalid") else Ed25519PrivateKey.generate()
        # a liar claims the daemon's keyid for a signature made with another key
        sigs = [{"keyid": keyid(self.worker_key), "sig": self.worker_key.sign(payload).hex()},
                {"keyid": keyid(self.daemon_key), "sig": signer.sign(payload).hex()}]
        return {"signatures": sigs, "signed": signed}

    def _record(self, i: int, p: Pkg, v1: bool) -> dict:
        b = self.behaviour
        name, version = p.name, p.version
        if b.wrong == "version":
            version = version + ".1"
        elif b.wrong == "name":
            name = name + "-git"
        status = "BAD" if b.bad else p.status
        common = {"name": name, "version": version, "status": status, "architecture": "x86_64",
                  "build_id": 100 + i, "artifact_url": f"https://example.invalid/{p.name}"}
        if v1:
            return {"id": i, "name": name, "version": version, "distribution": "archlinux", "release": "core",
                    "component": None, "architecture": "x86_64", "url": common["artifact_url"], "status": status,
                    "build_id": 100 + i, "artifact_id": 500 + i, "diffoscope_log_id": None,
                    "attestation_log_id": 900 + i if p.attest != "missing" else None,
                    "last_seen": "2026-11-24T00:00:00", "seen_in_last_sync": True}
        # v0 reports FAIL as BAD
        return {**common, "status": "BAD" if status == "FAIL" else status, "distro": "archlinux", "suite": "core",
                "built_at": "2026-11-24T00:00:00", "has_diffoscope": False, "has_attestation": p.attest != "missing"}

    def _send(self, h: http.server.BaseHTTPRequestHandler, code: int, body: bytes, ctype: str = "application/json",
              extra: dict[str, str] | None = None) -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        for k, v in (extra or {}).items():
            h.send_header(k, v)
        chunked = self.behaviour.chunked
        if chunked:
            h.send_header("Transfer-Encoding", "chunked")
        else:
            h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            if chunked:
                for i in range(0, len(body), 4096):
                    piece = body[i : i + 4096]
                    h.wfile.write(f"{len(piece):x}\r\n".encode() + piece + b"\r\n")
                h.wfile.write(b"0\r\n\r\n")
            else:
                h.wfile.write(body)
        except OSError:
            pass

    def _on_request(self, h: http.server.BaseHTTPRequestHandler, method: str) -> None:
        if method != "GET":
            return self._send(h, 405, b'{"error":"method not allowed"}')
        self._handle(h)

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        self.probe.enter()
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests.append(h.path)
            self.headers_seen.append({k.lower(): v for k, v in h.headers.items()})
            self.started.append(time.monotonic())
        try:
            if self.behaviour.slow_seconds:
                self._stopping.wait(self.behaviour.slow_seconds)
            self._route(h)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.finished.append(time.monotonic())
            self.probe.leave()

    def _route(self, h: http.server.BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(h.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        path = parts.path
        if not path.startswith(self.prefix + "/"):
            return self._send(h, 404, b'{"error":"not found"}')
        path = path[len(self.prefix):]
        b = self.behaviour
        is_v1 = path.startswith("/api/v1/")
        if b.status_code and path.startswith("/api/"):
            return self._send(h, b.status_code, b'{"error":"switched"}')
        if is_v1 and b.v0_only:
            return self._send(h, 404, b"Not Found", "text/plain")
        if is_v1 and b.html_v1:
            return self._send(h, 200, b"<!doctype html><html><body>rebuilderd</body></html>", "text/html")
        if b.huge and path.startswith("/api/"):
            return self._send(h, 200, b'{"records":[' + b'{"name":"x","version":"1","status":"GOOD"},' * 300000 + b'{}]}')
        if b.malformed and path.startswith("/api/"):
            return self._send(h, 200, b'{"records": [ {"name": "x", ')
        if path == "/api/v1/packages/binary":
            recs = [self._record(i, p, True) for i, p in enumerate(self.pkgs)
                    if p.name == q.get("name") and ("version" not in q or p.version == q["version"])]
            if b.lie_good:
                self._lie_about = Pkg(str(q.get("name")), str(q.get("version")))
                recs = [{"id": 1, "name": q.get("name"), "version": q.get("version"), "distribution": "archlinux",
                         "release": "core", "component": None, "architecture": "x86_64", "url": None,
                         "status": "GOOD", "build_id": 7, "artifact_id": 7, "diffoscope_log_id": None,
                         "attestation_log_id": 7, "last_seen": "2026-11-24T00:00:00", "seen_in_last_sync": True}]
            return self._send(h, 200, json.dumps({"total": len(recs), "records": recs}).encode())
        if path == "/api/v0/pkgs/list":
            recs = [self._record(i, p, False) for i, p in enumerate(self.pkgs) if p.name == q.get("name")]
            return self._send(h, 200, json.dumps(recs).encode())
        if path.startswith("/api/v1/builds/") and path.endswith("/attestation"):
            seg = path.split("/")  # ['', 'api', 'v1', 'builds', B, 'artifacts', A, 'attestation']
            try:
                build_id, artifact_id = int(seg[4]), int(seg[6])
            except (IndexError, ValueError):
                return self._send(h, 404, b"{}")
            if b.lie_good:
                if b.lie_attestation == "missing":
                    return self._send(h, 404, b'{"error":"no attestation"}')
                doc = self.attestation(self._lie_about, "invalid" if b.lie_attestation == "invalid" else "wrong-sha")
            else:
                i = build_id - 100
                if not 0 <= i < len(self.pkgs) or artifact_id != 500 + i or self.pkgs[i].attest == "missing":
                    return self._send(h, 404, b'{"error":"no attestation"}')
                doc = self.attestation(i)
            body = json.dumps(doc, indent=2).encode()
            if b.zstd_attestation:
                return self._send(h, 200, zstandard.ZstdCompressor().compress(body), extra={"Content-Encoding": "zstd"})
            return self._send(h, 200, body)
        if path == "/api/v1/meta/public-keys":
            return self._send(h, 200, json.dumps({"current": [rebuilderd_pem(self.daemon_key)]}).encode())
        return self._send(h, 404, b'{"error":"not found"}')


def package_entry(path: Path, status: str = "GOOD") -> Pkg:
    """A Pkg for a built package file: name and version from its file name, sha256 of its bytes."""
    from torfetch.pacman.filename import parse_package_filename

    fn = parse_package_filename(path.name)
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return Pkg(fn.pkgname, fn.version, status=status, sha256=h.hexdigest(), filename=path.name)


def demo_rebuilders(stack, repo) -> list[str]:
    """Three rebuilders for the demo: two honest (one pinned), one that has not rebuilt anything."""
    args: list[str] = []
    honest = [stack.enter_context(RebuilderdServer()), stack.enter_context(RebuilderdServer(prefix="rebuild"))]
    for srv in honest:
        for path in repo.packages.values():
            srv.add(package_entry(path))
    empty = stack.enter_context(RebuilderdServer())
    for srv in (*honest, empty):
        args += ["--rebuilder", srv.url]
    args += ["--rebuilder-key", f"{honest[0].url}={honest[0].pinned_key_hex}", "--required-rebuild-confirms", "2"]
    return args


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog="python -m tests.servers.rebuilderd",
                                 description="local rebuilderd-compatible test server (127.0.0.1 only); "
                                             "prints 'URL KEYHEX' and serves until killed")
    ap.add_argument("--port", type=int, default=0, help="TCP port (0: any free one)")
    ap.add_argument("--prefix", default="", help="serve under this path, e.g. 'rebuild' (like wolfpit.net/rebuild/)")
    ap.add_argument("--package", action="append", default=[], type=Path, metavar="PATH",
                    help="a package file this rebuilder reproduced (GOOD, attested); repeatable")
    ap.add_argument("--good", action="append", default=[], metavar="NAME=VERSION=SHA256=FILENAME")
    ap.add_argument("--bad", action="append", default=[], metavar="NAME=VERSION", help="report BAD for this version")
    ap.add_argument("--slow", type=float, default=0.0, metavar="S", help="sleep S seconds before every answer")
    ap.add_argument("--wrong", choices=["version", "name"], help="list packages under another version / name")
    ap.add_argument("--malformed", action="store_true")
    ap.add_argument("--huge", action="store_true")
    ap.add_argument("--v0-only", action="store_true", help="404 on the v1 API, as rebuilderd < 0.26")
    ap.add_argument("--lying", choices=["missing", "invalid", "wrong-sha"],
                    help="say GOOD for anything; the attestation is missing / signed by another key / for other bytes")
    ap.add_argument("--key-file", type=Path, help="also write the rebuilderd PEM public key here")
    args = ap.parse_args(argv)
    srv = RebuilderdServer(prefix=args.prefix, port=args.port)
    for p in args.package:
        srv.add(package_entry(p))
    for spec in args.good:
        name, version, sha, fn = spec.split("=", 3)
        srv.add(Pkg(name, version, sha256=sha, filename=fn))
    for spec in args.bad:
        name, version = spec.split("=", 1)
        srv.add(Pkg(name, version, status="BAD"))
    b = srv.behaviour
    b.slow_seconds, b.malformed, b.huge, b.v0_only = args.slow, args.malformed, args.huge, args.v0_only
    b.wrong = args.wrong or ""
    if args.lying:
        b.lie_good, b.lie_attestation = True, args.lying
    if args.key_file:
        args.key_file.write_text(srv.public_key_pem)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *a: done.set())
    srv.start()
    print(srv.url, srv.pinned_key_hex, flush=True)
    try:
        done.wait()
    except KeyboardInterrupt:
        pass
    finally:
        srv.stop()


if __name__ == "__main__":
    main()
