"""A mirror renames a package in its (unsigned) db: real pacman must get nothing without proof.

The db's %FILENAME% says ``evil-1.0-1-x86_64.pkg`` (or ``….db``, ``….sig``,
``….pkg.tar.zst.sig``, ``….pkg.tar.zst.x``, ``core.db``) for a package whose
bytes, %NAME%, %VERSION% and packager signature (%PGPSIG%) are all genuine.
Judged by that name the file is "not a package" and needs no proof; torfetch
judges by where pacman writes it (CacheDir, not the sync dir) and refuses.
The control run shows pacman really installs such a file when the download
program does not refuse it, so the refusal is what the tests measure.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.e2e.conftest import log_args, needs_pacman
from tests.pacman_sandbox import PacmanSandbox
from tests.repo import Repo, make_repo
from tests.servers.files import FileServer

pytestmark = [needs_pacman, pytest.mark.pacman]

TORFETCH = str(Path(sys.executable).with_name("torfetch"))

# pkgname → the %FILENAME% a hostile mirror writes for it
RENAMED = {
    "asplainpkg": "asplainpkg-1.0-1-x86_64.pkg",
    "asdb": "asdb-1.0-1-x86_64.db",
    "assig": "assig-1.0-1-x86_64.sig",
    "aspkgsig": "aspkgsig-1.0-1-x86_64.pkg.tar.zst.sig",
    "asx": "asx-1.0-1-x86_64.pkg.tar.zst.x",
    "asrepodb": "core.db",  # another repo's db name (this repo's own test.db is the real db)
    "asfiles": "core.files.sig",
}
REFUSAL = {
    "aspkgsig": "not an OpenPGP signature",
}
NEITHER = "is neither repository metadata nor a package file name: refusing it without proof"


@pytest.fixture(scope="module")
def renamed_repo(tmp_path_factory: pytest.TempPathFactory):
    repo = make_repo(tmp_path_factory.mktemp("renamed"), gpg=True)
    repo.add("goodpkg")
    for name in [*RENAMED, "control"]:
        repo.add(name)
    for name, filename in RENAMED.items():
        repo.rename_in_db(name, filename)
    repo.rename_in_db("control", "control-1.0-1-x86_64.pkg")
    with FileServer(repo.root) as server:
        yield repo, server


@pytest.fixture
def short_tmp(tmp_path_factory: pytest.TempPathFactory) -> Path:
    # gpg-agent's socket lives in GPGDir: a long pytest path overflows a UNIX socket name (108 bytes)
    return tmp_path_factory.mktemp("rn")


def _sandbox(tmp_path: Path, repo: Repo, server: FileServer, rekor, siglevel: str) -> PacmanSandbox:
    args = ["-v", "--transparency-url", f"{server.url}/sigs", "--pubkey", repo.key.pub_line,
            *log_args(rekor, tmp_path / "state")]
    sb = PacmanSandbox(tmp_path / "root", f"{server.url}/repo", args, siglevel=siglevel).write()
    assert repo.gpg is not None
    repo.gpg.export_into_pacman_keyring(sb.gpgdir)
    return sb


def _nothing_left(sb: PacmanSandbox, filename: str) -> None:
    cache = sorted(p.name for p in sb.cachedir.rglob("*")) if sb.cachedir.exists() else []
    assert not any(n.startswith(filename) for n in cache), cache
    assert [n for n in cache if n.endswith(".part") or n.startswith(".torfetch-")] == [], cache
    assert sb.leftovers() == []


SIGLEVELS = ["Never", "Required DatabaseOptional"]


@pytest.mark.parametrize("siglevel", SIGLEVELS)
@pytest.mark.parametrize("name", sorted(RENAMED))
def test_renamed_package_is_refused(short_tmp, renamed_repo, rekor, name: str, siglevel: str) -> None:
    repo, server = renamed_repo
    sb = _sandbox(short_tmp, repo, server, rekor, siglevel)
    r = sb.run("-Sy", name)
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert REFUSAL.get(name, NEITHER) in r.stderr, out
    assert repr(RENAMED[name]) in r.stderr or RENAMED[name] in r.stderr, out
    assert "error invoking external downloader" in out or "failed to retrieve" in out, out
    assert "Traceback" not in out
    assert not sb.installed(name)
    assert not (sb.root / f"usr/share/{name}/hello.txt").exists()
    _nothing_left(sb, RENAMED[name])
    # the package was never even asked for: the refusal came before any network work
    assert ("GET", f"/repo/{RENAMED[name]}") not in server.requests or name in REFUSAL


@pytest.mark.parametrize("siglevel", SIGLEVELS)
def test_legitimate_paths_still_work(short_tmp, renamed_repo, rekor, siglevel: str) -> None:
    """Same repo, same pacman: the db syncs and a correctly named package installs with proof."""
    repo, server = renamed_repo
    sb = _sandbox(short_tmp, repo, server, rekor, siglevel)
    r = sb.run("-Sy", "goodpkg")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sb.installed("goodpkg")
    assert "transparency signature of goodpkg-1.0-1-x86_64.pkg.tar.zst verified" in r.stderr
    assert "downloaded test.db" in r.stderr and "no proof needed" in r.stderr
    assert sb.leftovers() == []


@pytest.mark.parametrize("siglevel", SIGLEVELS)
def test_control_pacman_installs_a_renamed_file_from_a_downloader_that_does_not_refuse(
        short_tmp, renamed_repo, siglevel: str) -> None:
    """Without torfetch's rule the attack works: curl fetches the renamed file and pacman installs it."""
    repo, server = renamed_repo
    curl = shutil.which("curl")
    assert curl, "curl is part of the test toolchain"
    sb = PacmanSandbox(short_tmp / "root", f"{server.url}/repo", [], siglevel=siglevel).write()
    assert repo.gpg is not None
    repo.gpg.export_into_pacman_keyring(sb.gpgdir)
    conf = sb.conf.read_text().splitlines()
    conf = [f"XferCommand = {curl} -sf -o %o %u" if ln.startswith("XferCommand") else ln for ln in conf]
    sb.conf.write_text("\n".join(conf) + "\n")
    r = sb.run("-Sy", "control")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sb.installed("control")
    assert (sb.cachedir / "control-1.0-1-x86_64.pkg").exists()


