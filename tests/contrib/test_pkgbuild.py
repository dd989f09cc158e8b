"""contrib/PKGBUILD, read by the real makepkg (Debian's, pacman 6) and built into a package from a copy of the tree.

makepkg refuses to run as root: as root the tests run it as nobody, in a copy of the tree that nobody owns.
"""

from __future__ import annotations

import os
import re
import shlex
import shutil
import subprocess
import sys
import tarfile
import tempfile
import tomllib
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

ROOT = Path(__file__).resolve().parents[2]
PKGBUILD = ROOT / "contrib/PKGBUILD"
PYPROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())
# Arch's package for each Python dependency (httpx[socks] needs socksio besides httpx)
ARCH_NAMES = {"trio": ["python-trio"], "httpx": ["python-httpx", "python-socksio"], "stem": ["python-stem"],
              "cryptography": ["python-cryptography"], "zstandard": ["python-zstandard"]}


@dataclass(frozen=True)
class Tree:
    base: Path  # owned by the user makepkg runs as
    src: Path  # the copy of the source tree; the PKGBUILD is src/contrib/PKGBUILD
    out: Path  # BUILDDIR, PKGDEST, ...


def _copy_tree(tmp: Path) -> Tree:
    src, out = tmp / "src", tmp / "out"
    for name in ("pyproject.toml", "README.md", "LICENSE"):
        src.mkdir(exist_ok=True)
        shutil.copy2(ROOT / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.egg-info")
    for name in ("torfetch", "contrib"):
        shutil.copytree(ROOT / name, src / name, ignore=ignore)
    out.mkdir()
    # makepkg's python: Arch calls it "python"; here that is the system python with python3-build & co.
    (tmp / "bin").mkdir()
    (tmp / "bin/python").symlink_to("/usr/bin/python3")
    if os.geteuid() == 0:
        for dirpath, dirnames, filenames in os.walk(tmp):
            for n in [dirpath, *(os.path.join(dirpath, f) for f in dirnames + filenames)]:
                os.lchown(n, 65534, 65534)
    return Tree(tmp, src, out)


def makepkg(tree: Tree, *args: str) -> subprocess.CompletedProcess[str]:
    o = str(tree.out)
    env = ["env", "-i", f"PATH={tree.base}/bin:/usr/bin:/bin", f"HOME={o}", f"BUILDDIR={o}", f"PKGDEST={o}",
           f"SRCDEST={o}", f"SRCPKGDEST={o}", f"LOGDEST={o}", "LC_ALL=C"]
    as_user = ["runuser", "-u", "nobody", "--"] if os.geteuid() == 0 else []
    return subprocess.run([*as_user, *env, "makepkg", *args], cwd=tree.src / "contrib", capture_output=True,
                          text=True, timeout=300)


@pytest.fixture(scope="module")
def tree() -> Iterator[Tree]:
    # not under pytest's tmp_path: that is private to the user running the tests, and nobody must reach it
    base = Path(tempfile.mkdtemp(prefix="torfetch-pkgbuild-"))
    os.chmod(base, 0o755)
    try:
        yield _copy_tree(base)
    finally:
        shutil.rmtree(base)


def _srcinfo(text: str) -> dict[str, list[str]]:
    fields: dict[str, list[str]] = {}
    for line in text.splitlines():
        if "=" in line:
            k, _, v = line.strip().partition(" = ")
            fields.setdefault(k, []).append(v)
    return fields


def test_printsrcinfo(tree: Tree) -> None:
    r = makepkg(tree, "--printsrcinfo")
    assert r.returncode == 0, r.stderr
    info = _srcinfo(r.stdout)
    assert info["pkgname"] == ["torfetch"]
    assert info["pkgver"] == [PYPROJECT["project"]["version"]]
    assert info["arch"] == ["any"]
    want = {f"python{PYPROJECT['project']['requires-python']}", "tor"}
    for dep in PYPROJECT["project"]["dependencies"]:
        want.update(ARCH_NAMES[re.match(r"[A-Za-z0-9_.-]+", dep).group(0)])
    assert set(info["depends"]) == want
    # pacman keeps the admin's edited config on upgrade
    assert info["backup"] == ["etc/torfetch.toml"]


def _installs() -> list[tuple[str, str]]:
    """(source in the tree, destination under $pkgdir) for every install line of package()."""
    pairs = []
    for line in PKGBUILD.read_text().splitlines():
        if line.strip().startswith("install "):
            src, dst = shlex.split(line)[-2:]
            pairs.append((src, dst.removeprefix("$pkgdir/")))
    return pairs


def test_every_installed_file_exists() -> None:
    pairs = _installs()
    dests = {d for _, d in pairs}
    assert {"usr/lib/tmpfiles.d/torfetch.conf", "etc/torfetch.toml", "usr/share/bash-completion/completions/torfetch",
            "usr/share/zsh/site-functions/_torfetch", "usr/lib/systemd/system/torfetch-monitor.service",
            "usr/lib/systemd/system/torfetch-monitor.timer"} <= dests
    for src, _ in pairs:
        assert (ROOT / src).is_file(), src
    # every shipped contrib file is installed (a new one that the PKGBUILD forgets fails)
    shipped = {str(p.relative_to(ROOT)) for p in (ROOT / "contrib").rglob("*") if p.is_file()}
    assert shipped - {s for s, _ in pairs} == {"contrib/PKGBUILD"}


def test_build_and_package(tree: Tree) -> None:
    # --nodeps: the dependencies are Arch's package names; Debian's python3-build/-installer stand in for them
    before = sorted(p for p in tree.src.rglob("*"))
    r = makepkg(tree, "--nodeps", "--noconfirm", "--noprogressbar")
    assert r.returncode == 0, r.stdout[-3000:] + r.stderr[-3000:]
    assert sorted(p for p in tree.src.rglob("*")) == before  # the build wrote nothing into the source tree
    [pkg] = [p for p in tree.out.iterdir() if ".pkg.tar" in p.name]
    with tarfile.open(pkg) as tar:
        members = {m.name: m for m in tar.getmembers()}
        for src, dst in _installs():
            assert tar.extractfile(members[dst]).read() == (ROOT / src).read_bytes(), dst
            assert members[dst].mode & 0o777 == 0o644 and members[dst].uid == 0, dst
        pkginfo = tar.extractfile(members[".PKGINFO"]).read().decode()
        # Arch's python installs to usr/bin and usr/lib/python3.X/site-packages, Debian's to usr/local/...
        [script] = [n for n in members if re.fullmatch(r"usr/(local/)?bin/torfetch", n)]
        pkgdirs = {n.rsplit("/torfetch/", 1)[0] for n in members if n.endswith("/torfetch/cli.py")}
        assert len(pkgdirs) == 1
        site = pkgdirs.pop()
        sources = {str(p.relative_to(ROOT)) for p in (ROOT / "torfetch").rglob("*")
                   if p.is_file() and "__pycache__" not in p.parts}
        assert {f"{site}/{s}" for s in sources} <= set(members)
        assert members[script].mode & 0o111
        tar.extractall(tree.base / "root", filter="data")
    assert "backup = etc/torfetch.toml" in pkginfo
    # the packaged code runs (with the test venv's dependencies)
    r2 = subprocess.run([sys.executable, "-m", "torfetch", "--version"], capture_output=True, text=True, timeout=60,
                        env={**os.environ, "PYTHONPATH": str(tree.base / "root" / site)}, cwd=tree.base)
    assert r2.stdout.strip() == f"torfetch {PYPROJECT['project']['version']}", r2.stderr
