"""Untrusted JSON (torfetch/verify/jsondoc.py): size and depth limits, only typed errors, only real JSON values."""

from __future__ import annotations

import json
import math

from hypothesis import given, settings
from hypothesis import strategies as st

from tests.fuzz.mutations import FUZZ_EXAMPLES, json_value, mutated_bytes, mutated_json_bytes, typed_errors_only
from torfetch.errors import MalformedInputError
from torfetch.verify.jsondoc import MAX_DEPTH, expect_dict, expect_field, loads_limited

SEED = {"records": [{"name": "a", "version": "1-1", "n": 3, "ok": True, "x": None, "s": "caf\u00e9 \"q\" \\"}], "total": 1}


def _well_formed(obj: object, depth: int = 0) -> None:
    """What comes out is plain JSON: no NaN/Infinity, no lone surrogates, no deeper than the limit."""
    assert depth <= MAX_DEPTH
    if isinstance(obj, float):
        assert math.isfinite(obj)
    elif isinstance(obj, str):
        obj.encode("utf-8")
    elif isinstance(obj, list):
        for v in obj:
            _well_formed(v, depth + 1)
    elif isinstance(obj, dict):
        for k, v in obj.items():
            k.encode("utf-8")
            _well_formed(v, depth + 1)
    else:
        assert obj is None or isinstance(obj, (bool, int))


def _nested(depth: int, opener: str) -> bytes:
    """``[[[1]]]`` or ``{"k":{"k":1}}``, ``depth`` levels deep: around the depth limit."""
    inner = "1"
    for _ in range(depth):
        inner = f"[{inner}]" if opener == "[" else '{"k":' + inner + "}"
    return inner.encode()


def test_seed_is_valid() -> None:
    assert loads_limited(json.dumps(SEED).encode()) == SEED


@settings(max_examples=FUZZ_EXAMPLES, deadline=None)
@given(st.one_of(mutated_json_bytes(SEED), mutated_bytes(json.dumps(SEED).encode(), max_ops=4), st.binary(max_size=100),
                 json_value.map(lambda v: json.dumps(v).encode()),
                 st.tuples(st.integers(min_value=0, max_value=3 * MAX_DEPTH), st.sampled_from("[{")).map(
                     lambda t: _nested(*t)),
                 st.sampled_from([b"NaN", b"[Infinity]", b"-Infinity", b'"\\ud800"', b'{"\\udfff": 1}', b"1" * 5000,
                                  b'"\\ud83d\\ude00"', b"\xef\xbb\xbf{}", b"[" * 100000, b'"' + b"\\" * 999 + b'"'])))
def test_fuzz_loads_limited(data: bytes) -> None:
    got = typed_errors_only(loads_limited, data, max_bytes=64 * 1024)
    if isinstance(got, MalformedInputError):
        return
    _well_formed(got)
    for key, typ in (("records", list), ("total", int), ("name", str)):
        res = typed_errors_only(lambda: expect_field(expect_dict(got, "doc"), key, typ, "doc"))
        assert isinstance(res, (typ, MalformedInputError)) and not (typ is int and isinstance(res, bool))
