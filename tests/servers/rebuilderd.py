"""A local rebuilderd-compatible server (v1 and v0 API shapes, real Ed25519 attestations). Tests and demo only.

Knows packages as (name, version, status, sha256 of the rebuilt file). Signs
in-toto v0.9 link attestations the way rebuilderd does (a worker key and the
daemon's key; canonical JSON as in-toto-rs) and serves the daemon key as the
same non-standard SPKI PEM. Switches make it slow, wrong, malformed, huge or
lying.
"""

from __future__ import annotations

import argparse
import base64
import hashlib
import http.server
import json
import threading
import time
import urllib.parse
from dataclasses import dataclass, field

from cryptography.hazmat.primitives import serialization

from tests.servers.base import Serving, make_httpd
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey


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
    status: str = "GOOD"
    sha256: str | None = None  # of the rebuilt file (for the attestation)
    filename: str | None = None
    attest: str = "good"  # good | missing | wrong-key | wrong-sha | wrong-name


@dataclass
class Behaviour:
    slow_seconds: float = 0.0
    malformed: bool = False
    huge: bool = False
    v0_only: bool = False
    lie_good: bool = False  # say GOOD for anything asked, attestations absent


class RebuilderdServer(Serving):
    def __init__(self, *, prefix: str = "", host: str = "127.0.0.1", port: int = 0) -> None:
        self.prefix = "/" + prefix.strip("/") if prefix.strip("/") else ""
        self.daemon_key = Ed25519PrivateKey.generate()
        self.worker_key = Ed25519PrivateKey.generate()
        self.pkgs: list[Pkg] = []
        self.behaviour = Behaviour()
        self.requests: list[str] = []
        self.in_flight = 0
        self.max_in_flight = 0
        self.started: list[float] = []  # monotonic times requests arrived / finished
        self.finished: list[float] = []
        self._lock = threading.Lock()
        self._httpd = make_httpd(host, port, lambda h, method: self._handle(h))

    @property
    def url(self) -> str:
        return f"{self.base_url}{self.prefix}/"

    @property
    def pinned_key_hex(self) -> str:
        return _raw_pub(self.daemon_key).hex()

    def add(self, pkg: Pkg) -> Pkg:
        self.pkgs.append(pkg)
        return pkg

    # -- responses ---------------------------------------------------------------------

    def attestation(self, i: int) -> dict:
        p = self.pkgs[i]
        fn = p.filename or f"{p.name}-{p.version}-x86_64.pkg.tar.zst"
        sha = p.sha256 or "00" * 32
        if p.attest == "wrong-sha":
            sha = hashlib.sha256(b"something else").hexdigest()
        signed = {"_type": "link", "name": f"rebuild {fn}" if p.attest != "wrong-name" else "rebuild other.pkg.tar.zst",
                  "materials": {}, "products": {fn: {"sha256": sha, "sha512": hashlib.sha512(sha.encode()).hexdigest()}},
                  "environment": None, "byproducts": {}, "command": []}
        payload = _cjson(signed)
        signer = self.daemon_key if p.attest != "wrong-key" else Ed25519PrivateKey.generate()
        sigs = [{"keyid": keyid(self.worker_key), "sig": self.worker_key.sign(payload).hex()},
                {"keyid": keyid(signer), "sig": signer.sign(payload).hex()}]
        return {"signatures": sigs, "signed": signed}

    def _record(self, i: int, p: Pkg, v1: bool) -> dict:
        common = {"name": p.name, "version": p.version, "status": p.status, "architecture": "x86_64",
                  "build_id": 100 + i, "artifact_url": f"https://example.invalid/{p.name}"}
        if v1:
            return {**common, "id": i, "distribution": "archlinux", "release": "core", "component": None,
                    "url": common["artifact_url"], "artifact_id": 500 + i, "diffoscope_log_id": None,
                    "attestation_log_id": 900 + i, "last_seen": "2026-11-24T00:00:00", "seen_in_last_sync": True}
        return {**common, "distro": "archlinux", "suite": "core", "built_at": "2026-11-24T00:00:00",
                "has_diffoscope": False, "has_attestation": p.attest != "missing"}

    def _send(self, h: http.server.BaseHTTPRequestHandler, code: int, body: bytes, ctype: str = "application/json") -> None:
        h.send_response(code)
        h.send_header("Content-Type", ctype)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body)
        except OSError:
            pass

    def _handle(self, h: http.server.BaseHTTPRequestHandler) -> None:
        with self._lock:
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            self.requests.append(h.path)
            self.started.append(time.monotonic())
        try:
            if self.behaviour.slow_seconds:
                time.sleep(self.behaviour.slow_seconds)
            self._route(h)
        finally:
            with self._lock:
                self.in_flight -= 1
                self.finished.append(time.monotonic())

    def _route(self, h: http.server.BaseHTTPRequestHandler) -> None:
        parts = urllib.parse.urlsplit(h.path)
        q = {k: v[0] for k, v in urllib.parse.parse_qs(parts.query).items()}
        path = parts.path
        if not path.startswith(self.prefix + "/"):
            return self._send(h, 404, b'{"error":"not found"}')
        path = path[len(self.prefix):]
        b = self.behaviour
        if b.huge:
            return self._send(h, 200, b'{"records":[' + b'{"name":"x","version":"1","status":"GOOD"},' * 300000 + b'{}]}')
        if b.malformed:
            return self._send(h, 200, b'{"records": [ {"name": "x", ')
        if path == "/api/v1/packages/binary" and not b.v0_only:
            recs = [self._record(i, p, True) for i, p in enumerate(self.pkgs)
                    if p.name == q.get("name") and ("version" not in q or p.version == q["version"])]
            if b.lie_good:
                recs = [{"id": 1, "name": q.get("name"), "version": q.get("version"), "status": "GOOD",
                         "build_id": 1, "artifact_id": 1}]
            return self._send(h, 200, json.dumps({"total": len(recs), "records": recs}).encode())
        if path == "/api/v0/pkgs/list":
            recs = [self._record(i, p, False) for i, p in enumerate(self.pkgs) if p.name == q.get("name")]
            return self._send(h, 200, json.dumps(recs).encode())
        if path.startswith("/api/v1/builds/") and path.endswith("/attestation") and not b.v0_only:
            try:
                build_id = int(path.split("/")[4])
            except (IndexError, ValueError):
                return self._send(h, 404, b"{}")
            i = build_id - 100
            if b.lie_good or not 0 <= i < len(self.pkgs) or self.pkgs[i].attest == "missing":
                return self._send(h, 404, b'{"error":"no attestation"}')
            return self._send(h, 200, json.dumps(self.attestation(i)).encode())
        if path == "/api/v1/meta/public-keys":
            return self._send(h, 200, json.dumps({"current": [rebuilderd_pem(self.daemon_key)]}).encode())
        return self._send(h, 404, b'{"error":"not found"}')


