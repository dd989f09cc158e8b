"""Real pacman with an XferCommand that carries nothing but the config: ``torfetch --config FILE -O %o %u``."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.e2e.conftest import needs_pacman
from tests.pacman_sandbox import TORFETCH, PacmanSandbox

pytestmark = [needs_pacman, pytest.mark.pacman]


def config(tmp_path: Path, signed_repo, mirror, rekor, *, match: str) -> Path:
    d = tmp_path / "etc"
    d.mkdir()
    p = d / "torfetch.toml"
    p.write_text(
        "direct = true  # the test servers are on 127.0.0.1, no Tor here\n"
        f'state_dir = "{tmp_path / "state"}"\n'
        "\n[[repo]]\n"
        f'match = "{match}"\n'
        f'transparency_url = "{mirror.url}/sigs"\n'
        f'pubkey = "{signed_repo.key.pub_line}"\n'
        f'log_url = "{rekor.url}"\n'
        f'log_key = "{rekor.key_pem_path}"\n'
    )
    os.chmod(p, 0o644)
    return p


def sandbox(tmp_path: Path, mirror, cfg: Path) -> PacmanSandbox:
    return PacmanSandbox(tmp_path / "root", f"{mirror.url}/repo", ["--config", str(cfg)]).write()


def test_config_only_xfercommand_installs_and_refuses(tmp_path, signed_repo, mirror, rekor) -> None:
    cfg = config(tmp_path, signed_repo, mirror, rekor, match=f"{mirror.url}/repo/")
    sb = sandbox(tmp_path, mirror, cfg)
    assert f"XferCommand = {TORFETCH} --config {cfg} -O %o %u\n" in sb.conf.read_text()
    r = sb.run("-Sy", "hello")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sb.installed("hello") and sb.cached_packages() == [signed_repo.packages["hello"].name]
    r = sb.run("-S", "flipped")
    assert r.returncode != 0 and "does not match the downloaded file" in r.stderr, r.stdout + r.stderr
    assert sb.leftovers() == [] and not any(p.startswith("flipped-") for p in sb.cached_packages())


def test_package_outside_every_repo_table_is_refused(tmp_path, signed_repo, mirror, rekor) -> None:
    # the table is for ".../repo-other": "/repo" is not under it (URL-boundary match), so no key applies
    cfg = config(tmp_path, signed_repo, mirror, rekor, match=f"{mirror.url}/repo-other")
    sb = sandbox(tmp_path, mirror, cfg)
    r = sb.run("-Sy", "hello")
    assert r.returncode != 0
    assert f"no [[repo]] in {cfg} matches {mirror.url}/repo/" in r.stderr, r.stdout + r.stderr
    assert "Traceback" not in r.stderr
    assert sb.cached_packages() == [] and sb.leftovers() == []
    assert (sb.dbpath / "sync" / "test.db").exists()  # databases need no table


def test_world_writable_config_is_refused_through_pacman(tmp_path, signed_repo, mirror, rekor) -> None:
    cfg = config(tmp_path, signed_repo, mirror, rekor, match=f"{mirror.url}/repo")
    os.chmod(cfg, 0o666)
    sb = sandbox(tmp_path, mirror, cfg)
    before = len(mirror.requests)
    r = sb.run("-Sy")
    assert r.returncode != 0
    assert f"torfetch: configuration: refusing the config {cfg}: it is world-writable" in r.stderr, r.stderr
    assert len(mirror.requests) == before  # refused before any download
    assert not (sb.dbpath / "sync" / "test.db").exists()


def test_terminal_shows_the_checks_of_a_package_then_its_verdict(tmp_path, signed_repo, mirror, rekor) -> None:
    # what a user at a terminal sees for one verified package (pacman passes its terminal on as stderr)
    from tests.test_progress import run_on_pty, screen

    cfg = config(tmp_path, signed_repo, mirror, rekor, match=f"{mirror.url}/repo/")
    name = signed_repo.packages["hello"].name
    out = tmp_path / f"{name}.part"
    rc, raw = run_on_pty(["--config", str(cfg), "-O", str(out), f"{mirror.url}/repo/{name}"])
    assert rc == 0, raw
    assert out.read_bytes() == signed_repo.packages["hello"].read_bytes()
    frames = [f.replace("\x1b[K", "") for f in raw.replace("\n", "\r").split("\r") if f.strip()]
    # checks pending, then done, as they pass (an 80-column terminal: the list of pending ones may not fit)
    # (download, signature, log, .PKGINFO)
    assert frames[0].startswith(name) and frames[0].endswith("0/4"), frames
    assert any(f.endswith(("3/4", "3/4  waiting: .PKGINFO")) for f in frames), frames
    assert screen(raw) == [screen(raw)[0]] and screen(raw)[0].startswith(name)
    assert screen(raw)[0].endswith("verified: signature, log, .PKGINFO")
