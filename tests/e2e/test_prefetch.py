"""Real pacman 6 upgrades with `torfetch prefetch` / `torfetch upgrade` in front of XferCommand = torfetch.

The sandbox has version 1.0-1 of some packages installed (``pacman -U`` of local files, no download); the
repository on 127.0.0.1 has 1.0-2 of each, signed, with a local Rekor-API log. What pacman's XferCommand
fetched is read from the mirror's request log: torfetch is the only program that talks to the mirror.
"""

from __future__ import annotations

import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from tests.e2e.conftest import LogFixture, log_args, needs_pacman
from tests.pacman_sandbox import PacmanSandbox
from tests.pkgbuild import build_package
from tests.repo import ARCH, MinisignKey, Repo, make_repo, sha256_file
from tests.servers.base import Handler
from tests.servers.files import FileServer

pytestmark = [needs_pacman, pytest.mark.pacman]

TORFETCH = [sys.executable, "-m", "torfetch"]
GOOD = ("alpha", "beta", "gamma", "delta")
OVERLAP_WAIT = 30.0  # bound on a held response's wait for a second one to start


class OverlapMirror(FileServer):
    """A mirror that records when each package GET starts and ends, and can hold the first package response
    until a second package request has started (bounded): a strictly serial client then shows no overlap."""

    def __init__(self, root: Path) -> None:
        super().__init__(root)
        self.events: list[str] = []
        self.hold = False
        self._second = threading.Event()
        self._active = 0
        self._elock = threading.Lock()

    def package_gets(self) -> list[str]:
        with self._lock:
            return [p.rsplit("/", 1)[-1] for m, p in self.requests if m == "GET" and ".pkg.tar" in p
                    and not p.endswith(".t")]

    def _handle(self, h: Handler, method: str) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        if ".pkg.tar" not in path or path.endswith(".t"):
            return super()._handle(h, method)
        name = path.rsplit("/", 1)[-1]
        with self._elock:
            self.events.append(f"start {name}")
            self._active += 1
            if self._active >= 2:
                self._second.set()
        try:
            if self.hold:
                self._second.wait(OVERLAP_WAIT)
            super()._handle(h, method)
        finally:
            with self._elock:
                self._active -= 1
                self.events.append(f"end {name}")

    def max_overlap(self) -> int:
        active = best = 0
        for e in self.events:
            active += 1 if e.startswith("start ") else -1
            best = max(best, active)
        return best


@pytest.fixture(scope="module")
def upgrade_repo(tmp_path_factory) -> tuple[Repo, dict[str, Path]]:
    """1.0-2 of every package in the repo; 1.0-1 of each as local files to install first."""
    root = tmp_path_factory.mktemp("uprepo")
    repo = make_repo(root)
    old: dict[str, Path] = {}
    names = (*GOOD, "flipped", "otherkey", "unlogged")
    for name in names:
        old[name] = build_package(root / "old", name, "1.0-1", ARCH,
                                  files={f"usr/share/{name}/v": b"1\n"})
        repo.add(name, "1.0-2", files={f"usr/share/{name}/v": b"2\n"})
    # a mirror serving other bytes than the db and the signature vouch for
    p = repo.packages["flipped"]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    # a correctly listed package whose transparency signature is by a key the user does not trust
    other = MinisignKey.generate(root / "otherkeys", "other")
    other.sign_hex(sha256_file(repo.packages["otherkey"]), repo.packages["otherkey"].name, repo.sig_path("otherkey"))
    return repo, old


@pytest.fixture
def mirror(upgrade_repo):
    repo, _ = upgrade_repo
    with OverlapMirror(repo.root) as server:
        yield server


def make_sandbox(tmp_path: Path, repo: Repo, mirror: FileServer, rekor, installed: tuple[str, ...],
                 old: dict[str, Path], extra: tuple[str, ...] = ("--direct",), host: str | None = None,
                 ) -> tuple[PacmanSandbox, list[str]]:
    """``host``: reach the mirror and the log by that name (``*.test``, behind a test SOCKS proxy)."""
    base = mirror.url if host is None else mirror.url.replace("127.0.0.1", f"mirror.{host}")
    log = rekor if host is None else LogFixture(rekor.url.replace("127.0.0.1", f"log.{host}"), rekor.key_pem_path)
    fetch_args = ["--transparency-url", f"{base}/sigs", "--pubkey", repo.key.pub_line,
                  *log_args(log, tmp_path / "state"), "--config", "/dev/null", *extra]
    sb = PacmanSandbox(tmp_path / "root", f"{base}/repo", fetch_args).write()
    r = sb.run("-U", *(str(old[n]) for n in installed))
    assert r.returncode == 0, r.stdout + r.stderr
    return sb, [*fetch_args, "--pacman-conf", str(sb.conf)]


