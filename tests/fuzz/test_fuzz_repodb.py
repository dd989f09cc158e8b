"""Whatever bytes come in, the sync-db reader raises only RepoDbError (never another exception, never hangs)."""

from __future__ import annotations

import gzip
import io
import tarfile

import zstandard
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from torfetch.errors import RepoDbError
from torfetch.pacman.repodb import RepoDbLimits, RepoDbReader

LIMITS = RepoDbLimits(max_compressed=1 << 20, max_decompressed=4 << 20, max_members=200, max_desc=16 << 10)


def _seed() -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tf:
        for name in ("a", "b"):
            body = (f"%FILENAME%\n{name}-1-1-any.pkg.tar.zst\n\n%NAME%\n{name}\n\n%VERSION%\n1-1\n\n"
                    f"%SHA256SUM%\n{'ab' * 32}\n\n%CSIZE%\n12\n").encode()
            ti = tarfile.TarInfo(f"{name}-1-1/desc")
            ti.size = len(body)
            tf.addfile(ti, io.BytesIO(body))
    return buf.getvalue()


SEED = _seed()
SEEDS = [SEED, gzip.compress(SEED), zstandard.ZstdCompressor().compress(SEED)]


@st.composite
def mutated(draw) -> bytes:
    data = bytearray(draw(st.sampled_from(SEEDS)))
    for _ in range(draw(st.integers(0, 8))):
        op = draw(st.integers(0, 2))
        pos = draw(st.integers(0, max(len(data) - 1, 0)))
        if op == 0 and data:
            data[pos] = draw(st.integers(0, 255))
        elif op == 1:
            del data[pos:pos + draw(st.integers(1, 600))]
        else:
            data[pos:pos] = draw(st.binary(max_size=64))
    return bytes(data)


def _run(data: bytes, step: int) -> None:
    reader = RepoDbReader(LIMITS)
    try:
        for i in range(0, len(data), step):
            for pkg in reader.feed(data[i:i + step]):
                assert len(pkg.sha256) == 64
        reader.finish()
    except RepoDbError:
        pass


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(mutated(), st.integers(1, 4096))
def test_mutated_dbs_raise_only_typed_errors(data: bytes, step: int) -> None:
    _run(data, step)


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=4096), st.integers(1, 1024))
def test_random_bytes_raise_only_typed_errors(data: bytes, step: int) -> None:
    _run(data, step)
