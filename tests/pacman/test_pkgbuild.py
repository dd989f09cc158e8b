"""tests/pkgbuild.py writes packages that bsdtar, repo-add and pacman accept, in makepkg's member order."""

from __future__ import annotations

import gzip
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.pkgbuild import build_package

needs_tools = pytest.mark.skipif(not (shutil.which("bsdtar") and shutil.which("repo-add")),
                                 reason="needs bsdtar and repo-add (libarchive-tools, pacman-package-manager)")


@needs_tools
@pytest.mark.parametrize("comp", ["zst", "xz", "gz", "bz2", ""])
@pytest.mark.parametrize("fmt", ["pax", "gnu"])
def test_bsdtar_lists_members_in_makepkg_order(tmp_path: Path, comp: str, fmt: str) -> None:
    p = build_package(tmp_path, "hello", "2:1.0-3", compression=comp, tar_format=fmt,
                      files={"usr/bin/hello": b"#!/bin/sh\necho hi\n", "usr/share/doc/hello/README": b"hi\n"})
    assert p.name == f"hello-2:1.0-3-x86_64.pkg.tar{'.' + comp if comp else ''}"
    names = subprocess.run(["bsdtar", "-tf", str(p)], capture_output=True, text=True, check=True, timeout=60).stdout.split()
    assert names[:3] == [".BUILDINFO", ".MTREE", ".PKGINFO"]
    assert "usr/bin/hello" in names and "usr/share/doc/hello/README" in names
    mtree = subprocess.run(["bsdtar", "-xOf", str(p), ".MTREE"], capture_output=True, check=True, timeout=60).stdout
    text = gzip.decompress(mtree).decode()
    assert "#mtree" in text and "sha256digest=" in text and "./usr/bin/hello" in text


@needs_tools
def test_repo_add_accepts_every_compression(tmp_path: Path) -> None:
    pkgs = [build_package(tmp_path, f"p{c or 'tar'}", "1:1.0-1", compression=c) for c in ("zst", "xz", "gz", "bz2", "")]
    db = tmp_path / "test.db.tar.gz"
    r = subprocess.run(["repo-add", "-q", str(db), *map(str, pkgs)], capture_output=True, text=True, timeout=120)
    assert r.returncode == 0, r.stderr
    listing = subprocess.run(["bsdtar", "-tf", str(db)], capture_output=True, text=True, check=True, timeout=60).stdout
    for c in ("zst", "xz", "gz", "bz2", "tar"):
        assert f"p{c}-1:1.0-1/desc" in listing
    desc = subprocess.run(["bsdtar", "-xOf", str(db), "pzst-1:1.0-1/desc"], capture_output=True, text=True,
                          check=True, timeout=60).stdout
    assert "%VERSION%\n1:1.0-1\n" in desc and "%FILENAME%\npzst-1:1.0-1-x86_64.pkg.tar.zst\n" in desc


@pytest.mark.skipif(not shutil.which("pacman"), reason="needs pacman")
def test_pacman_reads_it(tmp_path: Path) -> None:
    p = build_package(tmp_path, "hello", "1.0-1", extra_pkginfo={"depend": "glibc"})
    (tmp_path / "db").mkdir()
    r = subprocess.run(["pacman", "--dbpath", str(tmp_path / "db"), "-Qip", str(p)], capture_output=True, text=True,
                       timeout=60)
    assert r.returncode == 0, r.stderr
    assert "hello" in r.stdout and "1.0-1" in r.stdout and "glibc" in r.stdout


def test_bomb_is_small_on_disk(tmp_path: Path) -> None:
    p = build_package(tmp_path, "bomb", "1-1", buildinfo_padding=1 << 30)
    assert p.stat().st_size < 1 << 20
