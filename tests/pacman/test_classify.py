"""What needs proof: decided by pacman's output path and the URL, never by the mirror's file name alone."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import MalformedInputError, NotAPackageError
from torfetch.pacman.classify import Metadata, Package, PackageSignature, classify
from torfetch.pacman.filename import PackageFilename

SERVER = "https://mirror.test/test/os/x86_64"
DBPATH = "/var/lib/pacman"
CACHE = "/var/cache/pacman/pkg"
SYNC_DIRS = [f"{DBPATH}/sync", f"{DBPATH}/sync/download-Ab3xZ9"]  # pacman 6, pacman 7
CACHE_DIRS = [CACHE, f"{CACHE}/download-q1W2e3"]


def bintrans_needs_proof(url: str) -> bool:
    """pacman-bintrans 0.5 src/main.rs needs_transparency_proof, transcribed."""
    it = iter(reversed(url.split(".")))
    x = next(it, None)
    if x is not None and x != "tar" and next(it, None) != "tar":
        return False
    return next(it, None) == "pkg"


@pytest.mark.parametrize("directory", SYNC_DIRS)
@pytest.mark.parametrize("name,kind,sig", [
    ("test.db", "db", False), ("test.files", "files", False),
    ("test.db.sig", "db", True), ("test.files.sig", "files", True),
])
def test_sync_metadata_skips_proof(directory: str, name: str, kind: str, sig: bool) -> None:
    got = classify(f"{SERVER}/{name}", f"{directory}/{name}.part")
    assert got == Metadata(filename=name, repo="test", kind=kind, signature=sig)


@pytest.mark.parametrize("repo", ["core", "core-testing", "extra-testing", "home_user_Arch", "chaotic-aur",
                                  "arch4edu", "kde-unstable", "a.b", "x+y", "R2", "_x"])
def test_real_repo_names(repo: str) -> None:
    got = classify(f"{SERVER}/{repo}.db", f"{DBPATH}/sync/{repo}.db.part")
    assert isinstance(got, Metadata) and got.repo == repo


@pytest.mark.parametrize("repo", [".hidden", "-x", "", "with space", "ünï", "a" * 65, "a\nb", "a%2Fb"])
def test_odd_repo_names_are_not_metadata(repo: str) -> None:
    with pytest.raises((NotAPackageError, MalformedInputError)):
        classify(f"{SERVER}/{repo}.db", f"{DBPATH}/sync/{repo}.db.part")


@pytest.mark.parametrize("directory", CACHE_DIRS)
@pytest.mark.parametrize("name", [
    "evil-1.0-1-x86_64.pkg", "evil-1.0-1-x86_64.db", "test.db", "test.files", "test.db.sig",
    "evil-1.0-1-x86_64.sig", "evil-1.0-1-x86_64.pkg.tar.zst.x", "evil-1.0-1-x86_64.pkg.tar.zst.part",
    "evil-1.0-1-x86_64.files", "README",
])
def test_renamed_in_cachedir_is_refused(directory: str, name: str) -> None:
    """What a mirror's rewritten %FILENAME% makes pacman ask for: never fetched without proof."""
    with pytest.raises(NotAPackageError) as e:
        classify(f"{SERVER}/{name}", f"{directory}/{name}.part")
    assert e.value.message == (
        f"{name!r} is neither repository metadata nor a package file name: refusing it without proof")
    assert e.value.exit_code == 1


@pytest.mark.parametrize("directory", CACHE_DIRS)
def test_package_signature_in_cachedir_must_be_checked(directory: str) -> None:
    name = "evil-1.0-1-x86_64.pkg.tar.zst.sig"
    got = classify(f"{SERVER}/{name}", f"{directory}/{name}.part")
    assert got == PackageSignature(filename=name, package=PackageFilename("evil", "1.0-1", "x86_64", "zst"))


@pytest.mark.parametrize("directory", CACHE_DIRS + SYNC_DIRS)
def test_packages_need_proof_wherever_they_go(directory: str) -> None:
    name = "foo-1:2.0-3-x86_64.pkg.tar.zst"  # pacman passes the epoch's ':' literally (measured)
    got = classify(f"{SERVER}/{name}", f"{directory}/{name}.part")
    assert got == Package(filename=name, parsed=PackageFilename("foo", "1:2.0-3", "x86_64", "zst"))


