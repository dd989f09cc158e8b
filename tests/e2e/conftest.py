"""Fixtures for end-to-end runs: a signed repository, its servers, a local log."""

from __future__ import annotations

import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from tests.repo import Repo, make_repo
from tests.servers.files import FileServer

needs_pacman = pytest.mark.skipif(
    not all(shutil.which(c) for c in ("pacman", "repo-add", "minisign", "bsdtar", "gpg")),
    reason="needs Debian's pacman-package-manager, minisign, libarchive-tools and gnupg",
)


@dataclass
class LogFixture:
    url: str
    key_pem_path: Path


@pytest.fixture(scope="session")
def rekor(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LogFixture]:
    from tests.servers.rekor import RekorServer

    d = tmp_path_factory.mktemp("rekor")
    with RekorServer() as server:
        key = d / "rekor.pem"
        key.write_bytes(server.public_key_pem)
        yield LogFixture(server.url, key)


def log_args(log: LogFixture, state_dir: Path, *, upload: bool = True) -> list[str]:
    args = ["--log-url", log.url, "--log-key", str(log.key_pem_path), "--state-dir", str(state_dir)]
    return args if upload else args + ["--no-upload"]


@pytest.fixture(scope="session")
def signed_repo(tmp_path_factory: pytest.TempPathFactory) -> Repo:
    """One repository for the whole session; each tampered case has its own package."""
    root = tmp_path_factory.mktemp("repo")
    repo = make_repo(root)
    repo.add("hello")
    repo.add("legacy", legacy=True)
    repo.add("withepoch", "2:3.1-4")
    repo.add("flipped")
    repo.add("otherkey")
    repo.add("nosig")
    repo.add("bigsig")
    repo.add("truncated")
    repo.add("stalepart")
    repo.add("replayed")
    # (tamper after signing, as an attacker on the mirror would)
    p = repo.packages["flipped"]
    data = bytearray(p.read_bytes())
    data[len(data) // 2] ^= 0x01
    p.write_bytes(bytes(data))
    from tests.repo import MinisignKey, sha256_file

    other = MinisignKey.generate(root / "otherkeys", "other")
    other.sign_hex(sha256_file(repo.packages["otherkey"]), repo.packages["otherkey"].name,
                   repo.sig_path("otherkey"))
    repo.sig_path("nosig").unlink()
    sig = repo.sig_path("bigsig")
    sig.write_bytes(sig.read_bytes() + b"\n" * 1100)
    # hello's bytes and its valid signature, served as "replayed": the hash matches,
    # only the trusted comment (hello's filename) tells the replay apart
    shutil.copy(repo.packages["hello"], repo.packages["replayed"])
    shutil.copy(repo.sig_path("hello"), repo.sig_path("replayed"))
    return repo


@pytest.fixture(scope="session")
def mirror(signed_repo: Repo) -> Iterator[FileServer]:
    with FileServer(signed_repo.root) as server:
        server.behaviour.rules[signed_repo.packages["truncated"].name] = "truncate"
        yield server