def demo_rebuilders(stack, repo) -> list[str]:
    """Three rebuilders for the demo: two honest (one pinned), one that has not rebuilt anything."""
    from tests.repo import sha256_file

    args: list[str] = []
    honest = [stack.enter_context(RebuilderdServer()), stack.enter_context(RebuilderdServer(prefix="rebuild"))]
    for srv in honest:
        for name, path in repo.packages.items():
            ver = path.name[len(name) + 1:].rsplit("-", 1)[0]
            srv.add(Pkg(name, ver, sha256=sha256_file(path), filename=path.name))
    empty = stack.enter_context(RebuilderdServer())
    for srv in (*honest, empty):
        args += ["--rebuilder", srv.url]
    args += ["--rebuilder-key", f"{honest[0].url}={honest[0].pinned_key_hex}", "--required-rebuild-confirms", "2"]
    return args


def main() -> None:
    ap = argparse.ArgumentParser(description="local rebuilderd-compatible test server")
    ap.add_argument("--port", type=int, default=0)
    ap.add_argument("--prefix", default="")
    ap.add_argument("--good", action="append", default=[], metavar="NAME=VERSION=SHA256=FILENAME")
    args = ap.parse_args()
    srv = RebuilderdServer(prefix=args.prefix, port=args.port)
    for spec in args.good:
        name, version, sha, fn = spec.split("=", 3)
        srv.add(Pkg(name, version, sha256=sha, filename=fn))
    print(srv.url, srv.pinned_key_hex, flush=True)
    srv._httpd.serve_forever()


if __name__ == "__main__":
    main()
