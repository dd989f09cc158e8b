"""HTTP bodies with a Content-Encoding (torfetch/net/content_encoding.py): bounded output, only typed errors."""

from __future__ import annotations

import gzip

import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import FUZZ_EXAMPLES, mutated_bytes, typed_errors_only
from torfetch.errors import MalformedInputError
from torfetch.net.content_encoding import decode_body

BODY = b'{"signatures": [], "signed": {"_type": "link"}}' * 20
LIMIT = 4096
SEEDS = [zstandard.ZstdCompressor().compress(BODY), gzip.compress(BODY, mtime=0),
         zstandard.ZstdCompressor().compress(b"\0" * 100_000), gzip.compress(b"\0" * 100_000, mtime=0)]


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(st.sampled_from(SEEDS).flatmap(mutated_bytes), st.binary(max_size=100)),
       st.sampled_from(["zstd", "gzip", "x-gzip", " GZIP ", "identity", "", None, "br", "zstd, gzip"]))
def test_fuzz_decode_body(body: bytes, encoding: str | None) -> None:
    got = typed_errors_only(decode_body, body, encoding, LIMIT)
    if isinstance(got, bytes):
        assert len(got) <= LIMIT or encoding in ("identity", "", None)
    else:
        assert isinstance(got, MalformedInputError), got
