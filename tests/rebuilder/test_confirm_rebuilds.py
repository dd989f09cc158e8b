"""confirm_rebuilds against local rebuilderd servers: concurrent, early exit, lying rebuilders."""

from __future__ import annotations

import hashlib
from contextlib import ExitStack

import pytest
import trio

from tests.servers.rebuilderd import Pkg, Probe, RebuilderdServer
from torfetch.config import Limits, Timeouts
from torfetch.errors import ConfigError, RebuilderError
from torfetch.net.http import Network
from torfetch.net.rebuilders import confirm_rebuilds
from torfetch.verify.rebuilder import RebuilderSpec, Verdict

NAME, VER = "foo", "1:2.0-3"
FN = f"{NAME}-{VER}-x86_64.pkg.tar.zst"
SHA = hashlib.sha256(b"the package").hexdigest()


def good(srv: RebuilderdServer, **kw) -> RebuilderdServer:
    srv.add(Pkg(NAME, VER, sha256=SHA, filename=FN, **kw))
    return srv


async def ask(specs, required, *, fail_on_bad=False, timeout=5.0, sha_delay=0.0, limits=None):
    lines: list[str] = []
    warns: list[str] = []
    sha_asked: list[float] = []
    ask.lines, ask.warns, ask.sha_asked = lines, warns, sha_asked  # type: ignore[attr-defined]

    async def get_sha256() -> str:
        sha_asked.append(trio.current_time())
        await trio.sleep(sha_delay)
        return SHA

    async with Network(proxy=None, timeouts=Timeouts(rebuilder=timeout)) as net:
        out = await confirm_rebuilds(net, specs, filename=FN, pkgname=NAME, version=VER, get_sha256=get_sha256,
                                     required=required, fail_on_bad=fail_on_bad, limits=limits or Limits(),
                                     timeouts=Timeouts(rebuilder=timeout), package="", report=lines.append,
                                     warn=warns.append)
    return out


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
    with pytest.raises(RebuilderError, match="only 1 of 3 rebuilders confirmed foo 1:2.0-3 \\(need 2\\)") as ei:
        await ask(specs, 2, timeout=1.0)
    msg = str(ei.value)
    assert "timeout after 1 s" in msg and "attestation is missing" in msg and "attestation signed by pinned key" in msg
    # without the pin the liar counts, as in pacman-bintrans; the slow one is not waited for
    out = await ask([RebuilderSpec(honest.url), RebuilderSpec(slow.url), RebuilderSpec(liar.url)], 2, timeout=20)
    assert out.confirmed == 2
    assert not slow.finished, "waited for the slow rebuilder although 2 had confirmed"
    assert [a.detail for a in out.answers if a.rebuilder == slow.url] == ["not waited for (enough confirms)"]


async def test_asked_concurrently_structurally(servers) -> None:
    probe = Probe()
    srvs = [good(servers(probe=probe)) for _ in range(3)]
    for s in srvs:
        s.behaviour.slow_seconds = 0.5
    out = await ask([RebuilderSpec(s.url) for s in srvs], 3)
    assert out.confirmed == 3
    assert probe.max_in_flight == 3, "the rebuilders were not all asked at the same time"


async def test_wrong_version_name_malformed_huge_all_fail(servers) -> None:
    a, b, c, d, e = servers(), servers(), servers(), servers(), servers()
    good(a).behaviour.wrong = "version"
    good(b).behaviour.wrong = "name"
    c.behaviour.malformed = True
    d.behaviour.huge = True
    good(e).behaviour.status_code = 500
    with pytest.raises(RebuilderError) as ei:
        await ask([RebuilderSpec(s.url) for s in (a, b, c, d, e)], 1)
    msg = str(ei.value)
    assert "only 0 of 5" in msg
    assert "does not list foo 1:2.0-3" in msg  # the other name
    assert "knows foo only in other versions (1:2.0-3.1)" in msg
    assert "not valid JSON" in msg and "limit" in msg and "HTTP 500" in msg
    a.behaviour.v0_only = True  # v0 lists every version: the answer names them
    with pytest.raises(RebuilderError, match=r"only in other versions \(1:2.0-3.1\)"):
        await ask([RebuilderSpec(a.url)], 1)


@pytest.mark.parametrize("attest,ok", [("good", True), ("wrong-sha", False), ("wrong-key", False),
                                       ("missing", False), ("wrong-name", False), ("not-link", False)])
async def test_attestation_must_match_downloaded_bytes(servers, attest: str, ok: bool) -> None:
    s = good(servers(), attest=attest)
    spec = RebuilderSpec(s.url, s.pinned_key_hex)
    if ok:
        out = await ask([spec], 1)
        assert out.confirmed == 1
        assert any("attestation signed by pinned key" in ln and ln.endswith("— counted") for ln in ask.lines)
    else:
        with pytest.raises(RebuilderError, match="only 0 of 1"):
            await ask([spec], 1)
        assert any(ln.endswith("— not counted") for ln in ask.lines)
    # unpinned, the same rebuilder counts on its word alone
    assert (await ask([RebuilderSpec(s.url)], 1)).confirmed == 1


@pytest.mark.parametrize("mode", ["missing", "invalid", "wrong-sha"])
async def test_lying_rebuilder_not_counted_when_pinned(servers, mode: str) -> None:
    liar = servers()
    liar.behaviour.lie_good, liar.behaviour.lie_attestation = True, mode
    with pytest.raises(RebuilderError, match="says GOOD"):
        await ask([RebuilderSpec(liar.url, liar.pinned_key_hex)], 1)


