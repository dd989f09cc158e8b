"""confirm_rebuilds on virtual time (trio's MockClock via pytest-trio's autojump_clock), with a scripted network.

The times asserted are exact: 3 rebuilders with 1 s latency each cost 1 s,
not 3 s; a hanging rebuilder costs nothing once N confirmed; failure comes as
soon as too few can still confirm.
"""

from __future__ import annotations

import hashlib
import json
import urllib.parse

import pytest
import trio

from tests.servers.rebuilderd import Pkg, RebuilderdServer
from torfetch.config import Limits, Timeouts
from torfetch.errors import RebuilderError, TorUnavailable
from torfetch.net.http import Response
from torfetch.net.rebuilders import confirm_rebuilds
from torfetch.verify.rebuilder import RebuilderSpec

NAME, VER = "foo", "1.0-1"
FN = f"{NAME}-{VER}-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"pkg").hexdigest()


def v1_good() -> bytes:
    return json.dumps({"total": 1, "records": [{"id": 1, "name": NAME, "version": VER, "status": "GOOD",
                                                 "build_id": 100, "artifact_id": 500}]}).encode()


class ScriptedNet:
    """Duck-typed Network: per host a latency and a behaviour; records in-flight requests."""

    def __init__(self, script: dict[str, tuple[float, str]], attestations: dict[str, bytes] | None = None) -> None:
        self.script = script
        self.attestations = attestations or {}
        self.in_flight = 0
        self.max_in_flight = 0
        self.log: list[tuple[float, str]] = []

    async def request(self, purpose, method, url, *, max_bytes, timeout, content=None, headers=None, package="",
                      service=None):
        assert purpose == "rebuilder" and method == "GET"
        host = urllib.parse.urlsplit(url).hostname
        latency, what = self.script[host]
        self.log.append((trio.current_time(), url))
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            await trio.sleep(latency)
        finally:
            self.in_flight -= 1
        if what == "tor-down":
            raise TorUnavailable("cannot reach the Tor SOCKS proxy")
        if "/attestation" in url:
            body = self.attestations.get(host)
            return Response(200 if body else 404, body or b"", {}, url)
        if what == "good":
            return Response(200, v1_good(), {}, url)
        if what == "unknown":
            return Response(200, b'{"total":0,"records":[]}', {}, url)
        return Response(500, b"", {}, url)


async def run(net, specs, required, *, timeout=30.0, sha_at=0.0, fail_on_bad=False):
    async def get_sha256() -> str:
        await trio.sleep_until(sha_at)
        return SHA

    lines: list[str] = []
    return await confirm_rebuilds(net, specs, filename=FN, pkgname=NAME, version=VER, get_sha256=get_sha256,
                                  required=required, fail_on_bad=fail_on_bad, limits=Limits(),
                                  timeouts=Timeouts(rebuilder=timeout), package=FN, report=lines.append)


async def test_three_rebuilders_with_one_second_latency_cost_one_second(autojump_clock) -> None:
    net = ScriptedNet({"a.test": (1.0, "good"), "b.test": (1.0, "good"), "c.test": (1.0, "good")})
    t0 = trio.current_time()
    out = await run(net, [RebuilderSpec(f"https://{h}/") for h in ("a.test", "b.test", "c.test")], 3)
    assert out.confirmed == 3
    assert trio.current_time() - t0 == pytest.approx(1.0)  # one after another would be 3.0
    assert net.max_in_flight == 3


async def test_hanging_rebuilder_costs_nothing_once_enough_confirmed(autojump_clock) -> None:
    net = ScriptedNet({"a.test": (1.0, "good"), "b.test": (2.0, "good"), "hang.test": (10_000.0, "good")})
    t0 = trio.current_time()
    out = await run(net, [RebuilderSpec(f"https://{h}/") for h in ("a.test", "hang.test", "b.test")], 2)
    assert out.confirmed == 2
    assert trio.current_time() - t0 == pytest.approx(2.0)


async def test_fails_as_soon_as_too_few_can_confirm(autojump_clock) -> None:
    net = ScriptedNet({"a.test": (1.0, "error"), "b.test": (2.0, "unknown"), "c.test": (900.0, "good")})
    t0 = trio.current_time()
    with pytest.raises(RebuilderError, match="only 0 of 3") as ei:
        await run(net, [RebuilderSpec(f"https://{h}/") for h in ("a.test", "b.test", "c.test")], 2)
    assert trio.current_time() - t0 == pytest.approx(2.0)  # c could still confirm, but 1 < 2
    assert "cancelled" in str(ei.value)


async def test_each_rebuilder_has_its_own_timeout(autojump_clock) -> None:
    net = ScriptedNet({"a.test": (29.0, "good"), "slow.test": (31.0, "good")})
    t0 = trio.current_time()
    with pytest.raises(RebuilderError, match="timeout after 30 s"):
        await run(net, [RebuilderSpec("https://a.test/"), RebuilderSpec("https://slow.test/")], 2, timeout=30.0)
    assert trio.current_time() - t0 == pytest.approx(30.0)


async def test_pinned_rebuilder_waits_for_a_download_longer_than_its_timeout(autojump_clock) -> None:
    srv = RebuilderdServer()  # used only to sign; never started
    try:
        srv.add(Pkg(NAME, VER, sha256=SHA, filename=FN))
        att = json.dumps(srv.attestation(0)).encode()
        key = srv.pinned_key_hex
    finally:
        srv._httpd.server_close()
    net = ScriptedNet({"a.test": (1.0, "good")}, {"a.test": att})
    t0 = trio.current_time()
    out = await run(net, [RebuilderSpec("https://a.test/", key)], 1, timeout=30.0, sha_at=t0 + 300.0)
    assert out.confirmed == 1
    assert trio.current_time() - t0 == pytest.approx(300.0)  # the download finished at 300 s; no timeout


async def test_tor_down_is_not_blamed_on_a_rebuilder(autojump_clock) -> None:
    net = ScriptedNet({"a.test": (1.0, "tor-down"), "b.test": (5.0, "good")})
    with pytest.raises(BaseException) as ei:
        await run(net, [RebuilderSpec("https://a.test/"), RebuilderSpec("https://b.test/")], 1)
    assert ei.group_contains(TorUnavailable) if isinstance(ei.value, BaseExceptionGroup) else ei.type is TorUnavailable
