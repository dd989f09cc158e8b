"""scripts/sigsum-tools: extracts the .debs into a keyed cache, a second run is a cache hit, broken installs fail.

Runs the script itself on hand-built .debs ($TORFETCH_SIGSUM_DEBS: no mirror) into a tmp cache
($TORFETCH_SIGSUM_CACHE), so it needs neither root nor the network.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

from tests.servers.sigsum import load_tools_script

SCRIPT = Path(__file__).resolve().parent.parent / "scripts" / "sigsum-tools"
tools = load_tools_script()

pytestmark = pytest.mark.skipif(shutil.which("dpkg-deb") is None, reason="needs Debian's dpkg-deb")


def make_deb(out: Path, package: str, version: str, binaries: list[str]) -> Path:
    root = out / f"{package}-build"
    (root / "DEBIAN").mkdir(parents=True)
    (root / "DEBIAN/control").write_text(
        f"Package: {package}\nVersion: {version}\nArchitecture: all\nMaintainer: t <t@example.invalid>\n"
        f"Description: stand-in for {package}\n")
    (root / "usr/bin").mkdir(parents=True)
    for b in binaries:
        f = root / "usr/bin" / b
        f.write_text(f"#!/bin/sh\necho {b} {version}\n")
        f.chmod(0o755)
    deb = out / f"{package}_{version}_all.deb"
    subprocess.run(["dpkg-deb", "--root-owner-group", "-b", str(root), str(deb)], check=True,
                   capture_output=True, timeout=60)
    shutil.rmtree(root)
    return deb


def fake_debs(d: Path, *, drop: str | None = None) -> Path:
    d.mkdir()
    log_tools = {"sigsum-log-primary", "sigsum-mktree"}
    make_deb(d, "sigsum-go", "9.1-1", [t for t in tools.TOOLS if t not in log_tools and t != drop])
    make_deb(d, "sigsum-log-go", "9.2-1", [t for t in tools.TOOLS if t in log_tools and t != drop])
    return d


def run(cache: Path, debs: Path | None, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TORFETCH_SIGSUM")}
    env["TORFETCH_SIGSUM_CACHE"] = str(cache)
    if debs is not None:
        env["TORFETCH_SIGSUM_DEBS"] = str(debs)
    return subprocess.run([str(SCRIPT), *args], env=env, capture_output=True, text=True, timeout=120)


def test_install_extracts_every_tool_and_a_rerun_is_a_cache_hit(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    debs = fake_debs(tmp_path / "debs")
    r = run(cache, debs, "install")
    assert r.returncode == 0, r.stderr
    bindir = Path(r.stdout.strip())
    assert bindir.is_relative_to(cache)
    for t in tools.TOOLS:
        assert subprocess.run([str(bindir / t)], capture_output=True, text=True).stdout.startswith(t)
    assert (bindir.parents[2] / "versions").read_text() == "sigsum-go 9.1-1\nsigsum-log-go 9.2-1\n"
    # the cache hit needs no .debs at all (in CI: no mirror contact)
    shutil.rmtree(debs)
    again = run(cache, tmp_path / "gone", "install")
    assert again.returncode == 0 and Path(again.stdout.strip()) == bindir
    assert "fetching" not in again.stderr
    p = run(cache, None, "path")
    assert p.returncode == 0 and Path(p.stdout.strip()) == bindir


def test_a_package_without_a_needed_tool_fails_and_leaves_no_install(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    r = run(cache, fake_debs(tmp_path / "debs", drop="sigsum-witness"), "install")
    assert r.returncode != 0 and "sigsum-witness" in r.stderr
    assert run(cache, None, "path").returncode == 1
    assert not list(cache.glob("*/.complete"))


def test_a_missing_package_fails(tmp_path: Path) -> None:
    debs = fake_debs(tmp_path / "debs")
    next(debs.glob("sigsum-log-go_*.deb")).unlink()
    r = run(tmp_path / "cache", debs, "install")
    assert r.returncode != 0 and "sigsum-log-go" in r.stderr


def test_path_on_an_empty_cache_says_how_to_install(tmp_path: Path) -> None:
    r = run(tmp_path / "cache", None, "path")
    assert r.returncode == 1 and "scripts/sigsum-tools install" in r.stderr and r.stdout == ""


def test_clean_removes_old_recipe_versions_only(tmp_path: Path) -> None:
    cache = tmp_path / "cache"
    assert run(cache, fake_debs(tmp_path / "debs"), "install").returncode == 0
    old = cache / "s0-000000000000"
    (old / "root").mkdir(parents=True)
    broken = cache / "s9-attempt.tmp"
    broken.mkdir()
    assert run(cache, None, "clean").returncode == 0
    assert not old.exists() and not broken.exists()
    assert run(cache, None, "path").returncode == 0


def test_the_recipe_key_changes_with_the_recipe(monkeypatch: pytest.MonkeyPatch) -> None:
    key = tools.recipe_key()
    monkeypatch.setattr(tools, "PACKAGES", (*tools.PACKAGES, "litetlog"))
    assert tools.recipe_key() != key
