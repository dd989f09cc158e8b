"""Pinned rebuilder keys and rebuilder URLs from the command line (verify/pinned_key.py, net/rebuilder_url.py)."""

from __future__ import annotations

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import FUZZ_EXAMPLES, mutated_text, typed_errors_only
from tests.servers.rebuilderd import rebuilderd_pem
from torfetch.errors import ConfigError
from torfetch.net.rebuilder_url import endpoint, normalise_rebuilder_url
from torfetch.verify.pinned_key import looks_like_key_text, parse_pinned_key

PEM = rebuilderd_pem(Ed25519PrivateKey.from_private_bytes(bytes(range(2, 34))))
RAW = parse_pinned_key(PEM)
SEEDS = [PEM, RAW.hex(), "".join(PEM.splitlines()[1:-1])]


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(st.sampled_from(SEEDS).flatmap(mutated_text), st.text(max_size=80)))
def test_fuzz_pinned_key_text(text: str) -> None:
    got = typed_errors_only(parse_pinned_key, text)
    assert isinstance(got, ConfigError) or (isinstance(got, bytes) and len(got) == 32), got
    looks_like_key_text(text)


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(st.sampled_from(["https://r.test/rebuild", "http://[::1]:8484/", "http://127.0.0.1:1"]).flatmap(
    mutated_text), st.text(max_size=40)))
def test_fuzz_rebuilder_url(url: str) -> None:
    got = typed_errors_only(normalise_rebuilder_url, url)
    if isinstance(got, str):
        assert got.endswith("/") and got == normalise_rebuilder_url(got)  # one spelling: normalising is idempotent
        assert endpoint(got, "api/v0/pkgs/list").startswith(got)
    else:
        assert isinstance(got, ConfigError)
