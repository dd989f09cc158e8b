"""Checkpoint parsing before authentication is strict: ASCII digits, pinned origin shape, typed errors only."""

from __future__ import annotations

import base64
import hashlib

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import CheckpointError, MalformedInputError, TorfetchError
from torfetch.verify.checkpoint import (Checkpoint, LogKey, ascii_decimal, parse_checkpoint_body, parse_origin,
                                        safe_text, sign_checkpoint, verify_checkpoint)

PRIV = ec.generate_private_key(ec.SECP256R1())
KEY = LogKey.from_pem(PRIV.public_key().public_bytes(serialization.Encoding.PEM,
                                                     serialization.PublicFormat.SubjectPublicKeyInfo))
ROOT = base64.b64encode(hashlib.sha256(b"r").digest()).decode()


@pytest.mark.parametrize("size", ["\u00b2", "\u0661\u0662", "\uff11\uff12", "1\u0662", "+1", "-1", " 1", "1 ", "1_0",
                                  "01", "", "18446744073709551616", "9" * 21])
def test_size_line_accepts_ascii_digits_only(size: str) -> None:
    with pytest.raises(MalformedInputError, match="invalid tree size"):
        parse_checkpoint_body(f"rekor.test - 1\n{size}\n{ROOT}\n")


@pytest.mark.parametrize("size,value", [("0", 0), ("12", 12), ("18446744073709551615", 2**64 - 1)])
def test_size_line_canonical_decimal(size: str, value: int) -> None:
    assert parse_checkpoint_body(f"rekor.test - 1\n{size}\n{ROOT}\n").size == value


def test_signed_unicode_size_is_refused_not_misread() -> None:
    # signed by the pinned key, yet "١٢" must not become 12
    note = sign_checkpoint(Checkpoint("rekor.test - 1", 12, base64.b64decode(ROOT), ()), "rekor.test", PRIV)
    with pytest.raises(MalformedInputError):
        verify_checkpoint(note.replace("\n12\n", "\n\u0661\u0662\n", 1), KEY)


@pytest.mark.parametrize("origin", ["rekor.test - 12\x1b[2J", "rekor\u202e.test - 1", "a\x00 - 1"])
def test_origin_with_control_characters_is_refused(origin: str) -> None:
    with pytest.raises(MalformedInputError, match="origin"):
        parse_checkpoint_body(f"{origin}\n1\n{ROOT}\n")


def test_parse_origin() -> None:
    assert parse_origin("rekor.sigstore.dev - 1193050959916656506") == ("rekor.sigstore.dev", 1193050959916656506)
    assert parse_origin("a - b - 7") == ("a - b", 7)
    for bad in ("rekor.sigstore.dev", "rekor.sigstore.dev - ", " - 5", "x - 0", "x - 07", "x - \u0667",
                "x - 9223372036854775808", "x -5", "x - 5 "):
        with pytest.raises(CheckpointError):
            parse_origin(bad)


def test_ascii_decimal_and_safe_text() -> None:
    assert ascii_decimal("123") == 123 and ascii_decimal("\u00b2") is None and ascii_decimal("١") is None
    shown = safe_text("a\x1b[31mb\x07\u202ec\\")
    assert shown.isprintable() and "\x1b" not in shown and "\\x1b" in shown and "\\u202e" in shown


_line = st.text(alphabet=st.characters(blacklist_characters="\n"), max_size=40)
_sizes = st.one_of(st.integers(min_value=0, max_value=2**65).map(str), st.text(
    alphabet=st.sampled_from("0123456789\u00b2\u0661\uff11 +-_"), max_size=22))
_roots = st.one_of(st.just(ROOT), st.binary(max_size=40).map(lambda b: base64.b64encode(b).decode()), _line)
_sigs = st.lists(st.one_of(_line, st.binary(max_size=80).map(lambda b: "\u2014 rekor.test " + base64.b64encode(
    KEY.key_hint + b).decode())), max_size=3)


@st.composite
def _notes(draw: st.DrawFn) -> str:
    body = "\n".join([draw(_line), draw(_sizes), draw(_roots), *draw(st.lists(_line, max_size=2))]) + "\n"
    return body + "\n" + "".join(s + "\n" for s in draw(_sigs))


@settings(max_examples=1000, deadline=None)
@given(st.one_of(_notes(), st.text(max_size=400), st.binary(max_size=400)))
def test_fuzz_checkpoint_raises_only_typed_errors(note: str | bytes) -> None:
    try:
        cp = verify_checkpoint(note, KEY)
    except TorfetchError:
        return
    assert False, f"an unsigned note was accepted: {cp}"  # nothing here carries a valid signature


@settings(max_examples=1000, deadline=None)
@given(_line)
def test_fuzz_origin_raises_only_typed_errors(origin: str) -> None:
    try:
        name, tree = parse_origin(origin)
    except CheckpointError:
        return
    assert f"{name} - {tree}" == origin and 0 < tree < 2**63
