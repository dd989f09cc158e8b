"""HTTP ``Content-Encoding`` undone within a byte limit (zstd, gzip); anything else is refused."""

from __future__ import annotations

import gzip
import zlib

import zstandard

from ..errors import MalformedInputError


def decode_body(body: bytes, content_encoding: str | None, max_bytes: int) -> bytes:
    """Undo a ``Content-Encoding`` (zstd, gzip) a server used anyway, within ``max_bytes``.

    rebuilderd compresses attestations only if asked; torfetch asks for
    identity, but a proxy or another implementation may still compress.
    """
    enc = (content_encoding or "identity").strip().lower()
    try:
        if enc in ("identity", ""):
            return body
        if enc == "zstd":
            d = zstandard.ZstdDecompressor(max_window_size=1 << 23).decompressobj()
            out = bytearray()
            for i in range(0, len(body), 64):  # small slices bound each step's output
                out += d.decompress(body[i : i + 64])
                if len(out) > max_bytes:
                    break
        elif enc in ("gzip", "x-gzip"):
            z = zlib.decompressobj(16 + zlib.MAX_WBITS)
            out = bytearray(z.decompress(body, max_bytes + 1))
        else:
            raise MalformedInputError(f"unsupported Content-Encoding {enc[:20]!r}")
    except (zstandard.ZstdError, zlib.error, gzip.BadGzipFile, EOFError) as exc:
        raise MalformedInputError(f"body is not valid {enc} ({type(exc).__name__})") from exc
    if len(out) > max_bytes:
        raise MalformedInputError(f"decoded body is over the limit of {max_bytes} bytes")
    return bytes(out)
