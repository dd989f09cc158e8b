"""Where the operator tools find the db: pacman's $repo/$arch, paths versus URLs."""

from __future__ import annotations

from pathlib import Path

import pytest

from torfetch.errors import UsageError
from torfetch.operator.repodb_fetch import db_url, default_repo_db, expand_repo_url


def test_repo_and_arch_are_replaced() -> None:
    assert expand_repo_url("https://m.test/$repo/os/$arch/", "core", "x86_64") == "https://m.test/core/os/x86_64"
    assert default_repo_db("https://m.test/$repo/os/$arch", "core", "x86_64") == "https://m.test/core/os/x86_64/core.db"


@pytest.mark.parametrize("url,name,arch,expect", [
    ("https://m.test/$repo", None, None, "--repo-name"),
    ("https://m.test/$arch", "core", None, "--architecture"),
    (None, "core", None, "--repo-db"),
])
def test_missing_parts_are_usage_errors(url, name, arch, expect) -> None:
    with pytest.raises(UsageError, match=expect):
        default_repo_db(url, name, arch)


def test_paths_become_file_urls(tmp_path) -> None:
    assert db_url(str(tmp_path / "core.db")) == (tmp_path / "core.db").as_uri()
    assert db_url("relative/core.db") == Path("relative/core.db").resolve().as_uri()
    assert db_url("https://m.test/core.db") == "https://m.test/core.db"
    with pytest.raises(UsageError, match="unsupported URL scheme"):
        db_url("ftp://m.test/core.db")
