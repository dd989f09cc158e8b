"""Isolation keys: one circuit per service (origin, plus a rebuilder's base path); streams counted per key."""

from __future__ import annotations

import hashlib
from collections.abc import Iterator
from contextlib import ExitStack
from pathlib import Path

import pytest

from tests.servers.files import FileServer
from tests.servers.front import PathFront
from tests.servers.rebuilderd import Pkg, RebuilderdServer
from tests.servers.socks import SocksProxy
from torfetch.config import Limits, Timeouts
from torfetch.errors import CircuitFailed
from torfetch.net.http import Network
from torfetch.net.isolation import IsolationPolicy, origin_of, service_of
from torfetch.net.rebuilders import confirm_rebuilds
from torfetch.verify.rebuilder import RebuilderSpec, Verdict

NAME, VER = "foo", "1:2.0-3"
FN = f"{NAME}-{VER}-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"the package").hexdigest()


def test_origin_spellings() -> None:
    assert origin_of("HTTP://Mirror.Test/x/y?z") == "http://mirror.test:80"
    assert origin_of("https://mirror.test:443/") == origin_of("https://MIRROR.test/a") == "https://mirror.test:443"
    assert origin_of("http://[::1]:8080/") == "http://[::1]:8080"
    assert origin_of("http://h.test:8080/") != origin_of("http://h.test:8081/") != origin_of("https://h.test:8080/")
    assert service_of("http://h.test/rebuild") == service_of("HTTP://h.test:80/rebuild/") == "http://h.test:80/rebuild/"
    assert service_of("http://h.test/a/") != service_of("http://h.test/b/")
    for bad in ("file:///etc/passwd", "ftp://h.test/", "http:///nohost", "http://h.test:99999/"):
        with pytest.raises(ValueError):
            origin_of(bad)


def test_keys_and_credentials_per_service() -> None:
    p = IsolationPolicy.new()
    creds = {p.credentials(p.key("rebuilder", service_of(u))) for u in (
        "http://r.test:1/", "http://r.test:2/", "http://r.test:1/a/", "http://r.test:1/b/", "https://r.test:1/")}
    assert len(creds) == 5
    # same purpose, same service, same circuit; another purpose on that service is another circuit
    assert p.credentials(p.key("log", origin_of("http://l.test/a"))) == p.credentials(p.key("log", "http://l.test:80"))
    assert p.credentials(p.key("log", "http://l.test:80")) != p.credentials(p.key("signature", "http://l.test:80"))
    # another process (another secret) cannot guess our credentials
    q = IsolationPolicy.new()
    assert q.credentials(q.key("log", "http://l.test:80")) != p.credentials(p.key("log", "http://l.test:80"))


@pytest.fixture
def socks() -> Iterator[SocksProxy]:
    with SocksProxy() as p:
        yield p


def as_test_name(url: str, name: str = "rebuilder.test") -> str:
    return url.replace("127.0.0.1", name)


async def ask(net: Network, urls: list[str]) -> list[Verdict]:
    out = await confirm_rebuilds(net, [RebuilderSpec(u) for u in urls], filename=FN, pkgname=NAME, version=VER,
                                 get_sha256=lambda: None, required=len(urls), fail_on_bad=False, limits=Limits(),
                                 timeouts=Timeouts(rebuilder=20), package="", report=lambda s: None)
    return [a.verdict for a in out.answers]


async def test_two_rebuilders_on_one_host_other_ports_other_circuits(socks: SocksProxy) -> None:
    with ExitStack() as stack:
        rbs = [stack.enter_context(RebuilderdServer()) for _ in range(2)]
        for r in rbs:
            r.add(Pkg(NAME, VER, sha256=SHA, filename=FN))
        urls = [as_test_name(r.url) for r in rbs]  # rebuilder.test:P1/ and rebuilder.test:P2/
        async with Network(proxy=socks.url, timeouts=Timeouts()) as net:
            assert await ask(net, urls) == [Verdict.CONFIRMED] * 2
    assert {c.host for c in socks.connects} == {"rebuilder.test"}
    by_port = {c.port: c.password for c in socks.connects}
    assert len(by_port) == 2 and len(set(by_port.values())) == 2


async def test_two_rebuilders_on_one_port_other_paths_other_circuits(socks: SocksProxy) -> None:
    with ExitStack() as stack:
        rbs = [stack.enter_context(RebuilderdServer()) for _ in range(2)]
        for r in rbs:
            r.add(Pkg(NAME, VER, sha256=SHA, filename=FN))
        front = stack.enter_context(PathFront({"/a/": rbs[0].url, "/b/": rbs[1].url}))
        base = as_test_name(front.base_url)
        async with Network(proxy=socks.url, timeouts=Timeouts()) as net:
            assert await ask(net, [f"{base}/a/", f"{base}/b/"]) == [Verdict.CONFIRMED] * 2
        assert all(r.requests for r in rbs)  # both were really asked, through the one front
    assert {(c.host, c.port) for c in socks.connects} == {("rebuilder.test", int(base.rsplit(":", 1)[1]))}
    assert len(socks.by_credentials()) == 2


async def test_opened_streams_match_what_the_proxy_saw(tmp_path: Path, socks: SocksProxy) -> None:
    """The count the circuit audit relies on: one per SOCKS stream, keep-alive reuse not double-counted."""
    (tmp_path / "f.db").write_bytes(b"x" * 5000)
    with FileServer(tmp_path) as srv:
        srv.behaviour.redirects["/jump"] = (302, as_test_name(srv.url, "other.test") + "/f.db")
        async with Network(proxy=socks.url, timeouts=Timeouts()) as net:
            for _ in range(3):  # keep-alive: one stream for three requests
                await net.get_ok("signature", as_test_name(srv.url, "sigs.test") + "/f.db", max_bytes=10**4, timeout=10)
            await net.get_ok("database", as_test_name(srv.url, "mirror.test") + "/jump", max_bytes=10**4, timeout=10)
            with pytest.raises(CircuitFailed):  # refused by the proxy: no stream, nothing counted
                await net.get_ok("log", srv.url + "/f.db", max_bytes=10**4, timeout=10)
            opened = net.opened_streams()
    seen = socks.by_credentials()
    allowed = {c.credentials for c in socks.connects if c.allowed}
    assert {cred: n for cred, (_, n) in opened.items()} == {cred: seen[cred] for cred in allowed}
    labels = sorted(label for label, _ in opened.values())
    assert [lb.split()[0] for lb in labels] == ["database", "database", "signature"]
    assert dict((label, n) for label, n in opened.values())[f"signature {origin_of(as_test_name(srv.url, 'sigs.test'))}"] == 1
