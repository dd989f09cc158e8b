"""On a real (private) Tor network: circuit isolation, onion services, fail-closed, no leaks."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import pytest
import trio

from tests.repo import make_repo
from tests.servers.files import FileServer
from tests.servers.rebuilderd import Pkg, RebuilderdServer
from tests.servers.rekor import RekorServer
from tests.tornet import TorNetwork, free_ports
from torfetch.config import Options, Timeouts
from torfetch.errors import IsolationError, TorUnavailable
from torfetch.net.http import Network
from torfetch.net.isolation import IsolationPolicy
from torfetch.net.tor import tor_context

pytestmark = [pytest.mark.tor]
TORFETCH = [sys.executable, "-m", "torfetch"]


def _port(url: str) -> int:
    return int(re.search(r":(\d+)", url.split("//", 1)[1]).group(1))


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """A signed repo, its mirror, a log and two rebuilders, all reachable only by *.test names over Tor."""
    from tests.repo import sha256_file

    repo = make_repo(tmp_path_factory.mktemp("torrepo"))
    pkg = repo.add("hello")
    with ExitStack() as stack:
        mirror = stack.enter_context(FileServer(repo.root))
        rekor = stack.enter_context(RekorServer())
        rbs = [stack.enter_context(RebuilderdServer()) for _ in range(2)]
        for r in rbs:
            r.add(Pkg("hello", "1.0-1", sha256=sha256_file(pkg), filename=pkg.name))
        key = tmp_path_factory.mktemp("k") / "rekor.pem"
        key.write_bytes(rekor.public_key_pem)
        yield dict(repo=repo, pkg=pkg, mirror=mirror, rekor=rekor, rbs=rbs, key=key)


def fetch_args(world, out: Path) -> list[str]:
    m = _port(world["mirror"].url)
    return ["-O", str(out), "--transparency-url", f"http://sigs.test:{m}/sigs", "--pubkey", world["repo"].key.pub_line,
            "--log-url", f"http://rekor.test:{_port(world['rekor'].url)}", "--log-key", str(world["key"]),
            "--state-dir", str(out.parent / "state"),
            "--rebuilder", f"http://rebuilder1.test:{_port(world['rbs'][0].url)}/",
            "--rebuilder", f"http://rebuilder2.test:{_port(world['rbs'][1].url)}/",
            "--required-rebuild-confirms", "2",
            f"http://mirror.test:{m}/repo/{world['pkg'].name}"]


def test_full_fetch_each_lookup_on_its_own_circuit(tornet: TorNetwork, streams, world, tmp_path) -> None:
    out = tmp_path / "pkg.part"
    r = subprocess.run([*TORFETCH, "-vv", "--proxy", tornet.proxy, "--tor-control", str(tornet.control_port),
                        "--audit-circuits", *fetch_args(world, out)], capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == world["pkg"].read_bytes()
    wanted = {"torfetch-package", "torfetch-signature", "torfetch-log", "torfetch-rebuilder"}
    streams.wait_for(lambda ev: {u for _, u, _, _ in ev} >= wanted
                     and len({pw for _, u, pw, _ in ev if u == "torfetch-rebuilder"}) >= 2)
    by_key = streams.circuits_by_key()
    purposes = {user for user, _ in by_key}
    assert {"torfetch-package", "torfetch-signature", "torfetch-log", "torfetch-rebuilder"} <= purposes, by_key
    assert sum(1 for user, _ in by_key if user == "torfetch-rebuilder") == 2  # one key per rebuilder host
    circuits = [c for cs in by_key.values() for c in cs]
    assert len(circuits) == len(set(circuits)), f"two isolation keys shared a circuit: {by_key}"
    assert "circuit" in r.stderr  # -vv printed the circuit per purpose (audit)


async def test_isolate_package_gives_each_package_fresh_circuits(tornet: TorNetwork, streams, world) -> None:
    m = _port(world["mirror"].url)
    url = f"http://sigs.test:{m}/sigs/{world['pkg'].name}.t"
    for mode, expect_distinct in (("package", True), ("purpose", False)):
        streams.events.clear()
        async with Network(proxy=tornet.proxy, timeouts=Timeouts(), isolation=IsolationPolicy.new(mode)) as net:
            await net.get_ok("signature", url, max_bytes=2048, timeout=60, package="a-1-1-any.pkg.tar.zst")
            await net.get_ok("signature", url, max_bytes=2048, timeout=60, package="b-1-1-any.pkg.tar.zst")
        # both lookups' streams (one with keep-alive) reported by tor, bounded
        await trio.to_thread.run_sync(
            streams.wait_for, lambda ev: len({c for c, *_ in ev}) >= (2 if expect_distinct else 1))
        circs = {c for c, *_ in streams.events}
        # per purpose both lookups share one client (and its keep-alive stream): one circuit
        assert len(circs) == (2 if expect_distinct else 1), (mode, streams.events)


async def test_fetch_from_onion_service(tornet: TorNetwork, world) -> None:
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from stem.control import Controller

        ctl = Controller.from_port(port=tornet.control_port)
    ctl.authenticate()
    try:
        svc = await trio.to_thread.run_sync(lambda: ctl.create_ephemeral_hidden_service(
            {80: f"127.0.0.1:{_port(world['mirror'].url)}"}, await_publication=True, timeout=90))
        onion = f"{svc.service_id}.onion"
        async with Network(proxy=tornet.proxy, timeouts=Timeouts()) as net:
            body = b""
            for _ in range(10):  # descriptors may take a moment to be fetchable
                try:
                    body = await net.get_ok("package", f"http://{onion}/repo/{world['pkg'].name}",
                                            max_bytes=10**6, timeout=60)
                    break
                except Exception:
                    await trio.sleep(2)
        assert body == world["pkg"].read_bytes()
    finally:
        ctl.close()


def test_tor_stopped_fails_closed(tornet: TorNetwork, world, tmp_path) -> None:
    socks, control = free_ports(2)
    c = tornet.start_client("stopped", socks, control)
    tornet.wait_bootstrapped(c, time.monotonic() + 60)
    c.stop()
    out = tmp_path / "pkg.part"
    out.write_bytes(b"stale")
    t0 = time.monotonic()
    r = subprocess.run([*TORFETCH, "--proxy", f"socks5://127.0.0.1:{socks}", *fetch_args(world, out)],
                       capture_output=True, text=True, timeout=120)
    assert r.returncode == 3, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "proxy" in r.stderr
    assert time.monotonic() - t0 < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == []


def test_not_bootstrapped_fails_fast_and_closed(tornet: TorNetwork, world, tmp_path) -> None:
    socks, control, dead = free_ports(3)
    # an authority that does not exist (dead DirPort and ORPort): this tor can never bootstrap
    line = re.sub(r"127\.0\.0\.1:\d+", f"127.0.0.1:{dead}", tornet.dir_authority_line, count=1)
    line = re.sub(r"orport=\d+", f"orport={dead}", line)
    c = tornet.start_client("unbootstrapped", socks, control, authority_line=line)
    try:
        deadline = time.monotonic() + 20
        while "Opening Control listener" not in c.log_text() and "Opened Control listener" not in c.log_text():
            assert time.monotonic() < deadline, c.log_text()
            time.sleep(0.2)
        out = tmp_path / "pkg.part"
        r = subprocess.run([*TORFETCH, "--tor-control", str(control), *fetch_args(world, out)],
                           capture_output=True, text=True, timeout=60)
        assert r.returncode == 3, r.stderr
        assert re.search(r"tor is not bootstrapped \(\d+%\)", r.stderr), r.stderr
        # without a control port the request is bounded by the deadline, never direct
        r = subprocess.run([*TORFETCH, "--proxy", f"socks5h://127.0.0.1:{socks}", "--deadline", "4",
                            "--connect-timeout", "3", *fetch_args(world, out)], capture_output=True, text=True, timeout=90)
        assert r.returncode == 3, r.stderr
        assert not out.exists() and [p for p in tmp_path.iterdir() if p.name.startswith(".torfetch-")] == []
    finally:
        c.stop()


async def test_audit_catches_a_socksport_without_isolation(tornet: TorNetwork, world, tmp_path) -> None:
    socks, control = free_ports(2)
    c = tornet.start_client("noisolation", socks, control)
    # the same client, but its SocksPort ignores credentials
    torrc = c.datadir / "torrc"
    c.stop()
    torrc.write_text(torrc.read_text().replace("IsolateSOCKSAuth", "NoIsolateSOCKSAuth"))
    c.start()
    try:
        tornet.wait_bootstrapped(c, time.monotonic() + 60)
        m = _port(world["mirror"].url)
        opts = Options(url="http://x.test/", output=tmp_path / "o", proxy=f"socks5h://127.0.0.1:{socks}",
                       tor_control=str(control), audit_circuits=True)
        with pytest.raises(IsolationError, match="shared a Tor circuit"):
            async with tor_context(opts, lambda s: None) as tor:
                async with Network(proxy=tor.proxy, timeouts=Timeouts()) as net:
                    await net.get_ok("package", f"http://mirror.test:{m}/repo/{world['pkg'].name}", max_bytes=10**6, timeout=60)
                    await net.get_ok("signature", f"http://sigs.test:{m}/sigs/{world['pkg'].name}.t", max_bytes=2048, timeout=60)
                    await tor.audit.check(net.opened_streams())
    finally:
        c.stop()


async def test_control_port_unreachable_is_tor_unavailable(tmp_path) -> None:
    (dead,) = free_ports(1)
    opts = Options(url="http://x.test/", output=tmp_path / "o", tor_control=str(dead))
    with pytest.raises(TorUnavailable, match="control port"):
        async with tor_context(opts, lambda s: None):
            pass


@pytest.mark.skipif(shutil.which("strace") is None, reason="needs strace")
def test_no_leaks_under_strace(tornet: TorNetwork, world, tmp_path) -> None:
    """Every inet connection goes to the SOCKS port; nothing is sent to port 53."""
    out = tmp_path / "pkg.part"
    trace = tmp_path / "trace"
    r = subprocess.run(["strace", "-f", "-qq", "-e", "trace=connect,sendto,sendmsg", "-o", str(trace),
                        *TORFETCH, "--proxy", tornet.proxy, *fetch_args(world, out)],
                       capture_output=True, text=True, timeout=180)
    assert r.returncode == 0, r.stderr
    text = trace.read_text()
    inet = re.findall(r"connect\(\d+, \{sa_family=AF_INET6?, sin6?_port=htons\((\d+)\), [^}]*?\"([0-9a-f.:]+)\"", text)
    assert inet, text[:2000]
    assert {(port, addr) for port, addr in inet} == {(str(tornet.socks_port), "127.0.0.1")}, inet
    assert "htons(53)" not in text
    assert out.read_bytes() == world["pkg"].read_bytes()


def test_tor_launch_starts_and_stops_a_private_tor(tornet: TorNetwork, world, tmp_path) -> None:
    """--tor launch with --tor-config joining the test network (as a user would add bridges)."""
    from tests.tornet import COMMON, TEST_NAMES

    conf = tmp_path / "extra.torrc"
    conf.write_text(COMMON + tornet.dir_authority_line + "ConfluxEnabled 0\n"
                    + "".join(f"MapAddress {n} 127.0.0.1\n" for n in TEST_NAMES))
    (tmp_path / "sync").mkdir()
    out = tmp_path / "sync" / "test.db.part"  # where pacman writes a db (only there is it fetched without proof)
    m = _port(world["mirror"].url)
    # the launched tor's DataDirectory (and so its torrc, on its command line) goes under a TMPDIR of our own:
    # other tor processes on this machine (other test runs) do not confuse the check
    tmp = tmp_path / "tmp"
    tmp.mkdir()
    r = subprocess.run([*TORFETCH, "-v", "--tor", "launch", "--tor-config", str(conf), "-O", str(out),
                        f"http://mirror.test:{m}/repo/test.db"], capture_output=True, text=True, timeout=180,
                       env={**os.environ, "TMPDIR": str(tmp)})
    assert r.returncode == 0, r.stderr
    assert "private tor bootstrapped" in r.stderr
    assert out.read_bytes() == (world["repo"].repo_dir / "test.db").read_bytes()
    assert [p for p in _tor_procs() if str(tmp) in p.cmdline] == []  # the launched tor is gone
    assert list(tmp.iterdir()) == []  # and so is its DataDirectory


def _tor_procs():
    import os
    from dataclasses import dataclass

    @dataclass(frozen=True)
    class P:
        pid: int
        cmdline: str

    out = []
    for d in os.listdir("/proc"):
        if d.isdigit():
            try:
                with open(f"/proc/{d}/comm") as f:
                    if f.read().strip() == "tor":
                        with open(f"/proc/{d}/cmdline", "rb") as c:
                            out.append(P(int(d), c.read().replace(b"\0", b" ").decode(errors="replace")))
            except OSError:
                pass
    return out