def torfetch(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TORFETCH, *args], capture_output=True, text=True, timeout=timeout,
                          env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})


def test_prefetch_places_the_upgrade_and_pacman_downloads_none_of_it(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, GOOD, old)
    assert sb.run("-Sy").returncode == 0
    mirror.hold = True  # the first package answer waits for a second request: only concurrency passes quickly
    r = torfetch("prefetch", *args, "--jobs", "4")
    assert r.returncode == 0, r.stderr
    placed = sorted(repo.packages[n].name for n in GOOD)
    assert sb.cached_packages() == placed
    for n in GOOD:
        assert (sb.cachedir / repo.packages[n].name).read_bytes() == repo.packages[n].read_bytes()
        assert (sb.cachedir / repo.packages[n].name).stat().st_mode & 0o777 == 0o644
        [ln] = [ln for ln in r.stderr.splitlines() if ln.startswith(repo.packages[n].name)]  # one line each
        assert "verified: signature, log, .PKGINFO, sync db sha256" in ln, ln
    assert "4 placed, 0 already there" in r.stderr and "0 failed" in r.stderr
    assert mirror.max_overlap() >= 2, mirror.events  # the server saw package downloads overlap
    assert sorted(mirror.package_gets()) == placed  # each package downloaded once
    assert sb.leftovers() == []
    # pacman then finds every package in CacheDir: its XferCommand (torfetch) fetches none of them
    mirror.hold = False
    with mirror._lock:
        mirror.requests.clear()
    r = sb.run("-Su")
    assert r.returncode == 0, r.stdout + r.stderr
    assert mirror.package_gets() == [], mirror.requests
    for n in GOOD:
        assert (sb.root / f"usr/share/{n}/v").read_text() == "2\n"
    # a second prefetch: nothing left to do, nothing fetched
    r = torfetch("prefetch", *args)
    assert r.returncode == 0, r.stderr
    assert mirror.package_gets() == []
    assert "0 package(s) in the upgrade" in r.stderr