async def test_pinned_key_from_served_pem_and_zstd_attestation(servers) -> None:
    s = good(servers())
    s.behaviour.zstd_attestation = True
    s.behaviour.chunked = True  # no Content-Length anywhere
    out = await ask([RebuilderSpec(s.url, s.public_key_pem)], 1)  # (key files are read by the CLI: torfetch.keyfiles)
    assert out.confirmed == 1


async def test_bad_is_reported_and_fatal_with_fail_on_bad(servers) -> None:
    g1, g2, bad = good(servers()), good(servers()), servers()
    bad.add(Pkg(NAME, VER, status="BAD"))
    specs = [RebuilderSpec(s.url) for s in (g1, g2, bad)]
    out = await ask(specs, 2, fail_on_bad=False)
    assert out.confirmed == 2
    bad.behaviour.slow_seconds = 0.3  # BAD arrives after the confirms: with --fail-on-bad it is still waited for
    with pytest.raises(RebuilderError, match="reports BAD for foo 1:2.0-3 \\(--fail-on-bad\\)"):
        await ask(specs, 1, fail_on_bad=True)
    assert any("BAD" in w for w in ask.warns)
    out = await ask(specs, 1, timeout=5)  # without it: a warning, and no waiting
    assert out.confirmed >= 1


async def test_fail_status_is_not_bad(servers) -> None:
    s = servers()
    s.add(Pkg(NAME, VER, status="FAIL"))
    with pytest.raises(RebuilderError, match=r"could not rebuild foo 1:2.0-3 \(FAIL\)"):
        await ask([RebuilderSpec(s.url)], 1, fail_on_bad=True)
    assert not ask.warns


async def test_v0_fallback_and_path_prefix_kept(servers) -> None:
    s = good(servers(prefix="rebuild"))
    s.behaviour.v0_only = True
    out = await ask([RebuilderSpec(s.url)], 1)
    assert out.confirmed == 1 and any("[v0]" in ln for ln in ask.lines)
    assert all(p.startswith("/rebuild/api/") for p in s.requests)
    assert "/api/v1/packages/binary?distribution=archlinux&name=foo&version=1%3A2.0-3" in s.requests[0]
    assert s.requests[1].endswith("/api/v0/pkgs/list?distro=archlinux&name=foo")
    # a pinned rebuilder that only speaks v0 offers no attestation: not counted
    with pytest.raises(RebuilderError, match="offers no attestation"):
        await ask([RebuilderSpec(s.url.rstrip("/"), s.pinned_key_hex)], 1)


async def test_html_front_page_on_v1_falls_back_to_v0(servers) -> None:
    s = good(servers())
    s.behaviour.html_v1 = True
    out = await ask([RebuilderSpec(s.url)], 1)
    assert out.confirmed == 1 and any("[v0]" in ln for ln in ask.lines)


async def test_counts_once_per_rebuilder(servers) -> None:
    s = good(servers())
    good(s)  # the same package listed twice
    with pytest.raises(RebuilderError, match="only 1 distinct rebuilder"):
        await ask([RebuilderSpec(s.url), RebuilderSpec(s.url.upper().replace("HTTP", "http"))], 2)
    with pytest.raises(RebuilderError, match="only [01] of 2"):  # [0]: t said no first: hopeless at once
        t = servers()
        await ask([RebuilderSpec(s.url), RebuilderSpec(t.url)], 2)


async def test_unpinned_never_waits_for_the_download(servers) -> None:
    s = good(servers())
    out = await ask([RebuilderSpec(s.url)], 1, sha_delay=3600)
    assert out.confirmed == 1 and not ask.sha_asked


async def test_bad_pinned_key_is_a_usage_error_before_any_request(servers) -> None:
    s = good(servers())
    with pytest.raises(ConfigError):
        await ask([RebuilderSpec(s.url, "not-a-key")], 1)
    assert s.requests == []


async def test_required_zero_asks_everyone_and_never_fails(servers) -> None:
    a, b = good(servers()), servers()
    b.behaviour.malformed = True
    out = await ask([RebuilderSpec(a.url), RebuilderSpec(b.url)], 0)
    assert out.confirmed == 1 and len(out.answers) == 2
    assert {x.verdict for x in out.answers} == {Verdict.CONFIRMED, Verdict.FAILED}


async def test_one_report_line_per_rebuilder(servers) -> None:
    a, b = good(servers()), servers()
    await ask([RebuilderSpec(a.url), RebuilderSpec(b.url)], 1, timeout=5)
    per = [ln for ln in ask.lines if ln.startswith("rebuilder ")]
    assert 1 <= len(per) <= 2
    assert all(ln.endswith(("— counted", "— not counted")) for ln in per)


def test_server_runs_from_the_command_line(tmp_path) -> None:
    import json
    import signal
    import subprocess
    import sys
    import urllib.request

    from tests.pkgbuild import build_package

    pkg = build_package(tmp_path, "hello", "1:1.0-1")
    proc = subprocess.Popen([sys.executable, "-m", "tests.servers.rebuilderd", "--port", "0", "--prefix", "rebuild",
                             "--package", str(pkg), "--key-file", str(tmp_path / "k.pem")],
                            stdout=subprocess.PIPE, text=True, cwd=str(__import__("pathlib").Path(__file__).parents[2]))
    try:
        url, key = proc.stdout.readline().split()
        assert url.startswith("http://127.0.0.1:") and url.endswith("/rebuild/") and len(key) == 64
        q = "api/v1/packages/binary?distribution=archlinux&name=hello&version=1%3A1.0-1"
        with urllib.request.urlopen(url + q, timeout=10) as r:
            rec = json.load(r)["records"][0]
        assert (rec["name"], rec["version"], rec["status"]) == ("hello", "1:1.0-1", "GOOD")
        assert "BEGIN PUBLIC KEY" in (tmp_path / "k.pem").read_text()
    finally:
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=10) == 0
