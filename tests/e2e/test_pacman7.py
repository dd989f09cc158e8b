"""Real pacman 7.0 (Debian trixie) and 7.1 (Debian sid) with ``DownloadUser = alpm``, torfetch as XferCommand.

Configured as a user configures it: ``XferCommand = /usr/bin/torfetch -O %o %u`` and everything else in the
chroot's /etc/torfetch.toml (root-owned, 0644), which is the shipped contrib/torfetch.toml with its placeholders
filled in. Its ``proxy`` is the recording SOCKS proxy (tests/servers/socks.py) standing where the user's tor
would; the repository, signature server and log are the local servers of the pacman 6 tests, named ``*.test``
so that only the proxy can reach them (the chroot shares the host's 127.0.0.1).

pacman 7 runs XferCommand as the DownloadUser with HOME still /root; torfetch must keep its state in
/var/lib/torfetch (made by ``torfetch setup``, owned by alpm), leave nothing in CacheDir, and say in one line
how to fix a missing state directory. Without ``proxy`` and without a tor at 127.0.0.1:9050 it must fail
closed without touching the mirror; a world-writable config is refused.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.chroot import SRC, Chroot, can_run
from tests.e2e.conftest import LogFixture, needs_pacman
from tests.repo import Repo
from tests.servers.files import FileServer
from tests.servers.socks import ATYP_NAME, SocksProxy
from torfetch.store.logstate import LogStateStore

pytestmark = [needs_pacman, pytest.mark.pacman, pytest.mark.slow,
              pytest.mark.skipif(can_run() is not None, reason=str(can_run()))]

SUITES = {"trixie": "7.0", "sid": "7.1"}
LOG_KEY = "/etc/torfetch-test/rekor.pem"  # readable by alpm, as a user's key file would be


TEMPLATE = SRC / "contrib" / "torfetch.toml"  # the shipped example: what a user installs as /etc/torfetch.toml
CONFIG = "/etc/torfetch.toml"


def xfer_command(config: str | None = None) -> str:
    """The one XferCommand line the pacman 7 tests write into pacman.conf: what a user writes, nothing more
    (everything else is in /etc/torfetch.toml, or in the file a bare ``--config`` names)."""
    args = ["/usr/bin/torfetch", *(["--config", config] if config else []), "-O", "%o", "%u"]
    for a in args:  # pacman splits XferCommand on spaces, no shell
        assert " " not in a, a
    return " ".join(args)


def _replace_once(text: str, old: str, new: str) -> str:
    # exactly once: if the shipped example changes shape, the test says so instead of silently testing less
    assert text.count(old) == 1, f"contrib/torfetch.toml: expected {old!r} exactly once"
    return text.replace(old, new)


def torfetch_toml(*, match: str, transparency_url: str, pubkey: str, log_url: str, log_key: str = LOG_KEY,
                  proxy: str | None, verbose: int = 1, rebuilder: str | None = None,
                  rebuilder_key: str | None = None, top: tuple[str, ...] = ()) -> str:
    """contrib/torfetch.toml as shipped, with only its placeholders filled in: the repository's match URL,
    transparency_url, pubkey, log_url/log_key, the proxy a user's tor listens on (None: left commented out,
    torfetch's default), the rebuilder lines of the [[repo]] table. ``verbose`` (and ``top``) add top-level
    lines, because the tests read the per-check lines (-v; -vv for rebuilder answers); state_dir stays the example's /var/lib/torfetch."""
    text = TEMPLATE.read_text()
    if proxy is not None:
        text = _replace_once(text, '# proxy = "socks5h://127.0.0.1:9050"\n', f'proxy = "{proxy}"\n')
    head, sep, repo = text.partition("\n[[repo]]\n")
    assert sep, "contrib/torfetch.toml has no [[repo]] table"
    extra = ([f"verbose = {verbose}"] if verbose else []) + list(top)
    if extra:
        head += "\n# added by the test\n" + "\n".join(extra) + "\n"
    (old_match,) = re.findall(r"^match = .*$", repo, flags=re.M)
    repo = _replace_once(repo, old_match, f'match = "{match}"')
    repo = _replace_once(repo, 'transparency_url = "https://mirror.example.org/myrepo/sigs"',
                         f'transparency_url = "{transparency_url}"')
    repo = _replace_once(repo, 'pubkey = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"',
                         f'pubkey = "{pubkey}"')
    repo = _replace_once(repo, '# log_url = "https://rekor.example.org"', f'log_url = "{log_url}"')
    repo = _replace_once(repo, '# log_key = "/etc/torfetch/rekor.example.org.pem"', f'log_key = "{log_key}"')
    if rebuilder is not None:
        repo = _replace_once(repo, '# rebuilder = ["https://rebuilder.example.org/"]', f'rebuilder = ["{rebuilder}"]')
        repo = _replace_once(repo, '# required_rebuild_confirms = 1', "required_rebuild_confirms = 1")
    if rebuilder_key is not None:
        (old_key,) = re.findall(r"^# rebuilder_key = .*$", repo, flags=re.M)
        repo = _replace_once(repo, old_key, f'rebuilder_key = ["{rebuilder_key}"]')
    out = head + sep + repo
    # what the file says is what the test meant (a replacement that hit the wrong line would show here)
    doc = tomllib.loads(out)
    (table,) = doc["repo"]
    assert (table["match"], table["transparency_url"], table["pubkey"], table["log_url"], table["log_key"]) == (
        match, transparency_url, pubkey, log_url, log_key), table
    assert doc.get("proxy") == proxy and doc["state_dir"] == "/var/lib/torfetch", doc
    return out


