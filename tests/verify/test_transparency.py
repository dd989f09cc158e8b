"""The trusted comment may name this package file and no other, anywhere in it."""

from __future__ import annotations

import hashlib
import subprocess
import urllib.parse
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import SignatureError
from torfetch.verify import minisign
from torfetch.verify.transparency import check_transparency_signature, other_package_mentioned

FILENAME = "foo-1:2.0-1-x86_64.pkg.tar.zst"
OTHER = "bar-3.1-2-any.pkg.tar.zst"
SHA = hashlib.sha256(b"package bytes").hexdigest()


@pytest.mark.parametrize("comment", [
    FILENAME,                                             # pacman-bintrans-sign
    f"timestamp:1700000000\tfile:{FILENAME}",             # minisign's default shape
    f"timestamp:1700000000\tfile:{FILENAME}\thashed",
    f"timestamp:1700000000\tfile:msg\thashed",            # default comment naming the message file
    f"{FILENAME}.sha256", f"{FILENAME}.sig", f"signed {FILENAME}.", f"({FILENAME})", f"/srv/repo/{FILENAME}",
    FILENAME.replace(":", "%3A"), FILENAME.replace(":", "%3a"), f"{FILENAME} {FILENAME}",
    "", "release 2024-05", "pkg tar zst", "foo 1:2.0-1",
])
def test_comments_naming_only_this_file_pass(comment: str) -> None:
    assert other_package_mentioned(comment, FILENAME) is None


@pytest.mark.parametrize("comment", [
    OTHER, f"{FILENAME} {OTHER}", f"{OTHER} {FILENAME}", f"timestamp:1\tfile:{OTHER}",
    f"ok: {FILENAME}, also {OTHER}", f"x{FILENAME}", f"lib32-{FILENAME}", f".{FILENAME}",
    f"{FILENAME}d",                                       # .zstd: another file
    f"{FILENAME[:-4]}",                                   # foo-….pkg.tar: another file
    "foo-1:2.0-1-x86_64.pkg.tar.xz", "foo-1:2.0-2-x86_64.pkg.tar.zst",
    OTHER.replace(".", "%2E"), OTHER.replace("-", "%2D"), f"{FILENAME}%20{OTHER}",
    FILENAME.replace(":", "%253A"),                       # decoded once this is "%3A": another version
    "*.pkg.tar.zst", "BAR-1-1-ANY.PKG.TAR.ZST", f"file:{OTHER}.sha256",
])
def test_comments_mentioning_another_package_are_refused(comment: str) -> None:
    assert other_package_mentioned(comment, FILENAME) is not None


def test_overlong_comment_is_not_judged_by_a_prefix() -> None:
    from torfetch.verify.transparency import MAX_COMMENT_CHARS

    comment = FILENAME + " " * MAX_COMMENT_CHARS + OTHER
    assert other_package_mentioned(comment, FILENAME) is not None
    assert other_package_mentioned(FILENAME + " " * (MAX_COMMENT_CHARS - len(FILENAME)), FILENAME) is None


def test_uncompressed_package_name() -> None:
    name = "foo-1-1-any.pkg.tar"
    assert other_package_mentioned(f"file:{name}", name) is None
    assert other_package_mentioned(f"{name}.zst", name) is not None
    assert other_package_mentioned(f"{name}.", name) is None


_token = st.from_regex(r"[a-z][a-z0-9+]{0,8}-[0-9]{1,3}(\.[0-9]{1,2})?-[0-9]-(x86_64|any)\.pkg\.tar\.(zst|xz)", fullmatch=True)
_word = st.from_regex(r"[A-Za-z0-9:_=,]{0,12}", fullmatch=True)
_sep = st.sampled_from([" ", "\t", ", ", " file:", "/", "(", ") "])


@settings(max_examples=1000, deadline=None)
@given(_token, _token, st.lists(st.tuples(_sep, _word), max_size=4), st.booleans())
def test_fuzz_any_other_package_anywhere_is_found(mine: str, other: str, words: list[tuple[str, str]],
                                                  encode: bool) -> None:
    text = "".join(s + w for s, w in words)
    mention = urllib.parse.quote(other, safe="") if encode else other
    assert other_package_mentioned(text + " " + mine, mine) is None or ".pkg.tar" in text.lower()
    if other != mine:
        assert other_package_mentioned(f"{text} {mention} {mine}", mine) is not None
        assert other_package_mentioned(f"{mine}{text} {mention}", mine) is not None


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=200), st.text(max_size=60))
def test_fuzz_no_crash(comment: str, filename: str) -> None:
    other_package_mentioned(comment, filename)


# --- through the whole check, with signatures from Debian's minisign --------------------

def _keygen(d: Path) -> tuple[Path, Path]:
    pub, sec = d / "k.pub", d / "k.key"
    subprocess.run(["minisign", "-G", "-W", "-p", pub, "-s", sec], check=True, capture_output=True, timeout=30)
    return pub, sec


def _sign(d: Path, sec: Path, comment: str | None, msg_name: str = "msg") -> bytes:
    m = d / msg_name
    m.write_bytes(SHA.encode())
    cmd = ["minisign", "-S", "-s", sec, "-m", m, "-x", d / "out.t"] + (["-t", comment] if comment is not None else [])
    subprocess.run(cmd, check=True, capture_output=True, timeout=30)
    return (d / "out.t").read_bytes()


def test_debian_minisign_comments(tmp_path: Path) -> None:
    pub, sec = _keygen(tmp_path)
    pk = minisign.PublicKey.parse(pub.read_bytes())

    def check(sig: bytes):
        return check_transparency_signature(filename=FILENAME, sha256_hex=SHA, sig_bytes=sig, pubkey=pk)

    assert check(_sign(tmp_path, sec, FILENAME)).trusted_comment == FILENAME
    # minisign's default trusted comment: "timestamp:<t>\tfile:<message file>\thashed"
    got = check(_sign(tmp_path, sec, None, msg_name=FILENAME)).trusted_comment
    assert got.startswith("timestamp:") and f"file:{FILENAME}" in got
    assert check(_sign(tmp_path, sec, None)).trusted_comment.startswith("timestamp:")
    for comment in (f"{FILENAME} {OTHER}", f"for {OTHER}", f"timestamp:1\tfile:{OTHER}"):
        with pytest.raises(SignatureError, match="issued for another package") as e:
            check(_sign(tmp_path, sec, comment))
        assert "bar-3.1-2-any.pkg.tar" in e.value.message and "\n" not in e.value.one_line()
    with pytest.raises(SignatureError, match="another package"):
        check(_sign(tmp_path, sec, None, msg_name=OTHER))
