"""Package file names: the proof rule (pacman-bintrans parity), parsing, URL → file name."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import MalformedInputError
from torfetch.pacman.filename import PackageFilename, filename_from_url, needs_proof, parse_package_filename


def bintrans_needs_proof(url: str) -> bool:
    """pacman-bintrans 0.5 src/main.rs needs_transparency_proof, transcribed."""
    it = iter(reversed(url.split(".")))
    x = next(it, None)
    if x is not None and x != "tar" and next(it, None) != "tar":
        return False
    return next(it, None) == "pkg"


@pytest.mark.parametrize("url,expect", [
    ("https://m.test/core/os/x86_64/core.db", False),
    ("https://m.test/core/os/x86_64/core.db.sig", False),
    ("https://m.test/core/os/x86_64/core.files", False),
    ("https://m.test/core/os/x86_64/a-1-1-x86_64.pkg.tar.zst", True),
    ("https://m.test/core/os/x86_64/a-1-1-x86_64.pkg.tar", True),
    ("https://m.test/core/os/x86_64/a-1-1-x86_64.pkg.tar.xz", True),
    ("https://m.test/core/os/x86_64/a-1-1-x86_64.pkg.tar.zst.sig", False),
    ("https://m.test/core/os/x86_64/pkg.tar.zst", False),
    ("https://m.test/a-1-1-any.pkg.tar.gz", True),
    ("https://m.test/a-1%3A1-1-any.pkg.tar.zst", True),
    ("a-1-1-any.pkg.tar.zst", True),
    # never less proof than pacman-bintrans: its rule on the raw URL also counts
    ("https://m.test/get?file=a-1-1-any.pkg.tar.zst", True),
    # ... and the decoded name counts too
    ("https://m.test/a-1-1-any%2Epkg%2Etar%2Ezst", True),
])
def test_needs_proof_rule(url: str, expect: bool) -> None:
    assert needs_proof(url) is expect
    if bintrans_needs_proof(url):
        assert needs_proof(url)


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="abc.-/:%?=pkgtarzs2E", max_size=40))
def test_fuzz_never_less_proof_than_pacman_bintrans(url: str) -> None:
    if bintrans_needs_proof(url):
        assert needs_proof(url)


@pytest.mark.parametrize("name,expect", [
    ("foo-bar-1:2.0-3-x86_64.pkg.tar.zst", PackageFilename("foo-bar", "1:2.0-3", "x86_64", "zst")),
    ("foo-1%3A2-3-any.pkg.tar.zst", PackageFilename("foo", "1:2-3", "any", "zst")),
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
    "foo-1%2F2-1-any.pkg.tar.zst", "foo-1%ff-1-any.pkg.tar.zst", "a" * 250 + "-1-1-any.pkg.tar.zst",
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
    assert parse_package_filename(fn.filename.replace(":", "%3A")) == fn


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=80))
def test_fuzz_parsers_raise_only_malformed(text: str) -> None:
    for fn in (parse_package_filename, filename_from_url):
        try:
            fn(text)
        except MalformedInputError:
            pass
    needs_proof(text)
