"""Fetch a repository database (URL or local path) and stream it through the pure reader."""

from __future__ import annotations

import os
import urllib.parse
from collections.abc import Callable
from pathlib import Path

from ..config import Timeouts
from ..errors import UsageError
from ..net.http import Network
from ..pacman.repodb import RepoDbLimits, RepoDbReader, RepoPackage


def db_url(repo_db: str) -> str:
    """A URL as given; anything without a scheme is a local path (file://)."""
    scheme = urllib.parse.urlsplit(repo_db).scheme.lower()
    if scheme in ("http", "https", "file"):
        return repo_db
    if scheme and len(scheme) > 1:
        raise UsageError(f"--repo-db {repo_db}: unsupported URL scheme {scheme!r} (http, https, file or a path)")
    return Path(os.path.abspath(repo_db)).as_uri()


def expand_repo_url(repo_url: str, repo_name: str | None, arch: str | None) -> str:
    """pacman's ``$repo`` and ``$arch`` in a Server URL."""
    if "$repo" in repo_url:
        if not repo_name:
            raise UsageError("--repo-url contains $repo: give --repo-name")
        repo_url = repo_url.replace("$repo", repo_name)
    if "$arch" in repo_url:
        if not arch:
            raise UsageError("--repo-url contains $arch: give --architecture")
        repo_url = repo_url.replace("$arch", arch)
    return repo_url.rstrip("/")


def default_repo_db(repo_url: str | None, repo_name: str | None, arch: str | None) -> str:
    if not repo_url or not repo_name:
        raise UsageError("give --repo-db, or --repo-url and --repo-name (the db is then <repo-url>/<repo-name>.db)")
    return f"{expand_repo_url(repo_url, repo_name, arch)}/{repo_name}.db"


async def read_repodb(net: Network, repo_db: str, on_package: Callable[[RepoPackage], None], *,
                      timeouts: Timeouts, limits: RepoDbLimits | None = None) -> int:
    """Stream the db at ``repo_db`` (URL or path), calling ``on_package`` per package; returns the count."""
    limits = limits or RepoDbLimits()
    url = db_url(repo_db)
    reader = RepoDbReader(limits, source=f"repository database {repo_db}")

    def sink(chunk: bytes) -> None:
        for pkg in reader.feed(chunk):
            on_package(pkg)

    await net.stream("database", "GET", url, sink, max_bytes=limits.max_compressed, timeout=timeouts.download_total)
    reader.finish()
    return reader.packages
