"""Redirects behind the recording SOCKS proxy: bounded, http(s) only, every hop proxied, each on its own origin's circuit."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.servers.files import FileServer
from tests.servers.socks import ATYP_NAME, SocksProxy
from tests.servers.tls import make_tls
from torfetch.config import Timeouts
from torfetch.errors import NetworkError
from torfetch.net.http import Network
from torfetch.net.isolation import IsolationPolicy

BODY = b"the real file\n" * 100


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[FileServer]:
    (tmp_path / "real.db").write_bytes(BODY)
    with FileServer(tmp_path) as s:
        yield s


@pytest.fixture
def socks() -> Iterator[SocksProxy]:
    with SocksProxy() as p:
        yield p


def at(server: FileServer, name: str) -> str:
    """The server's URL under a test name only the proxy can resolve."""
    return server.url.replace("127.0.0.1", name)


async def fetch(socks: SocksProxy, url: str, *, purpose: str = "database", package: str = "",
                isolation: IsolationPolicy | None = None, **kw) -> bytes:
    chunks: list[bytes] = []
    async with Network(proxy=socks.url, timeouts=Timeouts(), isolation=isolation, **kw) as net:
        await net.stream(purpose, "GET", url, chunks.append, max_bytes=10**6, timeout=30, package=package)
    return b"".join(chunks)


async def test_cross_host_redirect_rides_the_new_hosts_circuit(mirror: FileServer, socks: SocksProxy) -> None:
    mirror.behaviour.redirects["/core.db"] = (302, at(mirror, "mirror2.test") + "/real.db")
    assert await fetch(socks, at(mirror, "mirror.test") + "/core.db") == BODY
    first, second = socks.connects
    assert (first.host, second.host) == ("mirror.test", "mirror2.test")
    assert all(c.atyp == ATYP_NAME for c in socks.connects)  # names, resolved by the proxy
    assert first.username == second.username == "torfetch-database"  # same purpose ...
    assert first.password != second.password  # ... but each origin on its own circuit


async def test_same_origin_redirect_keeps_the_circuit(mirror: FileServer, socks: SocksProxy) -> None:
    mirror.behaviour.redirects["/core.db"] = (301, "/real.db")  # relative Location
    assert await fetch(socks, at(mirror, "mirror.test") + "/core.db") == BODY
    assert [c.host for c in socks.connects] == ["mirror.test"] * len(socks.connects)
    assert len(socks.by_credentials()) == 1
    assert [p for _, p in mirror.requests] == ["/core.db", "/real.db"]


async def test_another_port_on_the_same_host_is_another_circuit(mirror: FileServer, tmp_path: Path,
                                                                socks: SocksProxy) -> None:
    with FileServer(tmp_path) as other:
        mirror.behaviour.redirects["/core.db"] = (307, at(other, "mirror.test") + "/real.db")
        assert await fetch(socks, at(mirror, "mirror.test") + "/core.db") == BODY
    assert {c.host for c in socks.connects} == {"mirror.test"}
    assert len({c.port for c in socks.connects}) == 2
    assert len(socks.by_credentials()) == 2


async def test_redirect_scope_follows_isolate_package(mirror: FileServer, socks: SocksProxy) -> None:
    mirror.behaviour.redirects["/a.db"] = (302, at(mirror, "mirror2.test") + "/real.db")
    policy = IsolationPolicy.new("package")
    for pkg in ("a-1-1-any.pkg.tar.zst", "b-1-1-any.pkg.tar.zst"):
        async with Network(proxy=socks.url, timeouts=Timeouts(), isolation=policy) as net:
            await net.get_ok("package", at(mirror, "mirror.test") + "/a.db", max_bytes=10**6, timeout=30, package=pkg)
    hop2 = [c.password for c in socks.connects if c.host == "mirror2.test"]
    assert len(hop2) == 2 and hop2[0] != hop2[1]  # the redirect target is still per package


async def test_five_redirects_are_followed_six_are_refused(mirror: FileServer, socks: SocksProxy) -> None:
    for i in range(6):
        mirror.behaviour.redirects[f"/r{i}"] = (302, at(mirror, f"m{i + 1}.test") + f"/r{i + 1}")
    mirror.behaviour.redirects["/r5"] = (302, "/real.db")
    # r1 → … → r5 → real.db: five redirects, fine; every hop went through the proxy
    assert await fetch(socks, at(mirror, "m1.test") + "/r1") == BODY
    assert [p for _, p in mirror.requests] == ["/r1", "/r2", "/r3", "/r4", "/r5", "/real.db"]
    assert sorted({c.host for c in socks.connects}) == [f"m{i}.test" for i in range(1, 6)]
    assert all(c.allowed for c in socks.connects)
    socks.clear()
    mirror.requests.clear()
    # r0 → … → r5 → real.db: six redirects; refused before the seventh request
    with pytest.raises(NetworkError, match="more than 5 redirects"):
        await fetch(socks, at(mirror, "m0.test") + "/r0")
    assert [p for _, p in mirror.requests] == [f"/r{i}" for i in range(6)]
    assert sorted({c.host for c in socks.connects}) == [f"m{i}.test" for i in range(6)]


