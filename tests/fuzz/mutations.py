"""Hypothesis strategies that start from a valid input and break it a little, so fuzzing reaches deep code.

Random bytes mostly die at the first length or magic check; a valid document
with one field changed gets past every check before the one it breaks.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Callable, Iterator
from typing import TypeVar

from hypothesis import strategies as st

from torfetch.errors import TorfetchError

T = TypeVar("T")

FUZZ_EXAMPLES = 1000  # issue 13 item 11: at least 1,000 examples per parser

# Values parsers mishandle most often: empty, huge, negative, wrong type, non-ASCII digits, lone surrogates.
_EDGE_STRINGS = ["", " ", "0", "-1", "²", "١٢", "\ud800", "\x00", "\n", "=", "%", "ff" * 32, "A" * 300, "e30=", "null"]
_EDGE_INTS = [0, -1, 1, 2**63 - 1, 2**63, 2**64, -(2**63) - 1, 10**30]
_EDGE_BYTES = [b"\x00", b"\xff", b"\n", b"\r\n", b" = ", b"=", b"#", b"\x80", b"\xc3", b"\xed\xa0\x80", b"0" * 12, b"7" * 12]

json_leaf = (st.none() | st.booleans() | st.integers() | st.sampled_from(_EDGE_INTS)
             | st.floats(allow_nan=True, allow_infinity=True) | st.text(max_size=12) | st.sampled_from(_EDGE_STRINGS))
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=8), c, max_size=3),
                          max_leaves=6)


def _pick(draw: st.DrawFn, options: list[T]) -> T:
    return options[draw(st.integers(min_value=0, max_value=len(options) - 1))]


@st.composite
def mutated_bytes(draw: st.DrawFn, seed: bytes, max_ops: int = 4) -> bytes:
    """``seed`` after a few byte-level edits: flip, insert, delete, duplicate, truncate, splice an edge value."""
    data = bytearray(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=max_ops))):
        op = _pick(draw, ["flip", "set", "insert", "delete", "dup", "truncate", "edge"])
        pos = draw(st.integers(min_value=0, max_value=len(data)))
        if op == "flip" and pos < len(data):
            data[pos] ^= 1 << draw(st.integers(min_value=0, max_value=7))
        elif op == "set" and pos < len(data):
            data[pos] = draw(st.integers(min_value=0, max_value=255))
        elif op == "insert":
            data[pos:pos] = draw(st.binary(min_size=1, max_size=8))
        elif op == "delete":
            del data[pos : pos + draw(st.integers(min_value=1, max_value=64))]
        elif op == "dup":
            n = draw(st.integers(min_value=1, max_value=64))
            data[pos:pos] = data[pos : pos + n]
        elif op == "truncate":
            del data[pos:]
        elif op == "edge":
            data[pos:pos] = draw(st.sampled_from(_EDGE_BYTES))
    return bytes(data)


_EDGE_CHARS = ["\ud800", "\udcff", "\n", "\r", " ", "\u2014", "²", "١", "0", "9", "=", "/", "+", "\x00", "\ufeff", "é"]


_CHAR = st.sampled_from(_EDGE_CHARS) | st.characters()


@st.composite
def mutated_text(draw: st.DrawFn, seed: str, max_ops: int = 3) -> str:
    """``seed`` after a few character edits, with the characters text parsers trip on most."""
    chars = list(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=max_ops))):
        op = _pick(draw, ["set", "insert", "delete", "dup", "truncate"])
        pos = draw(st.integers(min_value=0, max_value=len(chars)))
        new = draw(_CHAR)
        if op == "set" and pos < len(chars):
            chars[pos] = new
        elif op == "insert":
            chars[pos:pos] = [new]
        elif op == "delete":
            del chars[pos : pos + draw(st.integers(min_value=1, max_value=16))]
        elif op == "dup":
            chars[pos:pos] = chars[pos : pos + draw(st.integers(min_value=1, max_value=16))]
        elif op == "truncate":
            del chars[pos:]
    return "".join(chars)


def _paths(obj: object, prefix: tuple = ()) -> Iterator[tuple]:
    yield prefix
    if isinstance(obj, dict):
        for k, v in obj.items():
            yield from _paths(v, prefix + (k,))
    elif isinstance(obj, list):
        for i, v in enumerate(obj):
            yield from _paths(v, prefix + (i,))


def _get(obj: object, path: tuple) -> object:
    for p in path:
        obj = obj[p]  # type: ignore[index]
    return obj


_EDGE_INT = st.sampled_from(_EDGE_INTS)
_EDGE_STR = st.sampled_from(_EDGE_STRINGS)


@st.composite
def _near(draw: st.DrawFn, value: object) -> object:
    """A value close to ``value``: same type and slightly wrong (mostly), an edge value, or any JSON value."""
    kind = draw(st.integers(min_value=0, max_value=9))
    if kind == 0:
        return draw(json_value)
    if kind == 1 or isinstance(value, bool) or value is None:
        return draw(json_leaf)
    if isinstance(value, int):
        return draw(_EDGE_INT) if kind < 4 else _pick(draw, [value + 1, value - 1, -value, str(value), float(value),
                                                             bool(value)])
    if isinstance(value, str):
        if kind < 4:
            return draw(_EDGE_STR)
        if value and kind < 8:
            return draw(mutated_text(value))
        return _pick(draw, [value + value, value[: len(value) // 2], value.upper(), value + "\n"])
    if isinstance(value, list):
        return _pick(draw, [value[:-1], value + value[-1:], value[::-1], [], [value]])
    if isinstance(value, dict):
        return _pick(draw, [{}, [value], {k: value[k] for k in list(value)[:-1]}, dict(value, extra=None)])
    return draw(json_value)


@st.composite
def mutated_json(draw: st.DrawFn, seed: object, max_ops: int = 3) -> object:
    """A deep copy of the JSON document ``seed`` with 1..max_ops nodes replaced, deleted or added."""
    doc = copy.deepcopy(seed)
    for _ in range(draw(st.integers(min_value=1, max_value=max_ops))):
        path = _pick(draw, list(_paths(doc)))
        if not path:
            doc = draw(_near(doc))
            continue
        parent = _get(doc, path[:-1])
        op = _pick(draw, ["replace", "replace", "replace", "delete", "add"])
        if op == "replace":
            parent[path[-1]] = draw(_near(parent[path[-1]]))  # type: ignore[index]
        elif op == "delete":
            del parent[path[-1]]  # type: ignore[arg-type]
        elif isinstance(parent, dict):
            parent[draw(st.text(max_size=8))] = draw(json_value)
        elif isinstance(parent, list):
            parent.append(draw(json_value))
    return doc


@st.composite
def mutated_json_bytes(draw: st.DrawFn, seed: object) -> bytes:
    """A structurally mutated document, serialised; sometimes with byte-level damage on top."""
    doc = draw(mutated_json(seed))
    data = json.dumps(doc).encode()  # NaN/Infinity as Python writes them; json.loads takes them back
    if draw(st.integers(min_value=0, max_value=4)) == 0:
        data = draw(mutated_bytes(data, max_ops=2))
    return data


def typed_errors_only(fn: Callable[..., T], *args: object, **kwargs: object) -> T | TorfetchError:
    """Run a parser: its result, or the TorfetchError it raised. Any other exception fails the test."""
    try:
        return fn(*args, **kwargs)
    except TorfetchError as exc:
        assert exc.message and "\n" not in exc.message, repr(exc.message)  # one line a user can act on
        return exc
