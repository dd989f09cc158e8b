"""confirm_rebuilds against local rebuilderd servers: concurrent, early exit, lying rebuilders."""

from __future__ import annotations

import hashlib
from contextlib import ExitStack

import pytest
import trio

from tests.servers.rebuilderd import Pkg, RebuilderdServer
from torfetch.config import Limits, Timeouts
from torfetch.errors import RebuilderError
from torfetch.net.http import Network
from torfetch.net.rebuilders import confirm_rebuilds
from torfetch.verify.rebuilder import RebuilderSpec

NAME, VER = "foo", "1:2.0-3"
FN = f"{NAME}-{VER}-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"the package").hexdigest()


def good(srv: RebuilderdServer, **kw) -> RebuilderdServer:
    srv.add(Pkg(NAME, VER, sha256=SHA, filename=FN, **kw))
    return srv


async def ask(specs, required, *, fail_on_bad=False, timeout=5.0, sha_delay=0.0):
    lines: list[str] = []
    warns: list[str] = []

    async def get_sha256() -> str:
        await trio.sleep(sha_delay)
        return SHA

    async with Network(proxy=None, timeouts=Timeouts(rebuilder=timeout)) as net:
        out = await confirm_rebuilds(net, specs, filename=FN, pkgname=NAME, version=VER, get_sha256=get_sha256,
                                     required=required, fail_on_bad=fail_on_bad, limits=Limits(),
                                     timeouts=Timeouts(rebuilder=timeout), package="", report=lines.append,
                                     warn=warns.append)
    return out, lines, warns


@pytest.fixture
def servers():
    with ExitStack() as stack:
        yield lambda **kw: stack.enter_context(RebuilderdServer(**kw))


async def test_two_of_three_with_slow_and_lying(servers) -> None:
    honest, slow, liar = servers(), servers(), servers()
    good(honest)
    good(slow)
    slow.behaviour.slow_seconds = 30
    liar.behaviour.lie_good = True
    specs = [RebuilderSpec(honest.url, honest.pinned_key_hex), RebuilderSpec(slow.url),
             RebuilderSpec(liar.url, liar.pinned_key_hex)]
    with pytest.raises(RebuilderError, match="only 1 of 3"):
        await ask(specs, 2, timeout=1.0)
    # without the pin the liar would count, as in pacman-bintrans
    t0 = trio.current_time()
    out, lines, _ = await ask([RebuilderSpec(honest.url), RebuilderSpec(slow.url), RebuilderSpec(liar.url)], 2,
                              timeout=20)
    assert out.confirmed == 2
    assert trio.current_time() - t0 < 10  # did not wait for the 30 s rebuilder


async def test_asked_concurrently(servers) -> None:
    srvs = [good(servers()) for _ in range(3)]
    for s in srvs:
        s.behaviour.slow_seconds = 0.5
    await ask([RebuilderSpec(s.url) for s in srvs], 3)
    starts = [s.started[0] for s in srvs]
    ends = [s.finished[0] for s in srvs]
    assert max(starts) < min(ends), "the rebuilders were asked one after another"


async def test_wrong_version_name_malformed_huge_all_fail(servers) -> None:
    a, b, c, d = servers(), servers(), servers(), servers()
    a.add(Pkg(NAME, "1:2.0-2"))
    b.add(Pkg("foo-git", VER))
    c.behaviour.malformed = True
    d.behaviour.huge = True
    with pytest.raises(RebuilderError) as ei:
        await ask([RebuilderSpec(s.url) for s in (a, b, c, d)], 1)
    msg = str(ei.value)
    assert msg.count("does not list") == 2 and "not valid JSON" in msg and "limit" in msg
    a.behaviour.v0_only = True  # v0 lists every version: the answer names them
    with pytest.raises(RebuilderError, match=r"only in other versions \(1:2.0-2\)"):
        await ask([RebuilderSpec(a.url)], 1)


async def test_attestation_must_match_downloaded_bytes(servers) -> None:
    for attest, ok in (("good", True), ("wrong-sha", False), ("wrong-key", False), ("missing", False),
                       ("wrong-name", False)):
        s = good(servers(), attest=attest)
        spec = RebuilderSpec(s.url, s.pinned_key_hex)
        if ok:
            out, lines, _ = await ask([spec], 1)
            assert out.confirmed == 1 and any("attestation signed by pinned key" in ln for ln in lines)
        else:
            with pytest.raises(RebuilderError, match="not counted"):
                await ask([spec], 1)


async def test_bad_is_reported_and_fatal_with_fail_on_bad(servers) -> None:
    g1, g2, bad = good(servers()), good(servers()), servers()
    bad.add(Pkg(NAME, VER, status="BAD"))
    specs = [RebuilderSpec(s.url) for s in (g1, g2, bad)]
    bad.behaviour.slow_seconds = 0.3  # BAD arrives after the confirms
    out, _, warns = await ask(specs, 1)
    assert out.confirmed >= 1
    with pytest.raises(RebuilderError, match="reports BAD"):
        await ask(specs, 1, fail_on_bad=True)


async def test_v0_fallback_and_path_prefix_kept(servers) -> None:
    s = good(servers(prefix="rebuild"))
    s.behaviour.v0_only = True
    out, lines, _ = await ask([RebuilderSpec(s.url)], 1)
    assert out.confirmed == 1 and any("[v0]" in ln for ln in lines)
    assert all(p.startswith("/rebuild/api/") for p in s.requests)
    assert any("/api/v1/" in p for p in s.requests) and any("/api/v0/" in p for p in s.requests)


async def test_counts_once_per_rebuilder(servers) -> None:
    s = good(servers())
    good(s)  # the same package listed twice
    with pytest.raises(RebuilderError, match="only 1 of 1|need 2"):
        await ask([RebuilderSpec(s.url)], 2)
