"""On the real private Tor network: the circuit audit proves something; one circuit per rebuilder service.

Checked by an independent observer too (``streams``: our own control-port
connection, STREAM events), not only by torfetch's own audit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import trio

from tests.repo import make_repo, sha256_file
from tests.servers.files import FileServer
from tests.servers.front import PathFront
from tests.servers.rebuilderd import Pkg, RebuilderdServer
from tests.servers.rekor import RekorServer
from tests.servers.socks import SocksProxy
from tests.tornet import TorNetwork, free_ports
from torfetch.config import Options, Timeouts
from torfetch.errors import FetchTimeout
from torfetch.net.http import Network
from torfetch.net.tor import tor_context

pytestmark = [pytest.mark.tor]
TORFETCH = [sys.executable, "-m", "torfetch"]


def _sync_part(tmp_path: Path) -> Path:
    """Where pacman writes a sync db: only there does a .db skip the proof."""
    (tmp_path / "sync").mkdir(exist_ok=True)
    return tmp_path / "sync" / "test.db.part"


def port_of(url: str) -> int:
    return int(url.split("//", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A signed repo and its mirror, a log, and four rebuilders on ONE host name: two ports, and two paths on a third."""
    repo = make_repo(tmp_path_factory.mktemp("auditrepo"))
    pkg = repo.add("hello")
    with ExitStack() as stack:
        mirror = stack.enter_context(FileServer(repo.root))
        rekor = stack.enter_context(RekorServer())
        rbs = [stack.enter_context(RebuilderdServer()) for _ in range(4)]
        for r in rbs:
            r.add(Pkg("hello", "1.0-1", sha256=sha256_file(pkg), filename=pkg.name))
        front = stack.enter_context(PathFront({"/a/": rbs[2].url, "/b/": rbs[3].url}))
        key = tmp_path_factory.mktemp("k") / "rekor.pem"
        key.write_bytes(rekor.public_key_pem)
        rebuilders = [f"http://rebuilder1.test:{port_of(rbs[0].url)}/", f"http://rebuilder1.test:{port_of(rbs[1].url)}/",
                      f"http://rebuilder1.test:{port_of(front.base_url)}/a/",
                      f"http://rebuilder1.test:{port_of(front.base_url)}/b/"]
        yield dict(repo=repo, pkg=pkg, mirror=mirror, rekor=rekor, rbs=rbs, key=key, rebuilders=rebuilders)


def db_url(world) -> str:
    return f"http://mirror.test:{port_of(world['mirror'].url)}/repo/test.db"


def test_four_rebuilders_on_one_host_ride_four_circuits(tornet: TorNetwork, streams, world, tmp_path) -> None:
    m = port_of(world["mirror"].url)
    out = tmp_path / "pkg.part"
    args = ["-v", "--proxy", tornet.proxy, "--tor-control", str(tornet.control_port), "--audit-circuits",
            "-O", str(out), "--transparency-url", f"http://sigs.test:{m}/sigs", "--pubkey", world["repo"].key.pub_line,
            "--log-url", f"http://rekor.test:{port_of(world['rekor'].url)}", "--log-key", str(world["key"]),
            "--state-dir", str(tmp_path / "state"), "--required-rebuild-confirms", "4"]
    for r in world["rebuilders"]:
        args += ["--rebuilder", r]
    r = subprocess.run([*TORFETCH, *args, f"http://mirror.test:{m}/repo/{world['pkg'].name}"],
                       capture_output=True, text=True, timeout=240)
    assert r.returncode == 0, r.stderr
    assert "4 of 4 rebuilders confirmed" in r.stderr
    assert all(rb.requests for rb in world["rbs"])
    streams.wait_for(lambda ev: len({(u, pw) for _, u, pw, _ in ev if u == "torfetch-rebuilder"}) >= 4)
    by_key = streams.circuits_by_key()
    rebuilder_keys = [k for k in by_key if k[0] == "torfetch-rebuilder"]
    assert len(rebuilder_keys) == 4, by_key  # one isolation key per rebuilder service, not per host
    rebuilder_circuits = [c for k in rebuilder_keys for c in by_key[k]]
    assert len(set(rebuilder_circuits)) == len(rebuilder_circuits) >= 4, by_key
    all_circuits = [c for cs in by_key.values() for c in cs]
    assert len(all_circuits) == len(set(all_circuits)), f"two isolation keys shared a circuit: {by_key}"