@pytest.mark.parametrize("url,output", [
    (f"{SERVER}/other.db", f"{DBPATH}/sync/test.db.part"),          # URL names another file
    (f"{SERVER}/test.db?x=1", f"{DBPATH}/sync/test.db.part"),       # pacman adds no query
    (f"{SERVER}/test.db#f", f"{DBPATH}/sync/test.db.part"),
    (f"{SERVER}/test%2Edb", f"{DBPATH}/sync/test.db.part"),         # pacman encodes nothing
    (f"{SERVER}/test.db", f"{DBPATH}/sync/test.db"),                # pacman always writes .part
    (f"{SERVER}/test.db", f"{DBPATH}/notsync/test.db.part"),
    (f"{SERVER}/test.db", f"{DBPATH}/sync/download-abc12/test.db.part"),    # not mkdtemp's 6 characters
    (f"{SERVER}/test.db", f"{DBPATH}/sync/download-abc123/x/test.db.part"),
    (f"{SERVER}/test.db", f"{CACHE}/download-abc123/test.db.part"),
    (f"{SERVER}/test.db", f"{CACHE}/../../lib/pacman/sync/test.db.part"),
    (f"{SERVER}/test.db", f"{DBPATH}/sync/../sync/test.db.part"),
    (f"{SERVER}/test.db", "test.db.part"),                          # no directory at all
    (f"{SERVER}/test.db", f"{DBPATH}/sync/test.db.sig.part"),
    (f"{SERVER}/test.db.sig", f"{DBPATH}/sync/test.db.part"),
    (f"{SERVER}/test.db", f"{DBPATH}/sync/TEST.DB.part"),
])
def test_mismatched_or_misplaced_is_not_metadata(url: str, output: str) -> None:
    with pytest.raises(NotAPackageError):
        classify(url, output)


def test_package_url_into_sync_path_still_needs_proof() -> None:
    """The output looks like a db, but the URL is a package: it is proven, not waved through."""
    got = classify(f"{SERVER}/evil-1-1-x86_64.pkg.tar.zst", f"{DBPATH}/sync/test.db.part")
    assert isinstance(got, Package)


def test_sig_only_when_both_names_say_so() -> None:
    name = "evil-1.0-1-x86_64.pkg.tar.zst"
    # the output is a package name, the URL a .sig: neither a signature nor a package
    with pytest.raises(NotAPackageError):
        classify(f"{SERVER}/{name}.sig", f"{CACHE}/{name}.part")
    # the URL is a package: proven, whatever the output is called
    assert isinstance(classify(f"{SERVER}/{name}", f"{CACHE}/{name}.sig.part"), Package)


def test_unusable_url_name_is_malformed() -> None:
    with pytest.raises(MalformedInputError):
        classify(f"{SERVER}/a%2Fb.pkg.tar.zst", f"{CACHE}/a%2Fb.pkg.tar.zst.part")


@pytest.mark.parametrize("url", ["http://[::1/test.db", "http://[zz]/x-1-1-any.pkg.tar.zst", "http://m.test/%ff.db"])
def test_malformed_urls_are_typed_errors(url: str) -> None:
    with pytest.raises(MalformedInputError):
        classify(url, f"{DBPATH}/sync/test.db.part")


def test_refusal_is_one_printable_line() -> None:
    with pytest.raises(NotAPackageError) as e:
        classify(f"{SERVER}/evil%0A%1B[31m.db", f"{CACHE}/evil.db.part")
    line = e.value.one_line()
    assert "\n" not in line and "\x1b" not in line and "refusing it without proof" in line


_urls = st.builds(lambda seg, q: f"{SERVER}/{seg}{q}",
                  st.text(alphabet="abcdefxyz019.-_:%?#+@[]pkgtarzsdbfilesig2E", max_size=40),
                  st.sampled_from(["", "?a=b", "#x"]))
_outputs = st.builds(lambda d, n: f"{d}/{n}", st.sampled_from(SYNC_DIRS + CACHE_DIRS + ["/tmp", "", "/x/sync/.."]),
                     st.text(alphabet="abcdefxyz019.-_:%+@pkgtarzsdbfilesig", max_size=40))


@settings(max_examples=1000, deadline=None)
@given(_urls, _outputs)
def test_fuzz_typed_errors_and_never_less_proof_than_pacman_bintrans(url: str, output: str) -> None:
    try:
        got = classify(url, output)
    except (NotAPackageError, MalformedInputError):
        return
    if bintrans_needs_proof(url):
        assert isinstance(got, Package)
    if isinstance(got, Metadata):
        # only ever the exact pacman shape
        assert output.endswith("/" + got.filename + ".part") and url.endswith("/" + got.filename)
        assert output.rsplit("/", 2)[-2] == "sync" or output.rsplit("/", 3)[-3] == "sync"


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=120), st.text(max_size=120))
def test_fuzz_arbitrary_text(url: str, output: str) -> None:
    try:
        classify(url, output)
    except (NotAPackageError, MalformedInputError):
        pass