@pytest.mark.parametrize("target", ["file:///etc/passwd", "ftp://mirror.test/real.db", "gopher://x.test/"])
async def test_redirect_off_http_is_refused(mirror: FileServer, socks: SocksProxy, target: str) -> None:
    mirror.behaviour.redirects["/core.db"] = (302, target)
    with pytest.raises(NetworkError, match=f"refusing a redirect to {target.split(':')[0]}://"):
        await fetch(socks, at(mirror, "mirror.test") + "/core.db")
    assert [c.host for c in socks.connects] == ["mirror.test"]


async def test_https_to_http_downgrade_is_refused(tmp_path: Path, socks: SocksProxy) -> None:
    (tmp_path / "real.db").write_bytes(BODY)
    tls = make_tls("secure.test")
    with FileServer(tmp_path).use_tls(tls.server) as secure, FileServer(tmp_path) as plain:
        secure.behaviour.redirects["/up.db"] = (302, at(secure, "secure.test") + "/real.db")
        secure.behaviour.redirects["/down.db"] = (302, at(plain, "plain.test") + "/real.db")
        # https → https works (and proves the TLS server is reachable through the proxy) ...
        assert await fetch(socks, at(secure, "secure.test") + "/up.db", verify=tls.client) == BODY
        socks.clear()
        # ... https → http does not, and the plain server is never contacted
        with pytest.raises(NetworkError, match="from https to http"):
            await fetch(socks, at(secure, "secure.test") + "/down.db", verify=tls.client)
        assert [c.host for c in socks.connects] == ["secure.test"]
        assert plain.requests == []


async def test_http_to_https_upgrade_is_followed(tmp_path: Path, socks: SocksProxy) -> None:
    (tmp_path / "real.db").write_bytes(BODY)
    tls = make_tls("secure.test")
    with FileServer(tmp_path).use_tls(tls.server) as secure, FileServer(tmp_path) as plain:
        plain.behaviour.redirects["/core.db"] = (301, at(secure, "secure.test") + "/real.db")
        assert await fetch(socks, at(plain, "plain.test") + "/core.db", verify=tls.client) == BODY
    assert [c.host for c in socks.connects] == ["plain.test", "secure.test"]
    assert len(socks.by_credentials()) == 2


async def test_303_turns_a_post_into_a_get_without_the_body(mirror: FileServer, socks: SocksProxy) -> None:
    mirror.behaviour.redirects["/upload"] = (303, "/real.db")  # FileServer answers POST to a redirect path too
    async with Network(proxy=socks.url, timeouts=Timeouts()) as net:
        r = await net.request("log", "POST", at(mirror, "rekor.test") + "/upload", content=b"{}", max_bytes=10**6,
                              timeout=30)
    assert r.status == 200 and r.body == BODY
    assert mirror.requests == [("POST", "/upload"), ("GET", "/real.db")]


async def test_rebuilder_redirect_elsewhere_leaves_the_rebuilders_circuit(mirror: FileServer,
                                                                          socks: SocksProxy) -> None:
    """Two rebuilders on one origin, different base paths: distinct circuits; a hop off-origin gets that origin's."""
    mirror.behaviour.redirects["/b/x"] = (302, at(mirror, "cdn.test") + "/real.db")
    mirror.behaviour.redirects["/a/x"] = (302, "/real.db")
    base = at(mirror, "rebuilder.test")
    async with Network(proxy=socks.url, timeouts=Timeouts()) as net:
        for path in ("a", "b"):
            r = await net.request("rebuilder", "GET", f"{base}/{path}/x", max_bytes=10**6, timeout=30,
                                  service=f"{base}/{path}/")
            assert r.body == BODY
    creds = [(c.host, c.password) for c in socks.connects]
    a = {p for h, p in creds[:2]}
    b_rebuilder, b_cdn = creds[2][1], creds[3][1]
    assert len(a) == 1  # rebuilder a and its same-origin hop: one circuit
    assert len({*a, b_rebuilder, b_cdn}) == 3  # rebuilder b differs from a; its cdn hop is its own


class HeaderRecordingServer(FileServer):
    """Records each request's Host and headers."""

    def __init__(self, root: Path) -> None:
        self.seen: list[tuple[str, dict[str, str]]] = []
        super().__init__(root)

    def _handle(self, h, method: str) -> None:
        self.seen.append((h.headers.get("Host", ""), {k.lower(): v for k, v in h.headers.items()}))
        super()._handle(h, method)


@pytest.mark.parametrize("target,kept", [("mirror2.test", False), ("mirror.test", True)])
async def test_a_redirect_to_another_origin_drops_the_callers_headers(tmp_path: Path, socks: SocksProxy,
                                                                      target: str, kept: bool) -> None:
    """A log's sigsum-token (or any header the caller meant for one host) is not handed to another."""
    (tmp_path / "real.db").write_bytes(BODY)
    with HeaderRecordingServer(tmp_path) as server:
        server.behaviour.redirects["/add"] = (307, at(server, target) + "/real.db")
        async with Network(proxy=socks.url, timeouts=Timeouts()) as net:
            await net.stream("log", "POST", at(server, "mirror.test") + "/add", lambda c: None, max_bytes=10**6,
                             timeout=30, content=b"x=1\n", raise_for_status=False,
                             headers={"sigsum-token": "secret.example abcd", "Content-Type": "text/plain"})
    (host1, first), (host2, second) = server.seen
    assert host1.startswith("mirror.test") and host2.startswith(target)
    assert first["sigsum-token"] == "secret.example abcd"
    assert ("sigsum-token" in second) is kept, second
    assert second["content-type"] == "text/plain"  # the body's own description goes along
