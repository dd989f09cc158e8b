"""--tor launch's tor and its DataDirectory never outlive torfetch: signals, a tor that cannot start, SIGTERM
while bootstrapping and mid-download on the private Tor network."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers.files import FileServer
from tests.tornet import COMMON, TEST_NAMES, TorNetwork, free_ports

pytestmark = [pytest.mark.tor]
TORFETCH = [sys.executable, "-m", "torfetch"]


def _sync(tmp_path: Path) -> Path:
    """Where pacman writes sync dbs: only there is a .db repository metadata."""
    d = tmp_path / "sync"
    d.mkdir(exist_ok=True)
    return d


def _tor_children(ppid: int) -> list[tuple[int, list[str]]]:
    """(pid, argv) of every tor process whose parent is ``ppid``."""
    found = []
    for d in os.listdir("/proc"):
        if not d.isdigit():
            continue
        try:
            with open(f"/proc/{d}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            with open(f"/proc/{d}/cmdline", "rb") as f:
                argv = [a.decode(errors="replace") for a in f.read().split(b"\0") if a]
        except OSError:
            continue
        if int(fields[1]) == ppid and argv and os.path.basename(argv[0]) == "tor":
            found.append((int(d), argv))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def _wait(cond, what: str, timeout: float = 60.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        if cond():
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.1)


def _env(tmp: Path) -> dict[str, str]:
    """The launched tor's DataDirectory goes under TMPDIR: a directory of this test's own."""
    tmp.mkdir(exist_ok=True)
    return {**os.environ, "TMPDIR": str(tmp)}


def _launched_tor(p: subprocess.Popen[str]) -> tuple[int, Path]:
    _wait(lambda: _tor_children(p.pid) or p.poll() is not None, "torfetch to start its tor")
    assert p.poll() is None, p.communicate()
    (pid, argv), = _tor_children(p.pid)
    torrc = Path(argv[argv.index("-f") + 1])
    return pid, torrc.parent


def test_sigterm_while_the_private_tor_bootstraps(tmp_path: Path) -> None:
    """A tor that can never bootstrap (its only authority is a dead port on 127.0.0.1): SIGTERM stops both."""
    (dead,) = free_ports(1)
    conf = tmp_path / "extra.torrc"
    conf.write_text(COMMON + f"DirAuthority dead orport={dead} no-v2 v3ident={'A' * 40} 127.0.0.1:{dead} {'B' * 40}\n")
    (tmp_path / "sync").mkdir()
    out = tmp_path / "sync" / "core.db.part"
    tmp = tmp_path / "tmp"
    p = subprocess.Popen([*TORFETCH, "--tor", "launch", "--tor-config", str(conf), "-O", str(out),
                          "http://mirror.test/core.db"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         env=_env(tmp))
    pid, data = _launched_tor(p)
    _wait(lambda: (data / "tor.log").exists() and "Bootstrapped" in (data / "tor.log").read_text(errors="replace"),
          "tor to begin bootstrapping")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err.splitlines() == ["torfetch: interrupted by SIGTERM: core.db.part was not written"], err
    assert not _alive(pid)
    assert not data.exists() and list(tmp.iterdir()) == []
    assert not out.exists()


def test_a_private_tor_that_cannot_start_is_one_line_and_cleaned_up(tmp_path: Path) -> None:
    conf = tmp_path / "extra.torrc"
    conf.write_text("NoSuchTorOption 1\n")
    tmp = tmp_path / "tmp"
    r = subprocess.run([*TORFETCH, "--tor", "launch", "--tor-config", str(conf), "-O", str(_sync(tmp_path) / "core.db.part"),
                        "http://mirror.test/core.db"], capture_output=True, text=True, timeout=60, env=_env(tmp))
    assert r.returncode == 3, r.stderr
    lines = r.stderr.splitlines()
    assert len(lines) == 1 and lines[0].startswith("torfetch: tor: the private tor exited"), r.stderr
    assert "NoSuchTorOption" in lines[0]
    assert list(tmp.iterdir()) == []


def test_sigterm_mid_download_over_the_private_network(tornet: TorNetwork, tmp_path: Path) -> None:
    """Bootstrapped through the test network, the body trickling in: SIGTERM stops tor and removes its directory."""
    www = tmp_path / "www"
    (www / "repo").mkdir(parents=True)
    (www / "repo" / "core.db").write_bytes(os.urandom(200_000))
    conf = tmp_path / "extra.torrc"
    conf.write_text(COMMON + tornet.dir_authority_line + "ConfluxEnabled 0\n"
                    + "".join(f"MapAddress {n} 127.0.0.1\n" for n in TEST_NAMES))
    cache = tmp_path / "sync"
    cache.mkdir()
    tmp = tmp_path / "tmp"
    with FileServer(www) as mirror:
        mirror.behaviour.rules["core.db"] = "trickle"
        mirror.behaviour.trickle_bytes = 256
        mirror.behaviour.trickle_interval = 0.5
        port = mirror.url.rsplit(":", 1)[1]
        p = subprocess.Popen([*TORFETCH, "--tor", "launch", "--tor-config", str(conf), "-O", str(cache / "core.db.part"),
                              f"http://mirror.test:{port}/repo/core.db"], stdout=subprocess.PIPE,
                             stderr=subprocess.PIPE, text=True, env=_env(tmp))
        pid, data = _launched_tor(p)
        # mid-download: the request reached the mirror through Tor and our temp file exists
        _wait(lambda: mirror.requests and any(x.name.startswith(".torfetch-") for x in cache.iterdir())
              or p.poll() is not None, "the download through Tor", timeout=150)
        assert p.poll() is None, p.communicate()
        time.sleep(0.5)
        p.send_signal(signal.SIGTERM)
        _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err.splitlines() == ["torfetch: interrupted by SIGTERM: core.db.part was not written"], err
    assert not _alive(pid)
    assert not data.exists() and list(tmp.iterdir()) == []
    assert list(cache.iterdir()) == []
