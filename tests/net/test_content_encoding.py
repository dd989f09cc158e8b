"""Content-Encoding undone within a limit; bombs and unknown encodings refused."""

from __future__ import annotations

import gzip

import pytest
import zstandard

from torfetch.errors import MalformedInputError
from torfetch.net.content_encoding import decode_body


def test_decode_body() -> None:
    body = b'{"a": 1}'
    assert decode_body(zstandard.ZstdCompressor().compress(body), "zstd", 100) == body
    assert decode_body(gzip.compress(body), "gzip", 100) == body
    assert decode_body(body, None, 100) == body
    bomb = zstandard.ZstdCompressor().compress(b"\0" * 10_000_000)
    for enc, data in (("zstd", bomb), ("gzip", gzip.compress(b"\0" * 10_000_000)), ("br", body), ("zstd", b"xx")):
        with pytest.raises(MalformedInputError):
            decode_body(data, enc, 1_000_000)
