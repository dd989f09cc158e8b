"""Real pacman, torfetch as its XferCommand, a package download trickling in: SIGTERM and SIGKILL to torfetch."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import log_args, needs_pacman
from tests.pacman_sandbox import PacmanSandbox
from tests.servers.files import FileServer

pytestmark = [needs_pacman, pytest.mark.pacman]


def _children(ppid: int) -> list[tuple[int, list[str]]]:
    out = []
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
        if int(fields[1]) == ppid:
            out.append((int(d), argv))
    return out


def _torfetch_under(pacman: subprocess.Popen[str], cachedir: Path) -> int:
    """The torfetch pacman started, once its temp file is in CacheDir (mid-download)."""
    deadline = time.monotonic() + 60
    for _ in range(100_000):
        assert pacman.poll() is None, pacman.communicate()
        assert time.monotonic() < deadline, "torfetch never started downloading the package"
        kids = [pid for pid, argv in _children(pacman.pid) if any(a.endswith("/torfetch") for a in argv[:2])]
        if kids and any(p.name.startswith(".torfetch-") for p in cachedir.iterdir()):
            return kids[0]
        time.sleep(0.05)
    raise AssertionError("unreachable")


@pytest.fixture
def trickling_mirror(signed_repo):
    with FileServer(signed_repo.root) as server:
        yield server


def _sandbox(tmp_path: Path, signed_repo, mirror: FileServer, rekor) -> PacmanSandbox:
    args = ["--direct", "--transparency-url", f"{mirror.url}/sigs", "--pubkey", signed_repo.key.pub_line,
            *log_args(rekor, tmp_path / "state")]
    return PacmanSandbox(tmp_path / "root", f"{mirror.url}/repo", args).write()


def _pacman(sb: PacmanSandbox, *args: str) -> subprocess.Popen[str]:
    return subprocess.Popen(["pacman", "--config", str(sb.conf), "--noconfirm", *args], stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, env={**os.environ, "LC_ALL": "C"})


def test_sigterm_to_torfetch_under_pacman(tmp_path: Path, signed_repo, trickling_mirror: FileServer, rekor) -> None:
    sb = _sandbox(tmp_path, signed_repo, trickling_mirror, rekor)
    r = sb.run("-Sy")
    assert r.returncode == 0, r.stderr
    pkg = signed_repo.packages["hello"].name
    trickling_mirror.behaviour.rules[pkg] = "trickle"
    trickling_mirror.behaviour.trickle_bytes = 16
    trickling_mirror.behaviour.trickle_interval = 0.5
    p = _pacman(sb, "-S", "hello")
    os.kill(_torfetch_under(p, sb.cachedir), signal.SIGTERM)
    out, err = p.communicate(timeout=60)
    assert p.returncode != 0
    assert f"torfetch: interrupted by SIGTERM: {pkg}.part was not written" in err.splitlines(), err
    assert "Traceback" not in err
    assert not sb.installed("hello")
    assert sb.leftovers() == [] and sb.cached_packages() == []


def test_sigkill_litter_is_swept_by_the_next_pacman_run(tmp_path: Path, signed_repo, trickling_mirror: FileServer,
                                                      rekor) -> None:
    sb = _sandbox(tmp_path, signed_repo, trickling_mirror, rekor)
    assert sb.run("-Sy").returncode == 0
    pkg = signed_repo.packages["hello"].name
    trickling_mirror.behaviour.rules[pkg] = "trickle"
    trickling_mirror.behaviour.trickle_bytes = 16
    trickling_mirror.behaviour.trickle_interval = 0.5
    p = _pacman(sb, "-S", "hello")
    os.kill(_torfetch_under(p, sb.cachedir), signal.SIGKILL)
    p.communicate(timeout=60)
    assert p.returncode != 0
    litter = [n for n in sb.leftovers() if n.startswith(".torfetch-")]
    assert litter, sb.leftovers()  # SIGKILL cannot be handled: the temp file stays behind ...
    del trickling_mirror.behaviour.rules[pkg]
    r = sb.run("-S", "hello")
    assert r.returncode == 0, r.stderr
    assert sb.installed("hello")
    assert sb.leftovers() == []  # ... until the next run in that directory sweeps it
    assert sb.cached_packages() == [pkg]
