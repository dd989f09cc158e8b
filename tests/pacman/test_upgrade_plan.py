"""The upgrade plan parser (pure): pacman's ``%r %l`` lines, its CacheDirs and Servers, the pacman arguments."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import MalformedInputError, TorfetchError, UsageError
from torfetch.pacman.upgrade_plan import (MAX_PLAN_BYTES, PlannedPackage, cachedirs, first_server, pacman_paths,
                                          parse_print_output)

PLAN = (b"core https://mirror.example/core/os/x86_64/glibc-2.40-1-x86_64.pkg.tar.zst\n"
        b"extra https://mirror.example/extra/os/x86_64/vim-9.1.0-1-x86_64.pkg.tar.zst\n"
        b"extra file:///var/cache/pacman/pkg/zstd-1.5.6-1-x86_64.pkg.tar.zst\n")


def test_lines_become_packages_in_order() -> None:
    plan = parse_print_output(PLAN)
    assert [(p.repo, p.filename) for p in plan] == [("core", "glibc-2.40-1-x86_64.pkg.tar.zst"),
                                                    ("extra", "vim-9.1.0-1-x86_64.pkg.tar.zst"),
                                                    ("extra", "zstd-1.5.6-1-x86_64.pkg.tar.zst")]
    assert plan[0].file_path is None
    assert plan[2].file_path == "/var/cache/pacman/pkg/zstd-1.5.6-1-x86_64.pkg.tar.zst"


def test_a_file_url_is_cached_only_inside_a_cachedir() -> None:
    cached = parse_print_output(PLAN)[2]
    assert cached.in_cachedir(("/var/cache/pacman/pkg/",))
    assert cached.in_cachedir(("/other/", "/var/cache/pacman/pkg"))
    assert not cached.in_cachedir(("/var/cache/pacman/",))  # a file:// repository elsewhere is a local repo
    remote = parse_print_output(PLAN)[0]
    assert not remote.in_cachedir(("/var/cache/pacman/pkg/",))


def test_empty_plan_and_duplicates() -> None:
    assert parse_print_output(b"") == ()
    assert parse_print_output(b"\n\n") == ()
    twice = PLAN.splitlines()[0] + b"\n" + PLAN.splitlines()[0] + b"\n"
    assert len(parse_print_output(twice)) == 1


@pytest.mark.parametrize("line", [
    b":: Starting full system upgrade...",  # anything but a plan line is refused, never skipped
    b"core glibc-2.40-1-x86_64.pkg.tar.zst",
    b"core ftp://mirror.example/glibc-2.40-1-x86_64.pkg.tar.zst",
    b"core https://mirror.example/notapackage.txt",
    b"core https://mirror.example/.hidden-1-1-any.pkg.tar.zst",
    b"core https://mirror.example/a%2Fb-1-1-any.pkg.tar.zst",
    b"core https://mirror.example/x%41-1-1-any.pkg.tar.zst",  # pacman's name and torfetch's would differ
    b"co/re https://mirror.example/x-1-1-any.pkg.tar.zst",
    b"core https://mirror.example/x-1-1-any.pkg.tar.zst extra",
    b"\xff\xfe",
])
def test_malformed_lines_are_refused(line: bytes) -> None:
    with pytest.raises(MalformedInputError):
        parse_print_output(line + b"\n")


def test_size_cap() -> None:
    with pytest.raises(MalformedInputError, match="larger than"):
        parse_print_output(b"\n" * (MAX_PLAN_BYTES + 1))


@given(st.binary(max_size=2000))
@settings(max_examples=1000, deadline=None)
def test_fuzz_only_typed_errors(data: bytes) -> None:
    try:
        plan = parse_print_output(PLAN + data)
    except MalformedInputError:
        return
    assert all(isinstance(p, PlannedPackage) and "/" not in p.filename for p in plan)


def test_cachedirs_and_servers() -> None:
    assert cachedirs(b"/var/cache/pacman/pkg/\n/srv/cache/\n") == ("/var/cache/pacman/pkg/", "/srv/cache/")
    with pytest.raises(UsageError):
        cachedirs(b"")
    with pytest.raises(UsageError):
        cachedirs(b"relative/dir\n")
    assert first_server(b"https://a.example/core/os/x86_64/\nhttps://b.example/\n", "core") == \
        "https://a.example/core/os/x86_64"
    with pytest.raises(UsageError, match="has no Server"):
        first_server(b"", "core")


def test_pacman_paths() -> None:
    assert pacman_paths([]) == pacman_paths(["--noconfirm", "--ignore", "x"])
    p = pacman_paths(["--dbpath", "/db0", "--dbpath", "/db", "--cachedir=/c1", "--cachedir", "/c2"])
    assert (p.dbpath, p.cachedirs) == ("/db", ("/c1", "/c2"))  # the last --dbpath wins; --cachedir adds, as in pacman
    for bad in (["--config", "x"], ["--print-format", "%n"], ["-p"], ["--root", "/r"], ["--dbpath", "rel"],
                ["--cachedir"]):
        with pytest.raises(TorfetchError):
            pacman_paths(bad)
