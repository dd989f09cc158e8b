"""Package file names: parsing, URL → file name, decoded exactly once."""

from __future__ import annotations

import urllib.parse

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import MalformedInputError
from torfetch.pacman.filename import PackageFilename, filename_from_url, parse_package_filename


@pytest.mark.parametrize("name,expect", [
    ("foo-bar-1:2.0-3-x86_64.pkg.tar.zst", PackageFilename("foo-bar", "1:2.0-3", "x86_64", "zst")),
    # already decoded: a '%' is a literal character of the version, never decoded again
    ("foo-1%3A2-3-any.pkg.tar.zst", PackageFilename("foo", "1%3A2-3", "any", "zst")),
    ("lib32-glibc-2.39+r52+gf8e4623421-1-x86_64.pkg.tar.zst",
     PackageFilename("lib32-glibc", "2.39+r52+gf8e4623421-1", "x86_64", "zst")),
    ("python-3.12.7-1.1-x86_64.pkg.tar", PackageFilename("python", "3.12.7-1.1", "x86_64", "")),
    ("gtk2+extra-2.24.33_rc1-2-aarch64.pkg.tar.xz", PackageFilename("gtk2+extra", "2.24.33_rc1-2", "aarch64", "xz")),
    ("@scope-1-1-any.pkg.tar.gz", PackageFilename("@scope", "1-1", "any", "gz")),
])
def test_parse_package_filename(name: str, expect: PackageFilename) -> None:
    got = parse_package_filename(name)
    assert got == expect
    assert parse_package_filename(got.filename) == got


@pytest.mark.parametrize("name", [
    "foo.pkg.tar.zst", "foo-1-x86_64.pkg.tar.zst", "-foo-1-1-any.pkg.tar.zst", ".foo-1-1-any.pkg.tar.zst",
    "foo-1-1-x86_64.pkg.tar.zst.sig", "foo-1 -1-any.pkg.tar.zst", "foo-1:2:3-1-any.pkg.tar.zst",
    "foo-a:1-1-any.pkg.tar.zst", "foo-1-1-x86_64.pkg.tar.", "foo-1-1-x86 64.pkg.tar.zst", "core.db",
    "foo-1/2-1-any.pkg.tar.zst", "a" * 250 + "-1-1-any.pkg.tar.zst",
])
def test_not_package_filenames(name: str) -> None:
    with pytest.raises(MalformedInputError):
        parse_package_filename(name)


@pytest.mark.parametrize("url", ["https://m.test/", "https://m.test/.hidden.pkg.tar.zst", "https://m.test/a%2Fb.pkg.tar.zst",
                                 "https://m.test/a%00b", "https://m.test/%2E%2E", "https://m.test/a%5Cb", "https://m.test/%ff",
                                 "https://m.test/" + "a" * 300])
def test_unusable_filenames_refused(url: str) -> None:
    with pytest.raises(MalformedInputError):
        filename_from_url(url)


def test_percent_decoded_exactly_once() -> None:
    """URL → name decodes once; the parser decodes nothing: %253A is the three characters %3A."""
    name = filename_from_url("https://m.test/x/foo-1%253A2-3-any.pkg.tar.zst")
    assert name == "foo-1%3A2-3-any.pkg.tar.zst"
    parsed = parse_package_filename(name)
    assert parsed.version == "1%3A2-3" and ":" not in parsed.version
    assert parsed.filename == name
    # one level of encoding is undone, as a mirror link may spell the epoch
    assert parse_package_filename(filename_from_url("https://m.test/foo-1%3A2-3-any.pkg.tar.zst")).version == "1:2-3"
    # "%2F" decoded once is a '/', refused; "%252F" decoded once is "%2F", a literal (harmless) name part
    with pytest.raises(MalformedInputError):
        filename_from_url("https://m.test/foo-1%2F2-3-any.pkg.tar.zst")
    assert filename_from_url("https://m.test/foo-1%252F2-3-any.pkg.tar.zst") == "foo-1%2F2-3-any.pkg.tar.zst"


def test_filename_from_url_decodes_and_ignores_query() -> None:
    assert filename_from_url("https://m.test/x/foo-1%3A2-3-any.pkg.tar.zst") == "foo-1:2-3-any.pkg.tar.zst"
    assert filename_from_url("https://m.test/x/foo-1:2-3-any.pkg.tar.zst?a=b#c") == "foo-1:2-3-any.pkg.tar.zst"
    assert filename_from_url("file:///srv/repo/core.db") == "core.db"


_name = st.from_regex(r"[a-z0-9@_+][a-z0-9@._+-]{0,20}", fullmatch=True)
_ver = st.from_regex(r"([0-9]{1,3}:)?[A-Za-z0-9._+~]{1,12}", fullmatch=True)
_rel = st.from_regex(r"[0-9]{1,3}(\.[0-9])?", fullmatch=True)
_arch = st.sampled_from(["x86_64", "any", "aarch64", "i686"])


@settings(max_examples=300, deadline=None)
@given(_name, _ver, _rel, _arch, st.sampled_from(["", "zst", "xz", "gz", "bz2"]))
def test_fuzz_round_trip(name: str, ver: str, rel: str, arch: str, ext: str) -> None:
    fn = PackageFilename(name, f"{ver}-{rel}", arch, ext)
    assert parse_package_filename(fn.filename) == fn
    url = "https://m.test/x/" + urllib.parse.quote(fn.filename, safe="")
    assert parse_package_filename(filename_from_url(url)) == fn
    # encoded twice, decoded once: the name keeps its "%3A" (and so is a different version, or none)
    twice = urllib.parse.quote(urllib.parse.quote(fn.filename, safe=""), safe="")
    assert filename_from_url("https://m.test/x/" + twice) == urllib.parse.quote(fn.filename, safe="")


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_parsers_raise_only_malformed(text: str) -> None:
    for fn in (parse_package_filename, filename_from_url):
        try:
            fn(text)
        except MalformedInputError:
            pass