# --- the two files pacman asks for that are not packages, as pacman names them -------------

def _run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([TORFETCH, *args], capture_output=True, text=True, timeout=60)


def test_package_signature_in_cachedir(tmp_path, renamed_repo) -> None:
    """pacman -U URL also fetches URL.sig into CacheDir: a real gpg signature passes, a package does not."""
    repo, server = renamed_repo
    assert repo.gpg is not None
    good = repo.packages["goodpkg"]
    sig = repo.gpg.sign(good)  # <pkg>.sig next to the package, served by the mirror
    cache = tmp_path / "var/cache/pacman/pkg"
    cache.mkdir(parents=True)
    out = cache / (sig.name + ".part")
    r = _run("-O", str(out), f"{server.url}/repo/{sig.name}")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == sig.read_bytes()
    # the mirror serves a package under that name: nothing reaches -O
    out.unlink()
    shutil.copy(good, sig)
    r = _run("-O", str(out), f"{server.url}/repo/{sig.name}")
    assert r.returncode == 1, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "not an OpenPGP signature" in lines[0], r.stderr
    assert sorted(p.name for p in cache.iterdir()) == []
    sig.unlink()


def test_missing_db_sig_in_sync_dir_is_one_line(tmp_path, renamed_repo) -> None:
    """<repo>.db.sig, where pacman writes it: no proof needed, and a 404 is one line, exit 3."""
    repo, server = renamed_repo
    sync = tmp_path / "var/lib/pacman/sync/download-Ab12Cd"
    sync.mkdir(parents=True)
    r = _run("-O", str(sync / "test.db.sig.part"), f"{server.url}/repo/test.db.sig")
    assert r.returncode == 3, r.stderr
    lines = [ln for ln in r.stderr.splitlines() if ln.strip()]
    assert len(lines) == 1 and "test.db.sig" in lines[0] and "404" in lines[0], r.stderr
    assert list(sync.iterdir()) == []
    # the db itself, into pacman 7's download dir
    r = _run("-O", str(sync / "test.db.part"), f"{server.url}/repo/test.db")
    assert r.returncode == 0, r.stderr
    assert (sync / "test.db.part").read_bytes() == (repo.repo_dir / "test.db.tar.gz").read_bytes()
