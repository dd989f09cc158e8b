"""A hostile log against the connection warm-up (GET /api/v1/log at t=0, answer dropped): whatever it answers
there, the fetch is decided by the lookup alone, ends, and tells no one else what the package is.

The log answers its first GET /api/v1/log (the warm-up: the lookup's own comes only once the signature is in)
in one of the ways below and every later request honestly; other tests: an honest warm-up and a lying
lookup, the SOCKS credentials each request used, and a signal while the warm-up is held.
"""

from __future__ import annotations

import gzip
import socket
import struct
import threading
import urllib.parse
from pathlib import Path

import pytest

from tests.repo import Repo
from tests.servers.base import Handler
from tests.servers.files import FileServer
from tests.servers.rekor import RekorServer
from tests.test_workflow_syncdb import fetch, pacman_conf, repo  # noqa: F401 (repo: the fixture)

TRICKLE_BOUND = 60.0  # seconds a never-ending answer trickles at most (the test's bound, not torfetch's)


class HostileWarmUpLog(RekorServer):
    def __init__(self, how: str, elsewhere: str = "") -> None:
        self.how, self.elsewhere = how, elsewhere
        self.warm_ups = 0
        self.stop_trickle = threading.Event()
        self.warm_peer: tuple[str, int] | None = None
        self.dropped: list[str] = []  # requests closed on unanswered
        super().__init__()

    def _dispatch(self, h: Handler, method: str) -> None:
        path = urllib.parse.urlsplit(h.path).path
        if (method, path) == ("GET", "/api/v1/log") and self.warm_ups == 0:
            self.warm_ups += 1
            self.warm_peer = h.client_address
            return self._hostile(h)
        if self.how == "idle-close-crosses-the-lookup" and h.client_address == self.warm_peer and not self.dropped:
            # The warm-up's connection sat idle while the signature (and, without a sync db, the whole
            # download) came in; the log's idle timer fired just as the lookup's request was on its way:
            # the request meets a closed connection. Idempotent GETs are retried on a fresh connection by
            # HTTP clients for exactly this (RFC 9110 §9.2.2, RFC 9112 §9.3.1).
            self.dropped.append(f"{method} {path}")
            h.close_connection = True
            return
        super()._dispatch(h, method)

    def _hostile(self, h: Handler) -> None:
        w = h.wfile
        if self.how == "idle-close-crosses-the-lookup":
            return super()._dispatch(h, "GET")  # an honest answer, keep-alive
        if self.how == "http-500":
            w.write(b"HTTP/1.1 500 Internal Server Error\r\nConnection: close\r\nContent-Length: 5\r\n\r\nerror")
        elif self.how == "redirect-elsewhere":
            w.write(b"HTTP/1.1 302 Found\r\nConnection: close\r\nLocation: " + self.elsewhere.encode()
                    + b"\r\nContent-Length: 0\r\n\r\n")
        elif self.how == "redirect-to-https":
            # the log's own port, as https: a TLS handshake with a plain HTTP server must fail, swallowed
            w.write(b"HTTP/1.1 307 Temporary Redirect\r\nConnection: close\r\nLocation: "
                    + self.url.replace("http://", "https://").encode() + b"/api/v1/log\r\nContent-Length: 0\r\n\r\n")
        elif self.how == "huge-content-length":
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 99999999999\r\n\r\n" + b"{" * 65536)
        elif self.how == "huge-chunked":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            chunk = b"x" * 65536
            for _ in range(1000):  # 64 MiB at most: past any cap torfetch has for a log answer
                try:
                    w.write(b"%x\r\n%s\r\n" % (len(chunk), chunk))
                except OSError:
                    break
        elif self.how == "gzip-bomb":
            bomb = gzip.compress(b"\0" * (64 << 20))
            w.write(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Type: application/json\r\n"
                    b"Content-Encoding: gzip\r\nContent-Length: %d\r\n\r\n%s" % (len(bomb), bomb))
        elif self.how == "reset":
            h.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
            h.close_connection = True
            h.connection.close()  # RST, no answer at all
            return
        elif self.how == "trickle-forever":
            w.write(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n")
            for _ in range(int(TRICKLE_BOUND / 0.2)):
                if self.stop_trickle.wait(0.2):
                    break
                try:
                    w.write(b"400\r\n" + b" " * 1024 + b"\r\n")  # 5 KiB/s: above any low-speed limit
                    w.flush()
                except OSError:
                    break  # torfetch hung up: the warm-up was cancelled
        elif self.how == "switching-protocols":
            w.write(b"HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: websocket\r\n\r\n")
            w.flush()
            self.stop_trickle.wait(TRICKLE_BOUND)  # then silence on the "upgraded" connection
        elif self.how == "informational-flood":
            for _ in range(int(TRICKLE_BOUND / 0.05)):  # 1xx answers, never a final one
                if self.stop_trickle.wait(0.05):
                    break
                try:
                    w.write(b"HTTP/1.1 103 Early Hints\r\nLink: </x>; rel=preload\r\n\r\n")
                    w.flush()
                except OSError:
                    break
        elif self.how == "smuggled-answer":
            # a complete answer, then bytes meant to be read as the answer to the next request on this
            # connection (the lookup): see test_an_answer_sent_ahead_on_the_warm_ups_connection_fails_closed
            body = b'{"treeSize": 1}'
            w.write(b"HTTP/1.1 200 OK\r\nContent-Length: %d\r\n\r\n%s" % (len(body), body)
                    + b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\n{}")
        h.close_connection = self.how not in ("smuggled-answer",)
        w.flush()


HOW = ["idle-close-crosses-the-lookup", "http-500", "redirect-elsewhere", "redirect-to-https", "huge-content-length",
       "huge-chunked", "gzip-bomb", "reset", "trickle-forever", "switching-protocols", "informational-flood"]


@pytest.mark.parametrize("how", HOW)
def test_a_hostile_warm_up_answer_changes_nothing(tmp_path: Path, repo: Repo, how: str) -> None:  # noqa: F811
    pkg = repo.packages["hello"]
    (tmp_path / "spy").mkdir()
    with FileServer(repo.root) as mirror, FileServer(tmp_path / "spy") as spy, \
            HostileWarmUpLog(how, elsewhere=f"{spy.url}/api/v1/log") as log:
        try:
            r, out = fetch(tmp_path, repo, mirror, log, pacman_conf(tmp_path, repo))
        finally:
            log.stop_trickle.set()
    assert log.warm_ups == 1
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    assert not list(out.parent.glob("*.tmp*")) and [p.name for p in out.parent.iterdir()] == [out.name]
    # the only thing another host may learn is that a warm-up happened: no package name, no lookup
    assert spy.requests == ([("GET", "/api/v1/log")] if how == "redirect-elsewhere" else []), spy.requests
    lookups = [p for m, p in log.requests if p.startswith("/api/v1/log/entries")]
    assert lookups, log.requests  # the lookup itself was made, on the log


@pytest.mark.parametrize("lie", ["bad_set", "wrong_body", "proof_for_other_entry"])
def test_an_honest_warm_up_does_not_excuse_a_lying_lookup(tmp_path: Path, repo: Repo, lie: str) -> None:  # noqa: F811
    # the warm-up's (dropped) answer is the true tree head; the lookup's proof is a lie: refused, nothing at -O
    with FileServer(repo.root) as mirror, RekorServer() as log:
        setattr(log.lie, lie, True)
        r, out = fetch(tmp_path, repo, mirror, log, pacman_conf(tmp_path, repo))
    assert ("GET", "/api/v1/log") in log.requests
    assert r.returncode == 1, r.stderr
    assert not out.exists() and list(out.parent.iterdir()) == []


def test_an_answer_sent_ahead_on_the_warm_ups_connection_fails_closed(tmp_path: Path, repo: Repo) -> None:  # noqa: F811
    # The log sends, behind the warm-up's answer, an answer for the next request on that connection; the
    # client reads it as the lookup's answer (h11 keeps the bytes it already received). The log answers the
    # lookup itself anyway, so it gains nothing: what it sent ahead is checked like any answer of the log.
    with FileServer(repo.root) as mirror, HostileWarmUpLog("smuggled-answer") as log:
        r, out = fetch(tmp_path, repo, mirror, log, pacman_conf(tmp_path, repo))
    assert log.warm_ups == 1
    assert r.returncode == 1, r.stderr
    assert "log entry" in r.stderr.splitlines()[-1], r.stderr
    assert not out.exists() and list(out.parent.iterdir()) == []


@pytest.mark.parametrize("how", ["idle-close-crosses-the-lookup", "redirect-elsewhere"])
def test_the_warm_up_and_the_lookup_ride_the_logs_circuit_and_only_it(tmp_path: Path, repo: Repo,  # noqa: F811
                                                                      how: str) -> None:
    # Behind the recording SOCKS proxy: warm-up, lookup (and its re-sent request after the idle close) use
    # the log's credentials; the warm-up's redirect to another host gets that host's own circuit.
    import subprocess

    from tests.servers.socks import ATYP_NAME, SocksProxy
    from tests.test_workflow_syncdb import TORFETCH

    pkg = repo.packages["hello"]
    (tmp_path / "spy").mkdir()
    out = tmp_path / "cache" / (pkg.name + ".part")
    out.parent.mkdir()
    with SocksProxy() as socks, FileServer(repo.root) as mirror, FileServer(tmp_path / "spy") as spy:
        at = lambda server, name: server.url.replace("127.0.0.1", name)  # noqa: E731
        with HostileWarmUpLog(how, elsewhere=at(spy, "elsewhere.test") + "/api/v1/log") as log:
            key = tmp_path / "rekor.pem"
            key.write_bytes(log.public_key_pem)
            cmd = [*TORFETCH, "--proxy", socks.url, "--transparency-url", at(mirror, "mirror.test") + "/sigs",
                   "--pubkey", repo.key.pub_line, "--log-url", at(log, "rekor.test"), "--log-key", str(key),
                   "--state-dir", str(tmp_path / "state"), "--pacman-conf", str(pacman_conf(tmp_path, repo)),
                   "--config", "/dev/null", "-O", str(out), at(mirror, "mirror.test") + f"/repo/{pkg.name}"]
            r = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    assert all(c.atyp == ATYP_NAME for c in socks.connects)
    by_host: dict[str, set[tuple[str | None, str | None]]] = {}
    for c in socks.connects:
        by_host.setdefault(c.host, set()).add(c.credentials)
    (log_circuit,) = by_host.pop("rekor.test")
    assert log_circuit[0] == "torfetch-log"
    connects_to_log = [c for c in socks.connects if c.host == "rekor.test"]
    if how == "idle-close-crosses-the-lookup":
        assert log.dropped and len(connects_to_log) >= 2  # the re-sent request: a new stream, the same circuit
        assert set(by_host) == {"mirror.test"}
    else:
        (other,) = by_host.pop("elsewhere.test")
        assert other[0] == "torfetch-log" and other != log_circuit
        assert spy.requests == [("GET", "/api/v1/log")]
    assert log_circuit not in by_host.get("mirror.test", set())


@pytest.mark.parametrize("sig", ["SIGTERM", "SIGINT"])
def test_a_signal_while_the_warm_up_is_held_cleans_up_and_exits_130(tmp_path: Path, repo: Repo,  # noqa: F811
                                                                    sig: str) -> None:
    # The log trickles the warm-up's answer, the mirror the package: a signal cancels both (the warm-up too),
    # one line, exit 130, nothing at -O and no temp file.
    import signal
    import subprocess
    import time

    from tests.test_workflow_syncdb import TORFETCH

    pkg = repo.packages["hello"]
    out = tmp_path / "cache" / (pkg.name + ".part")
    out.parent.mkdir()
    with FileServer(repo.root) as mirror, HostileWarmUpLog("trickle-forever") as log:
        mirror.behaviour.rules[pkg.name] = "trickle"
        mirror.behaviour.trickle_bytes, mirror.behaviour.trickle_interval = 16, 0.5
        key = tmp_path / "rekor.pem"
        key.write_bytes(log.public_key_pem)
        cmd = [*TORFETCH, "--direct", "--transparency-url", f"{mirror.url}/sigs", "--pubkey", repo.key.pub_line,
               "--log-url", log.url, "--log-key", str(key), "--state-dir", str(tmp_path / "state"),
               "--pacman-conf", str(pacman_conf(tmp_path, repo)), "--config", "/dev/null", "-O", str(out),
               f"{mirror.url}/repo/{pkg.name}"]
        defaults = lambda: [signal.signal(s, signal.SIG_DFL) for s in (signal.SIGINT, signal.SIGTERM)]  # noqa: E731
        p = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, preexec_fn=defaults)
        try:
            deadline = time.monotonic() + 60
            while not (log.warm_ups and any(out.parent.iterdir()) and ("GET", f"/repo/{pkg.name}") in mirror.requests):
                assert time.monotonic() < deadline and p.poll() is None, "torfetch never got under way"
                time.sleep(0.05)
            p.send_signal(getattr(signal, sig))
            _, err = p.communicate(timeout=30)
        finally:
            log.stop_trickle.set()
            if p.poll() is None:
                p.kill()
    assert p.returncode == 130, err
    assert err.splitlines() == [f"torfetch: interrupted by {sig}: {out.name} was not written"], err
    assert list(out.parent.iterdir()) == []
