"""Network: streaming with caps and deadlines, error mapping, no identifying headers."""

from __future__ import annotations

import http.server
import threading
import time
from pathlib import Path

import pytest
import trio

from tests.servers.base import Handler
from tests.servers.files import FileServer
from tests.servers.socks import SocksProxy
from tests.servers.tls import make_tls
from torfetch.config import Timeouts
from torfetch.errors import ConfigError, DownloadTooLarge, FetchTimeout, NetworkError, NotFoundError, TorUnavailable
from torfetch.net.http import READ_BYTES, Network, _LargeReadBackend, normalise_proxy


@pytest.fixture
def server(tmp_path: Path):
    (tmp_path / "f.db").write_bytes(b"0123456789" * 10000)
    with FileServer(tmp_path) as s:
        yield s


async def test_stream_collects_all_chunks(server: FileServer) -> None:
    body = b"0123456789" * (3 * READ_BYTES // 10)  # larger than one read
    (server.root / "big.db").write_bytes(body)
    chunks: list[bytes] = []
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        status, _ = await net.stream("database", "GET", f"{server.url}/big.db", chunks.append, max_bytes=10**8,
                                     timeout=10)
    assert status == 200 and b"".join(chunks) == body
    assert len(chunks) > 1 and max(map(len, chunks)) <= READ_BYTES  # streamed, not one buffer


async def test_body_is_read_in_large_blocks(server: FileServer) -> None:
    # httpcore alone reads 64 KiB at a time; a loopback mirror fills larger reads (bench/fetch.py P4)
    body = bytes(range(256)) * (8 * READ_BYTES // 256)
    (server.root / "big.db").write_bytes(body)
    sizes: list[int] = []

    def sink(chunk: bytes) -> None:
        if not sizes:
            time.sleep(0.2)  # let the socket buffer fill behind the first chunk
        sizes.append(len(chunk))

    async with Network(proxy=None, timeouts=Timeouts()) as net:
        got = bytearray()
        await net.stream("database", "GET", f"{server.url}/big.db", lambda c: (sink(c), got.extend(c)),
                         max_bytes=10**8, timeout=30)
    assert bytes(got) == body
    assert max(sizes) > 64 * 1024


def test_large_reads_on_direct_and_proxied_clients() -> None:
    net = Network(proxy="socks5h://127.0.0.1:9", timeouts=Timeouts())
    for purpose in ("package", "log"):
        client = net._client(net.key_for(purpose, "http://mirror.test/x"), direct=False)
        assert isinstance(client._transport._pool._network_backend, _LargeReadBackend)
    direct = Network(proxy=None, timeouts=Timeouts())
    client = direct._client(direct.key_for("package", "http://127.0.0.1/x"), direct=True)
    assert isinstance(client._transport._pool._network_backend, _LargeReadBackend)


async def test_size_cap_stops_download(server: FileServer) -> None:
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        with pytest.raises(DownloadTooLarge, match="limit of 5000 bytes"):
            await net.stream("database", "GET", f"{server.url}/f.db", lambda c: None, max_bytes=5000, timeout=10)


async def test_deadline(server: FileServer) -> None:
    server.behaviour.rules["f.db"] = "slow"
    server.behaviour.slow_seconds = 3
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        with pytest.raises(FetchTimeout, match="longer than 0.5 s"):
            await net.stream("database", "GET", f"{server.url}/f.db", lambda c: None, max_bytes=10**6, timeout=0.5)


async def test_idle_read_timeout(server: FileServer) -> None:
    server.behaviour.rules["f.db"] = "slow"
    server.behaviour.slow_seconds = 3
    async with Network(proxy=None, timeouts=Timeouts(idle_read=0.3)) as net:
        with pytest.raises(FetchTimeout, match="timed out"):
            await net.stream("database", "GET", f"{server.url}/f.db", lambda c: None, max_bytes=10**6, timeout=30)


async def test_truncated_body_and_404(server: FileServer) -> None:
    server.behaviour.rules["f.db"] = "truncate"
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        with pytest.raises(NetworkError, match="broke the connection"):
            await net.stream("database", "GET", f"{server.url}/f.db", lambda c: None, max_bytes=10**6, timeout=10)
        with pytest.raises(NotFoundError, match="404"):
            await net.get_ok("database", f"{server.url}/missing", max_bytes=100, timeout=10)


async def test_file_urls(tmp_path: Path) -> None:
    (tmp_path / "a b.db").write_bytes(b"x" * 100)
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        body = await net.get_ok("database", f"file://{tmp_path}/a%20b.db", max_bytes=100, timeout=5)
        assert body == b"x" * 100
        with pytest.raises(DownloadTooLarge):
            await net.get_ok("database", f"file://{tmp_path}/a%20b.db", max_bytes=99, timeout=5)
        with pytest.raises(NotFoundError):
            await net.get_ok("database", f"file://{tmp_path}/nope", max_bytes=99, timeout=5)


async def test_closed_proxy_port_is_tor_unavailable_and_never_direct(server: FileServer) -> None:
    async with Network(proxy="socks5://127.0.0.1:9", timeouts=Timeouts()) as net:
        with pytest.raises(TorUnavailable):
            await net.get_ok("signature", f"{server.url}/f.db", max_bytes=10**6, timeout=10)
    assert server.requests == []


async def test_bypass_only_for_packages(server: FileServer) -> None:
    async with Network(proxy="socks5h://127.0.0.1:9", timeouts=Timeouts(), direct_purposes=frozenset({"package"})) as net:
        assert await net.get_ok("package", f"{server.url}/f.db", max_bytes=10**6, timeout=10)
        for purpose in ("signature", "log", "rebuilder", "database"):
            with pytest.raises(TorUnavailable):
                await net.get_ok(purpose, f"{server.url}/f.db", max_bytes=10**6, timeout=10)
    assert len(server.requests) == 1


def test_proxy_normalisation() -> None:
    assert normalise_proxy("socks5://127.0.0.1:9050") == "socks5h://127.0.0.1:9050"
    assert normalise_proxy("SOCKS5H://[::1]:9050") == "socks5h://[::1]:9050"
    for bad in ("http://127.0.0.1:8080", "socks5://127.0.0.1", "socks4://127.0.0.1:9050", "socks5://u:p@h:1"):
        with pytest.raises(ConfigError):
            normalise_proxy(bad)


async def test_headers_are_generic() -> None:
    seen: list[dict[str, str]] = []

    class H(http.server.BaseHTTPRequestHandler):
        def log_message(self, *a: object) -> None:
            pass

        def do_GET(self) -> None:
            seen.append({k.lower(): v for k, v in self.headers.items()})
            self.send_response(200)
            self.send_header("Set-Cookie", "track=me")
            self.send_header("Content-Length", "2")
            self.end_headers()
            self.wfile.write(b"ok")

    srv = http.server.ThreadingHTTPServer(("127.0.0.1", 0), H)
    t = threading.Thread(target=srv.serve_forever, daemon=True)
    t.start()
    try:
        url = f"http://127.0.0.1:{srv.server_address[1]}/x"
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            await net.get_ok("log", url, max_bytes=10, timeout=5)
            await net.get_ok("log", url, max_bytes=10, timeout=5)
            await net.get_ok("rebuilder", url, max_bytes=10, timeout=5)
    finally:
        srv.shutdown()
        srv.server_close()
    assert all(h["user-agent"] == "torfetch" for h in seen)
    assert all("accept-language" not in h and "cookie" not in h for h in seen), seen


async def test_malformed_urls_are_config_errors() -> None:
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        for bad in ("http://h.test:99999/x", "http:///x"):
            with pytest.raises(ConfigError, match="not a usable http"):
                await net.get_ok("database", bad, max_bytes=10, timeout=5)
        with pytest.raises(ConfigError, match="not a usable http"):
            await net.request("rebuilder", "GET", "http://h.test:99999/x", max_bytes=10, timeout=5,
                              service="http://h.test/")


class _TLSWatch(FileServer):
    """Records, per request, whether its TLS connection resumed an earlier session."""

    def __init__(self, root: Path) -> None:
        self.resumed: list[bool] = []
        super().__init__(root)

    def _handle(self, h: Handler, method: str) -> None:
        self.resumed.append(h.connection.session_reused)
        super()._handle(h, method)


async def test_https_needs_a_trusted_ca_with_the_shared_context(tmp_path: Path) -> None:
    # One TLS context serves every client now: a certificate no trusted CA signed is still refused, on a
    # second origin too (the context was not loosened by the first), and the server gets no request.
    (tmp_path / "f.db").write_bytes(b"x" * 100)
    tls = make_tls("secure.test", "other.test")
    with SocksProxy() as socks, FileServer(tmp_path).use_tls(tls.server) as secure:
        async with Network(proxy=socks.url, timeouts=Timeouts()) as net:
            for name in ("secure.test", "other.test", "secure.test"):
                # named as what it is: not "cannot reach the Tor SOCKS proxy ()" (TorUnavailable is a subclass)
                with pytest.raises(NetworkError, match=r"TLS handshake with .*\.test failed: certificate not "
                                   r"trusted \(self-signed certificate in certificate chain\)") as err:
                    await net.get_ok("database", secure.url.replace("127.0.0.1", name) + "/f.db", max_bytes=10**6,
                                     timeout=30)
                assert not isinstance(err.value, TorUnavailable) and err.value.exit_code == 3
        assert secure.requests == []
        # the same server, the tests' CA given: it was the trust, not the server, that failed
        async with Network(proxy=socks.url, timeouts=Timeouts(), verify=tls.client) as net:
            assert await net.get_ok("database", secure.url.replace("127.0.0.1", "secure.test") + "/f.db",
                                    max_bytes=10**6, timeout=30) == b"x" * 100


async def test_the_shared_tls_context_resumes_no_session_across_circuits(tmp_path: Path) -> None:
    # A resumed TLS session (ticket) would tell the server that two circuits are one client. Each purpose
    # (its own circuit) opens its own connection to one https origin; none may resume another's session.
    (tmp_path / "f.db").write_bytes(b"x" * 100)
    tls = make_tls("secure.test")
    with SocksProxy() as socks, _TLSWatch(tmp_path).use_tls(tls.server) as secure:
        url = secure.url.replace("127.0.0.1", "secure.test") + "/f.db"
        async with Network(proxy=socks.url, timeouts=Timeouts(), verify=tls.client) as net:
            for purpose in ("database", "signature", "log", "package"):
                assert await net.get_ok(purpose, url, max_bytes=10**6, timeout=30) == b"x" * 100
        assert len(socks.by_credentials()) == 4  # four circuits
        assert secure.resumed == [False] * 4


class _ClosesIdleConnections(FileServer):
    """Drops, unanswered, every request that arrives on a connection it answered before (as a server whose
    keep-alive idle timer fired while the request was on its way); ``always``: every request at all."""

    def __init__(self, root: Path, always: bool = False, half_answer: bool = False) -> None:
        self.always, self.half_answer = always, half_answer  # half_answer: a status line and half a body
        self.served_peers: set[tuple[str, int]] = set()
        self.dropped: list[tuple[str, str]] = []
        super().__init__(root)

    def _handle(self, h: Handler, method: str) -> None:
        if self.always or h.client_address in self.served_peers:
            self.dropped.append((method, h.path))
            h.rfile.read(int(h.headers.get("Content-Length") or 0))
            if self.half_answer:
                h.wfile.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100\r\n\r\n" + b"y" * 50)
                h.wfile.flush()
            h.close_connection = True
            return
        self.served_peers.add(h.client_address)
        super()._handle(h, method)


async def test_a_get_on_a_connection_the_server_closed_is_sent_again_on_a_new_one(tmp_path: Path) -> None:
    (tmp_path / "f.db").write_bytes(b"y" * 100)
    with _ClosesIdleConnections(tmp_path) as server:
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            for _ in range(3):
                assert await net.get_ok("log", f"{server.url}/f.db", max_bytes=10**6, timeout=30) == b"y" * 100
    assert server.dropped == [("GET", "/f.db")] * 2  # each reuse met a closed connection, and was re-sent
    assert len(server.served_peers) == 3  # on a new connection each time


async def test_a_post_a_begun_answer_or_a_fresh_connection_is_never_sent_twice(tmp_path: Path) -> None:
    (tmp_path / "f.db").write_bytes(b"y" * 100)
    with _ClosesIdleConnections(tmp_path) as server:
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            await net.get_ok("log", f"{server.url}/f.db", max_bytes=10**6, timeout=30)
            with pytest.raises(NetworkError, match="broke the connection"):  # not idempotent: an upload
                await net.request("log", "POST", f"{server.url}/f.db", content=b"{}", max_bytes=10**6, timeout=30)
    assert server.dropped == [("POST", "/f.db")]
    with _ClosesIdleConnections(tmp_path, half_answer=True) as server:
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            await net.get_ok("log", f"{server.url}/f.db", max_bytes=10**6, timeout=30)
            with pytest.raises(NetworkError, match="broke the connection"):  # answered: half a body is an answer
                await net.get_ok("log", f"{server.url}/f.db", max_bytes=10**6, timeout=30)
    assert server.dropped == [("GET", "/f.db")]
    with _ClosesIdleConnections(tmp_path, always=True) as server:
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            with pytest.raises(NetworkError, match="broke the connection"):  # a new connection: the server's answer
                await net.get_ok("log", f"{server.url}/f.db", max_bytes=10**6, timeout=30)
    assert server.dropped == [("GET", "/f.db")]


async def test_an_http_services_client_never_completes_a_tls_handshake(tmp_path: Path) -> None:
    # The no-CA context of an http:// origin is only ever on clients whose key names an http:// service; if an
    # https URL ever reached such a client (a caller's service= on another scheme), the handshake fails: even
    # the tests' own CA, given as verify, does not apply there.
    (tmp_path / "f.db").write_bytes(b"x" * 100)
    tls = make_tls("secure.test")
    with SocksProxy() as socks, FileServer(tmp_path).use_tls(tls.server) as secure:
        url = secure.url.replace("127.0.0.1", "secure.test")
        async with Network(proxy=socks.url, timeouts=Timeouts(), verify=tls.client) as net:
            with pytest.raises(NetworkError, match="TLS handshake with secure.test failed: certificate not trusted"):
                await net.request("rebuilder", "GET", url + "/f.db", max_bytes=10**6, timeout=30,
                                  service=url.replace("https://", "http://") + "/")
            r = await net.request("rebuilder", "GET", url + "/f.db", max_bytes=10**6, timeout=30, service=url + "/")
            assert r.body == b"x" * 100
    assert secure.requests == [("GET", "/f.db")]