def install_config(chroot: Chroot, text: str, *, path: str = CONFIG, mode: int = 0o644) -> None:
    """As the example's header says: install -o root -g root -m 644 (readable by alpm, writable by root)."""
    f = chroot.path(path)
    f.parent.mkdir(parents=True, exist_ok=True)
    f.write_text(text)
    os.chown(f, 0, 0)
    f.chmod(mode)


def behind_proxy(url: str, name: str) -> str:
    """A local server's URL under a ``.test`` name: only the SOCKS proxy resolves it (to 127.0.0.1), so a
    connection that bypassed the proxy could not reach the server at all."""
    assert url.startswith("http://127.0.0.1:"), url
    return url.replace("127.0.0.1", name, 1)


@dataclass(frozen=True)
class Names:
    """The servers as the chroot's torfetch asks the proxy for them: one name (origin, so one circuit) each."""

    mirror: str  # the repository (databases and packages)
    sigs: str  # the transparency signatures: the same file server under another origin
    log: str

    @classmethod
    def of(cls, mirror: FileServer, rekor: LogFixture) -> "Names":
        return cls(behind_proxy(mirror.url, "mirror.test"), behind_proxy(mirror.url, "sigs.test"),
                   behind_proxy(rekor.url, "log.test"))


def connects_by_host(proxy: SocksProxy) -> dict[str, set[str | None]]:
    """host → the SOCKS usernames (torfetch-<purpose>) it was reached with; every CONNECT was by name (ATYP 3,
    so nothing was resolved locally), to a name the proxy relays."""
    bad = [c for c in proxy.connects if c.atyp != ATYP_NAME or not c.allowed]
    assert bad == [], bad
    out: dict[str, set[str | None]] = {}
    for c in proxy.connects:
        out.setdefault(c.host, set()).add(c.username)
    return out


def assert_installed_through_proxy(proxy: SocksProxy, *, extra: dict[str, set[str | None]] | None = None) -> None:
    """A verified install reached the mirror, the signature server and the log, all through the proxy, each
    purpose with its own credentials (its own Tor circuit): package and log never share one."""
    assert connects_by_host(proxy) == {
        "mirror.test": {"torfetch-database", "torfetch-package"},
        "sigs.test": {"torfetch-signature"},
        "log.test": {"torfetch-log"},
        **(extra or {}),
    }, proxy.connects
    creds = {c.username: c.password for c in proxy.connects}
    assert creds["torfetch-package"] != creds["torfetch-log"], creds