def test_already_cached_with_the_db_sha256_is_not_fetched_again(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha", "beta"), old)
    assert sb.run("-Sy").returncode == 0
    a, b = repo.packages["alpha"], repo.packages["beta"]
    (sb.cachedir / a.name).write_bytes(a.read_bytes())
    (sb.cachedir / b.name).write_bytes(b"a stale, wrong file" * 10)  # not the db's sha256: replaced
    r = torfetch("prefetch", *args)
    assert r.returncode == 0, r.stderr
    assert mirror.package_gets() == [b.name], r.stderr
    assert (sb.cachedir / b.name).read_bytes() == b.read_bytes()
    assert "1 placed, 1 already there" in r.stderr


def test_failed_packages_are_not_placed_and_pacman_refuses_them_too(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha", "flipped", "otherkey"), old)
    assert sb.run("-Sy").returncode == 0
    r = torfetch("prefetch", *args)
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    flipped, otherkey = repo.packages["flipped"].name, repo.packages["otherkey"].name
    # one line each, naming the file and why
    [fl] = [ln for ln in lines if ln.startswith(flipped)]
    assert "not placed" in fl and "is not the sha256" in fl and "the sync db test.db lists" in fl, fl
    [ok] = [ln for ln in lines if ln.startswith(otherkey)]
    assert "not placed" in ok and "was made by key" in ok, ok
    assert "1 placed" in r.stderr and "2 failed" in r.stderr
    assert sb.cached_packages() == [repo.packages["alpha"].name]
    assert sb.leftovers() == []
    assert "Traceback" not in r.stderr
    # pacman then asks its XferCommand (torfetch) for the two, which refuses them as well
    with mirror._lock:
        mirror.requests.clear()
    r = sb.run("-Su")
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert "failed to retrieve some files" in out or "error invoking external downloader" in out, out
    asked = mirror.package_gets()
    assert repo.packages["alpha"].name not in asked, asked  # placed by the prefetch: pacman took it from CacheDir
    assert asked and set(asked) <= {flipped, otherkey}, asked
    assert "torfetch: transparency signature:" in r.stderr, out  # XferCommand's own refusal
    assert sb.cached_packages() == [repo.packages["alpha"].name]
    assert (sb.root / "usr/share/alpha/v").read_text() == "1\n"  # the transaction did not run


def test_upgrade_runs_sync_prefetch_and_upgrade(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha", "beta", "gamma"), old)
    r = torfetch("upgrade", *args, "--", "--noconfirm")
    assert r.returncode == 0, r.stdout + r.stderr
    for n in ("alpha", "beta", "gamma"):
        assert (sb.root / f"usr/share/{n}/v").read_text() == "2\n"
    # each package was fetched once, by the prefetch (the db by pacman -Sy through XferCommand)
    assert sorted(mirror.package_gets()) == sorted(repo.packages[n].name for n in ("alpha", "beta", "gamma"))
    assert "3 placed" in r.stderr


def test_upgrade_stops_when_the_prefetch_fails(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha", "flipped"), old)
    r = torfetch("upgrade", *args, "--", "--noconfirm")
    assert r.returncode == 1, r.stdout + r.stderr
    assert (sb.root / "usr/share/alpha/v").read_text() == "1\n"  # pacman -Su never ran
    assert "is not the sha256" in r.stderr
    assert "pacman -Su was not run" in r.stderr  # says why it stopped, not only the prefetch's lines


def test_prefetch_takes_pacman_conf_from_the_config_file(tmp_path, upgrade_repo, mirror, rekor) -> None:
    # the config file's pacman_conf is the pacman.conf the prefetch plans from, as for the XferCommand
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha",), old)
    assert sb.run("-Sy").returncode == 0
    i = args.index("--pacman-conf")
    conf_file = tmp_path / "torfetch.toml"
    conf_file.write_text(f'pacman_conf = "{sb.conf}"\n')
    rest = [a for j, a in enumerate(args) if j not in (i, i + 1)]
    rest[rest.index("--config") + 1] = str(conf_file)
    r = torfetch("prefetch", *rest)
    assert r.returncode == 0, r.stderr
    assert sb.cached_packages() == [repo.packages["alpha"].name]


def test_a_config_error_is_one_line_before_pacman_runs(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha", "beta"), old)
    bad = tmp_path / "bad.toml"
    bad.write_text('prxy = "x"\n')
    args[args.index("--config") + 1] = str(bad)
    with mirror._lock:
        mirror.requests.clear()
    for cmd in (("upgrade", *args, "--", "--noconfirm"), ("prefetch", *args)):
        r = torfetch(*cmd)
        assert r.returncode == 2, r.stderr
        assert r.stderr.count("prxy") == 1 and len(r.stderr.strip().splitlines()) == 1, r.stderr
    assert mirror.requests == []  # not even pacman -Sy's db fetch
    assert not (sb.root / "var/lib/pacman/sync/test.db").exists()


def test_quiet_prefetch_still_names_the_package_that_failed(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha", "flipped"), old)
    assert sb.run("-Sy").returncode == 0
    r = torfetch("prefetch", *args, "-q")
    assert r.returncode == 1, r.stderr
    lines = r.stderr.splitlines()
    assert [ln for ln in lines if ln.startswith(repo.packages["flipped"].name) and "not placed" in ln], r.stderr
    assert not [ln for ln in lines if ln.startswith(repo.packages["alpha"].name)], r.stderr  # -q: no success lines


def test_prefetch_before_any_sync_says_what_pacman_said(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha",), old)
    r = torfetch("prefetch", *args)  # no pacman -Sy yet: no sync db
    assert r.returncode == 0, r.stderr
    assert "warning: no sync db" in r.stderr and "run pacman -Sy first" in r.stderr, r.stderr  # pacman says nothing
    assert "0 package(s) in the upgrade" in r.stderr


@pytest.mark.parametrize("isolate", ["purpose", "package"])
def test_isolate_package_gives_every_package_its_own_circuits(tmp_path, upgrade_repo, mirror, rekor, isolate) -> None:
    """One process, one Network: with --isolate package each package's lookups still get their own SOCKS
    credentials (= Tor circuits); without it, one set per purpose and service for the whole upgrade."""
    from tests.servers.socks import SocksProxy

    repo, old = upgrade_repo
    names = ("alpha", "beta", "gamma")
    with SocksProxy() as proxy:
        sb, args = make_sandbox(tmp_path, repo, mirror, rekor, names, old,
                                extra=("--proxy", proxy.url, "--isolate", isolate), host="test")
        assert sb.run("-Sy").returncode == 0
        proxy.clear()
        r = torfetch("prefetch", *args)
        assert r.returncode == 0, r.stderr
        connects = list(proxy.connects)
    assert sb.cached_packages() == sorted(repo.packages[n].name for n in names)
    assert connects and all(c.allowed and c.host.endswith(".test") for c in connects)  # nothing went direct
    for purpose, host in (("package", "mirror.test"), ("signature", "mirror.test"), ("log", "log.test")):
        creds = {c.credentials for c in connects if c.username == f"torfetch-{purpose}" and c.host == host}
        assert len(creds) == (len(names) if isolate == "package" else 1), (purpose, creds)
    # and the purposes never share credentials
    by_user: dict[str, set[str | None]] = {}
    for c in connects:
        by_user.setdefault(c.password or "", set()).add(c.username)
    assert all(len(users) == 1 for users in by_user.values()), by_user


def test_a_network_failure_is_exit_3_and_the_others_are_placed(tmp_path, upgrade_repo, mirror, rekor) -> None:
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha", "beta"), old)
    assert sb.run("-Sy").returncode == 0
    mirror.behaviour.rules[repo.packages["beta"].name] = "404"
    r = torfetch("prefetch", *args)
    assert r.returncode == 3, r.stderr
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith(repo.packages["beta"].name)]
    assert "not placed" in line and "404" in line, line
    assert sb.cached_packages() == [repo.packages["alpha"].name]
    assert sb.leftovers() == []


def test_interrupted_prefetch_places_nothing_half_done(tmp_path, upgrade_repo, mirror, rekor) -> None:
    """SIGINT while packages stream: exit 130, one line, no partial or temporary file in CacheDir."""
    import signal
    import time

    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, GOOD, old)
    assert sb.run("-Sy").returncode == 0
    b = mirror.behaviour
    for n in GOOD:
        b.rules[repo.packages[n].name] = "trickle"
    b.trickle_bytes, b.trickle_interval = 64, 0.2  # several seconds per package: the signal comes mid-stream
    p = subprocess.Popen([*TORFETCH, "prefetch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env={"PATH": "/usr/bin:/bin", "LC_ALL": "C"})
    try:
        for _ in range(600):  # bounded: until the mirror saw a package request (at most 60 s)
            if mirror.package_gets():
                break
            time.sleep(0.1)
        assert mirror.package_gets(), "no package request reached the mirror"
        p.send_signal(signal.SIGINT)
        _, err = p.communicate(timeout=60)
    finally:
        if p.poll() is None:
            p.kill()
            p.wait(timeout=10)
    assert p.returncode == 130, err
    assert "interrupted by SIGINT" in err, err
    assert "Traceback" not in err
    assert sb.cached_packages() == [] and sb.leftovers() == [], (sb.cached_packages(), sb.leftovers())


def test_upgrade_passes_pacmans_exit_code_through(tmp_path, upgrade_repo, mirror, rekor) -> None:
    """A pacman step that fails ends the upgrade with pacman's own exit code; nothing after it runs."""
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("alpha",), old)
    direct = subprocess.run(["pacman", "--config", str(sb.conf), "-Sy", "--no-such-pacman-option"],
                            capture_output=True, text=True, timeout=60)
    assert direct.returncode != 0
    r = torfetch("upgrade", *args, "--", "--no-such-pacman-option")
    assert r.returncode == direct.returncode, r.stdout + r.stderr
    assert mirror.package_gets() == [] and "torfetch prefetch:" not in r.stderr  # the prefetch never ran
    assert (sb.root / "usr/share/alpha/v").read_text() == "1\n"


def test_a_log_check_failure_is_not_placed_and_pacman_refuses_it_too(tmp_path, upgrade_repo, mirror, rekor) -> None:
    """--no-upload and a signature nobody put in the log: the log check fails, in the prefetch and in pacman's
    XferCommand alike (no other test fetches "unlogged", so its entry is never uploaded)."""
    repo, old = upgrade_repo
    sb, args = make_sandbox(tmp_path, repo, mirror, rekor, ("unlogged",), old, extra=("--direct", "--no-upload"))
    assert sb.run("-Sy").returncode == 0
    r = torfetch("prefetch", *args)
    assert r.returncode == 1, r.stderr
    name = repo.packages["unlogged"].name
    [line] = [ln for ln in r.stderr.splitlines() if ln.startswith(name)]
    assert "not placed: transparency log:" in line and "is not in the log" in line, line
    assert sb.cached_packages() == [] and sb.leftovers() == []
    r = sb.run("-Su")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and "is not in the log" in r.stderr, out
    assert mirror.package_gets() and set(mirror.package_gets()) == {name}
    assert sb.cached_packages() == [] and (sb.root / "usr/share/unlogged/v").read_text() == "1\n"

