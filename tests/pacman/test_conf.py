"""The pacman.conf reader: DBPath (pacman's defaults), repository sections, bounded, typed errors only."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import ConfigError
from torfetch.pacman.conf import MAX_CONF_BYTES, parse_pacman_conf

ARCH_CONF = """\
#
# /etc/pacman.conf
#
[options]
#RootDir     = /
#DBPath      = /var/lib/pacman/
HoldPkg     = pacman glibc
Architecture = auto
ParallelDownloads = 5
DownloadUser = alpm
SigLevel    = Required DatabaseOptional

#[core-testing]
#Include = /etc/pacman.d/mirrorlist

[core]
Include = /etc/pacman.d/mirrorlist

[extra]
Include = /etc/pacman.d/mirrorlist

#[multilib]
"""


def test_arch_default_conf() -> None:
    c = parse_pacman_conf(ARCH_CONF)
    assert c.dbpath == "/var/lib/pacman/"
    assert c.repos == ("core", "extra")  # commented-out sections are not repositories
    assert c.sync_db_paths() == ("/var/lib/pacman/sync/core.db", "/var/lib/pacman/sync/extra.db")


def test_dbpath_and_rootdir() -> None:
    assert parse_pacman_conf("[options]\nDBPath = /srv/db  # trailing comment\n[a]\n").dbpath == "/srv/db/"
    # without DBPath, pacman puts the db under RootDir
    assert parse_pacman_conf("[options]\nRootDir = /mnt/root/\n[a]\n").dbpath == "/mnt/root/var/lib/pacman/"
    # DBPath wins over RootDir, whatever the order
    assert parse_pacman_conf("[options]\nDBPath=/x/\nRootDir=/mnt\n").dbpath == "/x/"
    # a DBPath outside [options] is not pacman's DBPath
    assert parse_pacman_conf("[core]\nDBPath = /evil/\n").dbpath == "/var/lib/pacman/"


def test_repeated_sections_count_once() -> None:
    assert parse_pacman_conf("[options]\n[core]\n[extra]\n[options]\n[core]\n").repos == ("core", "extra")


@pytest.mark.parametrize("text", ["[options]\nDBPath = relative/db\n", "[../../etc]\n", "[a/b]\n", "[..]\n"])
def test_unsafe_paths_are_config_errors(text: str) -> None:
    with pytest.raises(ConfigError):
        parse_pacman_conf(text)


def test_size_is_capped() -> None:
    with pytest.raises(ConfigError, match="larger than"):
        parse_pacman_conf("#" * (MAX_CONF_BYTES + 1))


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet=st.sampled_from(list("[]=#/ .\nabcDBPathRootDir-options")), max_size=300))
def test_fuzz_only_typed_errors(text: str) -> None:
    try:
        c = parse_pacman_conf(text)
    except ConfigError:
        return
    assert c.dbpath.startswith("/") and c.dbpath.endswith("/")
    assert all("/" not in r and r not in (".", "..") for r in c.repos)