@dataclass
class Pacman7:
    chroot: Chroot
    name: str  # a directory under /srv inside the chroot, one per test
    server: str
    config: str | None  # /etc/torfetch.toml's text (written by write()), or None to leave it alone
    proxy: SocksProxy | None = None  # cleared before each run, so its log is this run's
    xfer: str = xfer_command()

    @property
    def base(self) -> str:
        return f"/srv/{self.name}"

    @property
    def cachedir(self) -> Path:
        return self.chroot.path(f"{self.base}/root/var/cache/pacman/pkg")

    def write(self) -> "Pacman7":
        b = self.base
        for d in ("root/var/cache/pacman/pkg", "root/var/lib/pacman", "root/var/log", "gnupg", "hooks"):
            self.chroot.path(f"{b}/{d}").mkdir(parents=True, exist_ok=True)
        if self.config is not None:
            install_config(self.chroot, self.config)
        self.chroot.path(f"{b}/gnupg").chmod(0o700)  # pacman 7.1 needs GPGDir even with SigLevel = Never
        self.chroot.path(f"{b}/pacman.conf").write_text(
            "[options]\n"
            f"RootDir = {b}/root\n"
            f"DBPath = {b}/root/var/lib/pacman/\n"
            f"CacheDir = {b}/root/var/cache/pacman/pkg/\n"
            f"LogFile = {b}/root/var/log/pacman.log\n"
            f"GPGDir = {b}/gnupg/\n"
            f"HookDir = {b}/hooks/\n"
            "Architecture = x86_64\n"
            "SigLevel = Never\n"
            "DownloadUser = alpm\n"
            f"XferCommand = {self.xfer}\n"
            "[test]\n"
            f"Server = {self.server}\n"
        )
        return self

    def run(self, *args: str, timeout: float = 180):
        if self.proxy is not None:
            self.proxy.clear()
        return self.chroot.run(["pacman", "--config", f"{self.base}/pacman.conf", "--noconfirm", *args],
                               timeout=timeout, env={"LC_ALL": "C"})

    def installed(self, name: str) -> bool:
        local = self.chroot.path(f"{self.base}/root/var/lib/pacman/local")
        return local.is_dir() and any(p.name.startswith(name + "-") for p in local.iterdir())

    def cache_entries(self) -> list[str]:
        return sorted(p.name for p in self.cachedir.iterdir())

    def leftovers(self) -> list[str]:
        """Anything in CacheDir but finished packages: .part files, torfetch temp files, non-empty download dirs.

        pacman 7.1 itself leaves an empty download-XXXXXX after a failed XferCommand (measured with /bin/false
        too), so only an empty one is tolerated."""
        out: list[str] = []
        for p in self.cachedir.iterdir():
            if p.is_dir() and p.name.startswith("download-"):
                out += [f"{p.name}/{c.name}" for c in p.iterdir()]
            elif not (p.is_file() and p.name.endswith(".pkg.tar.zst")):
                out.append(p.name)
        sync = self.chroot.path(f"{self.base}/root/var/lib/pacman/sync")
        if sync.is_dir():
            out += [f"sync/{p.name}" for p in sync.iterdir() if p.name.endswith(".part") or p.name.startswith(".torfetch-")
                    or (p.is_dir() and any(p.iterdir()))]
        return out


@pytest.fixture(scope="session")
def socks() -> Iterator[SocksProxy]:
    """Where the user's tor would listen: every connection the chroot's torfetch makes lands here."""
    with SocksProxy() as proxy:
        yield proxy


@pytest.fixture(scope="session", params=list(SUITES), ids=[f"pacman{v}" for v in SUITES.values()])
def chroot(request: pytest.FixtureRequest, rekor: LogFixture) -> Iterator[Chroot]:
    c = Chroot.open(request.param)
    try:
        key = c.path(LOG_KEY)
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rekor.key_pem_path, key)
        key.chmod(0o644)
        # as the install does it: torfetch setup gives /var/lib/torfetch to pacman's DownloadUser
        r = c.run(["torfetch", "setup"], check=True)
        assert "/var/lib/torfetch created: owner alpm" in r.stdout, r.stdout
        yield c
    finally:
        c.close()


_counter = iter(range(10**6))


def _pacman(chroot: Chroot, signed_repo: Repo, mirror: FileServer, rekor: LogFixture, socks: SocksProxy) -> Pacman7:
    """A pacman 7 root whose repository, signatures and log torfetch reaches only through ``socks``."""
    n = Names.of(mirror, rekor)
    config = torfetch_toml(match=f"{n.mirror}/repo/", transparency_url=f"{n.sigs}/sigs",
                           pubkey=signed_repo.key.pub_line, log_url=n.log, proxy=socks.url)
    return Pacman7(chroot, f"t{next(_counter)}", f"{n.mirror}/repo", config, socks).write()