def test_audit_passes_when_it_sees_every_stream(tornet: TorNetwork, world, tmp_path) -> None:
    out = _sync_part(tmp_path)
    r = subprocess.run([*TORFETCH, "-vv", "--proxy", tornet.proxy, "--tor-control", str(tornet.control_port),
                        "--audit-circuits", "-O", str(out), db_url(world)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == (world["repo"].repo_dir / "test.db").read_bytes()
    assert "circuit " in r.stderr  # -v: the audit described the circuit it saw


def _refused(r: subprocess.CompletedProcess[str], out: Path, control: int) -> None:
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    assert f"circuit audit proves nothing: tor's control port {control} saw 0 of the 1 streams" in lines[0]
    assert "database http://mirror.test:" in lines[0]
    assert not out.exists() and [p for p in out.parent.iterdir() if p.name.startswith(".torfetch-")] == []


def test_audit_refuses_when_proxy_is_another_tor(tornet: TorNetwork, world, tmp_path) -> None:
    socks, control = free_ports(2)
    other = tornet.start_client("othertor", socks, control)
    try:
        tornet.wait_bootstrapped(other, time.monotonic() + 60)
        out = _sync_part(tmp_path)
        # the file really came through tor Y; tor X, whose control port we audit, saw none of it
        r = subprocess.run([*TORFETCH, "--proxy", f"socks5h://127.0.0.1:{socks}", "--tor-control",
                            str(tornet.control_port), "--audit-circuits", "-O", str(out), db_url(world)],
                           capture_output=True, text=True, timeout=120)
        _refused(r, out, tornet.control_port)
    finally:
        other.stop()


def test_audit_refuses_a_non_tor_socks_proxy(tornet: TorNetwork, world, tmp_path) -> None:
    out = _sync_part(tmp_path)
    with SocksProxy() as proxy:
        r = subprocess.run([*TORFETCH, "--proxy", proxy.url, "--tor-control", str(tornet.control_port),
                            "--audit-circuits", "-O", str(out), db_url(world)], capture_output=True, text=True,
                           timeout=120)
        assert [c.host for c in proxy.connects] == ["mirror.test"]  # the download itself worked
    _refused(r, out, tornet.control_port)


async def test_a_lookup_deadline_is_not_a_control_port_failure(tornet: TorNetwork, tmp_path) -> None:
    """The log lookup's own deadline inside tor_context is that lookup's timeout, named as such."""
    from tests.log.test_prove_in_log import prove, make_signed

    opts = Options(url="http://x.test/", output=tmp_path / "o", tor_control=str(tornet.control_port))
    with RekorServer() as log:
        # each request (2.1 s) within its own 3 s, but the three an upload needs not within 2 × 3 s
        log.lie.slow_seconds = 2.1
        with pytest.raises(FetchTimeout, match=r"log lookup for foo .* took longer than 6 s"):
            async with tor_context(opts, lambda s: None):
                await prove(log, tmp_path / "state", make_signed(), timeouts=Timeouts(lookup_total=3))
    # and any other deadline in the body stays what it is
    with pytest.raises(trio.TooSlowError):
        async with tor_context(opts, lambda s: None):
            with trio.fail_after(0.01):
                await trio.sleep(1)


async def test_network_counts_what_tor_saw(tornet: TorNetwork, streams, world) -> None:
    """Network.opened_streams() (what the audit compares) equals tor's SUCCEEDED streams per credentials."""
    m = port_of(world["mirror"].url)
    async with Network(proxy=tornet.proxy, timeouts=Timeouts()) as net:
        for _ in range(3):  # keep-alive: one stream
            await net.get_ok("signature", f"http://sigs.test:{m}/repo/test.db", max_bytes=10**6, timeout=60)
        await net.get_ok("database", f"http://mirror.test:{m}/repo/test.db", max_bytes=10**6, timeout=60)
        opened = {cred: n for cred, (_, n) in net.opened_streams().items()}

    def seen_of(events) -> dict:
        return {k: len([e for e in events if (e[1], e[2]) == k]) for k in opened}

    await trio.to_thread.run_sync(streams.wait_for, lambda ev: seen_of(ev) == opened)
    assert seen_of(streams.events) == opened and sum(opened.values()) == 2


async def test_cross_host_redirect_changes_circuit_on_real_tor(tornet: TorNetwork, streams, world) -> None:
    """mirror.test redirects to sigs.test (same purpose): tor sees two keys on two circuits."""
    m = port_of(world["mirror"].url)
    world["mirror"].behaviour.redirects["/jump.db"] = (302, f"http://sigs.test:{m}/repo/test.db")
    try:
        async with Network(proxy=tornet.proxy, timeouts=Timeouts()) as net:
            body = await net.get_ok("database", f"http://mirror.test:{m}/jump.db", max_bytes=10**6, timeout=60)
            opened = net.opened_streams()
    finally:
        del world["mirror"].behaviour.redirects["/jump.db"]
    assert body == (world["repo"].repo_dir / "test.db").read_bytes()
    passwords = {cred[1] for cred in opened}
    await trio.to_thread.run_sync(streams.wait_for, lambda ev: {pw for _, _, pw, _ in ev} >= passwords)
    # (MapAddress shows both targets as 127.0.0.1: tell the hops apart by their credentials; a stream another
    # test left behind on the shared tor may report late, so only this Network's credentials count)
    ours = [e for e in streams.events if e[2] in passwords]
    circ_by_password = {pw: circ for circ, _, pw, _ in ours}
    assert len(ours) == 2 and set(circ_by_password) == passwords, streams.events
    assert len(set(circ_by_password.values())) == 2  # two circuits