def _package(signed_repo: Repo, name: str) -> Path:
    """A package only this test (and this chroot) uses: its signature is new to the log."""
    if name not in signed_repo.packages:
        signed_repo.add(name)
    return signed_repo.packages[name]


def test_state_dir_made_by_setup_belongs_to_alpm(chroot: Chroot) -> None:
    st = chroot.path("/var/lib/torfetch").stat()
    alpm = chroot.run(["id", "-u", "alpm"], check=True).stdout.strip()
    assert (str(st.st_uid), st.st_mode & 0o777) == (alpm, 0o700)
    again = chroot.run(["torfetch", "setup"], check=True)  # idempotent
    assert "already in place" in again.stdout, again.stdout


def _remembered_sizes(state_file: Path) -> list[int]:
    """The sizes of every remembered tree of every log, read through torfetch's own state store."""
    logs = LogStateStore(state_file.parent).all_logs()
    return [rec.head.size for log in logs.values() for rec in log.trees.values()]


def test_good_package_installs_and_state_is_remembered(chroot: Chroot, signed_repo, mirror, rekor, socks) -> None:
    first = _package(signed_repo, f"first{chroot.suite}")
    second = _package(signed_repo, f"second{chroot.suite}")
    pm = _pacman(chroot, signed_repo, mirror, rekor, socks)
    r = pm.run("-Sy", f"first{chroot.suite}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert pm.installed(f"first{chroot.suite}")
    assert pm.cache_entries() == [first.name], pm.cache_entries()
    assert (pm.cachedir / first.name).read_bytes() == first.read_bytes()
    assert "Permission denied" not in out and "/root/.local" not in out, out
    assert_installed_through_proxy(socks)

    # the remembered head lives in /var/lib/torfetch, written by alpm (pacman 7 ran torfetch as alpm)
    state = chroot.path("/var/lib/torfetch/log-heads.json")
    alpm = int(chroot.run(["id", "-u", "alpm"], check=True).stdout)
    assert state.stat().st_uid == alpm
    (size1,) = _remembered_sizes(state)

    # a second run (new signature, so the log grew) proves consistency from the remembered head
    pm2 = _pacman(chroot, signed_repo, mirror, rekor, socks)
    r2 = pm2.run("-Sy", f"second{chroot.suite}")
    out2 = r2.stdout + r2.stderr
    assert r2.returncode == 0, out2
    assert f"consistent: size {size1} root" in out2 and "is a prefix of" in out2, out2
    assert "first view of log" not in out2
    assert_installed_through_proxy(socks)
    (size2,) = _remembered_sizes(state)
    assert size2 > size1
    assert pm.leftovers() == [] and pm2.leftovers() == []
    assert pm2.cache_entries() == [second.name]


@pytest.mark.parametrize("name,expect", [
    ("flipped", "does not match the downloaded file"),
    ("otherkey", "was made by key"),
])
def test_tampered_package_is_refused_and_nothing_left(chroot: Chroot, signed_repo, mirror, rekor, socks, name, expect) -> None:
    pm = _pacman(chroot, signed_repo, mirror, rekor, socks)
    r = pm.run("-Sy", name)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert expect in out, out
    assert not pm.installed(name)
    assert [e for e in pm.cache_entries() if not e.startswith("download-")] == []
    assert pm.leftovers() == [], pm.leftovers()
    assert "Traceback" not in out
    hosts = connects_by_host(socks)
    assert "torfetch-package" in hosts["mirror.test"] and set(hosts) <= {"mirror.test", "sigs.test", "log.test"}, hosts


def test_missing_state_dir_is_one_line_with_the_fix(chroot: Chroot, signed_repo, mirror, rekor, socks) -> None:
    state, aside = chroot.path("/var/lib/torfetch"), chroot.path("/var/lib/torfetch.aside")
    state.rename(aside)
    try:
        pm = _pacman(chroot, signed_repo, mirror, rekor, socks)
        r = pm.run("-Sy", "hello")
    finally:
        aside.rename(state)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and not pm.installed("hello"), out
    alpm = chroot.run(["id", "-u", "alpm"], check=True).stdout.strip()
    lines = [line for line in out.splitlines() if line.startswith("torfetch:")]
    assert lines == [
        f"torfetch: state: the state directory /var/lib/torfetch does not exist; torfetch runs as alpm (uid {alpm}): "
        "create it with 'sudo torfetch setup' (or: sudo install -d -o alpm -g alpm -m 0700 /var/lib/torfetch)"
    ], out
    assert pm.leftovers() == [], pm.leftovers()
    connects_by_host(socks)  # whatever it fetched before stopping went through the proxy


def _written_paths(trace: str) -> tuple[set[str], list[str]]:
    """From `strace -f` output: the pids that are torfetch (exec'd, plus their threads and children) and every
    path they created, opened for writing, renamed to or made a directory of (successful calls only)."""
    lines = trace.splitlines()
    ours: set[str] = set()
    written: list[str] = []
    for line in lines:
        pid, _, call = line.partition(" ")
        call = call.strip()
        if call.startswith("execve(") and '"/usr/bin/torfetch"' in call and not call.rstrip().endswith(
                ("ENOENT (No such file or directory)",)):
            ours.add(pid)
        if pid in ours and call.startswith(("clone(", "clone3(", "vfork(", "fork(")):
            child = call.rsplit("=", 1)[-1].strip().split()[0]
            if child.isdigit():
                ours.add(child)
        if pid not in ours or " = -1 " in call or "<unfinished" in call:
            continue
        if call.startswith(("openat(", "open(")) and ("O_CREAT" in call or "O_WRONLY" in call or "O_RDWR" in call):
            written.append(call.split('"')[1])
        elif call.startswith(("mkdir(", "mkdirat(")):
            written.append(call.split('"')[1])
        elif call.startswith(("rename(", "renameat(", "renameat2(")):
            written.append(call.split('"')[3])
    return ours, written


def test_torfetch_writes_only_in_pacmans_download_dir_and_state_dir(chroot: Chroot, signed_repo, mirror, rekor, socks) -> None:
    """Under real pacman 7 (run by the host's strace), the torfetch processes write nowhere but %o's
    download-XXXXXX directory (relative paths: it is the working directory) and /var/lib/torfetch."""
    pkg = _package(signed_repo, f"traced{chroot.suite}")
    pm = _pacman(chroot, signed_repo, mirror, rekor, socks)
    trace = chroot.run_dir / "strace.out"
    socks.clear()
    r = chroot.run(["pacman", "--config", f"{pm.base}/pacman.conf", "--noconfirm", "-Sy", f"traced{chroot.suite}"],
                   timeout=300, env={"LC_ALL": "C"},
                   wrap=["strace", "-f", "-qq", "-s", "256", "-o", str(trace),
                         "-e", "trace=execve,clone,clone3,fork,vfork,open,openat,mkdir,mkdirat,rename,renameat,renameat2"])
    assert r.returncode == 0, r.stdout + r.stderr
    assert pm.cache_entries() == [pkg.name]
    assert_installed_through_proxy(socks)
    ours, written = _written_paths(trace.read_text())
    assert ours, "strace saw no torfetch process"
    download = f"{pm.base}/root/var/cache/pacman/pkg/download-"
    db_download = f"{pm.base}/root/var/lib/pacman/sync/download-"
    # the package's temp file was made next to %o, inside pacman's private download-XXXXXX dir
    assert any(p.startswith(download) and f"/.torfetch-{pkg.name}.part." in p for p in written), written
    stray = [p for p in written
             if p.startswith("/") and not p.startswith((download, db_download, "/var/lib/torfetch/", "/dev/"))]
    assert stray == [], stray
    assert pm.leftovers() == []


def test_stale_part_in_cachedir_is_replaced_not_trusted(chroot: Chroot, signed_repo, mirror, rekor, socks) -> None:
    """pacman 7 moves a .part left in CacheDir into its download dir as %o (root-owned): torfetch, as alpm,
    must replace it with the verified download, never append to it or hand it over."""
    pkg = _package(signed_repo, f"stale{chroot.suite}")
    pm = _pacman(chroot, signed_repo, mirror, rekor, socks)
    (pm.cachedir / (pkg.name + ".part")).write_bytes(b"garbage from an earlier interrupted try" * 100)
    r = pm.run("-Sy", f"stale{chroot.suite}")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (pm.cachedir / pkg.name).read_bytes() == pkg.read_bytes()
    assert pm.leftovers() == [], pm.leftovers()
    assert_installed_through_proxy(socks)


def _nothing_at_9050() -> None:
    """The default-Tor test needs 127.0.0.1:9050 free; a tor running here would make it test nothing."""
    with socket.socket() as s:
        s.settimeout(2)
        if s.connect_ex(("127.0.0.1", 9050)) == 0:
            pytest.fail("something listens at 127.0.0.1:9050 (a tor?) on this machine: the test of torfetch's "
                        "default (no proxy in the config, no Tor) cannot run; stop it and rerun")


def test_no_proxy_in_config_and_no_tor_fails_closed_without_reaching_the_mirror(
        chroot: Chroot, signed_repo, mirror, rekor) -> None:
    """The shipped example as is (no ``proxy``): torfetch wants Tor at 127.0.0.1:9050 and, with nothing there,
    refuses in one line. The mirror is on 127.0.0.1 under its real address, reachable directly, so a silent
    clearnet fallback would show in its request log."""
    _nothing_at_9050()
    config = torfetch_toml(match=f"{mirror.url}/repo/", transparency_url=f"{mirror.url}/sigs",
                           pubkey=signed_repo.key.pub_line, log_url=rekor.url, proxy=None, verbose=0)
    pm = Pacman7(chroot, f"t{next(_counter)}", f"{mirror.url}/repo", config).write()
    seen = len(mirror.requests)
    r = pm.run("-Sy", "hello")
    out = r.stdout + r.stderr
    assert r.returncode != 0 and not pm.installed("hello"), out
    assert mirror.requests[seen:] == [], mirror.requests[seen:]
    lines = [line for line in out.splitlines() if line.startswith("torfetch:")]
    assert lines == ["torfetch: tor: no Tor SOCKS proxy at 127.0.0.1:9050: start tor, pass --proxy, or --direct "
                     "to fetch without Tor"], out
    assert "Traceback" not in out
    assert pm.leftovers() == [], pm.leftovers()


def test_world_writable_config_is_refused(chroot: Chroot, signed_repo, mirror, rekor, socks) -> None:
    """/etc/torfetch.toml decides what gets installed: world-writable, it is refused before anything is fetched."""
    pm = _pacman(chroot, signed_repo, mirror, rekor, socks)
    chroot.path(CONFIG).chmod(0o666)
    seen = len(mirror.requests)
    try:
        r = pm.run("-Sy", "hello")
    finally:
        chroot.path(CONFIG).chmod(0o644)
    out = r.stdout + r.stderr
    assert r.returncode != 0 and not pm.installed("hello"), out
    lines = [line for line in out.splitlines() if line.startswith("torfetch:")]
    assert len(lines) == 1 and f"refusing the config {CONFIG}: it is world-writable" in lines[0], out
    assert socks.connects == [] and mirror.requests[seen:] == [], (socks.connects, mirror.requests[seen:])
    assert [e for e in pm.cache_entries() if not e.startswith("download-")] == []
    sync = chroot.path(f"{pm.base}/root/var/lib/pacman/sync")
    assert not sync.is_dir() or [p.name for p in sync.iterdir() if not p.name.startswith("download-")] == []
    assert pm.leftovers() == [], pm.leftovers()


def test_bare_config_option_in_xfercommand(chroot: Chroot, signed_repo, mirror, rekor, socks) -> None:
    """``XferCommand = /usr/bin/torfetch --config FILE -O %o %u``: everything comes from FILE. /etc/torfetch.toml
    is absent, so the install works only if the named file is the one read."""
    pkg = _package(signed_repo, f"alt{chroot.suite}")
    pm = _pacman(chroot, signed_repo, mirror, rekor, socks)
    alt = "/etc/torfetch/alt.toml"
    assert pm.config is not None
    install_config(chroot, pm.config, path=alt)
    chroot.path(CONFIG).unlink()
    pm.xfer = xfer_command(alt)
    pm.config = None
    pm.write()
    r = pm.run("-Sy", f"alt{chroot.suite}")
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert pm.cache_entries() == [pkg.name]
    assert (pm.cachedir / pkg.name).read_bytes() == pkg.read_bytes()
    assert_installed_through_proxy(socks)
    assert pm.leftovers() == [], pm.leftovers()
