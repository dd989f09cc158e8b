"""Parse untrusted JSON with a size and depth limit; failures are MalformedInputError."""

from __future__ import annotations

import json

from ..errors import MalformedInputError

MAX_JSON_BYTES = 4 * 1024 * 1024
MAX_DEPTH = 32


def loads_limited(data: bytes, *, max_bytes: int = MAX_JSON_BYTES, what: str = "JSON document") -> object:
    if len(data) > max_bytes:
        raise MalformedInputError(f"{what} is {len(data)} bytes, over the limit of {max_bytes}")
    # Depth check before json.loads: deep nesting would hit RecursionError.
    depth = 0
    in_str = False
    esc = False
    for b in data:
        if in_str:
            if esc:
                esc = False
            elif b == 0x5C:
                esc = True
            elif b == 0x22:
                in_str = False
        elif b == 0x22:
            in_str = True
        elif b in (0x5B, 0x7B):
            depth += 1
            if depth > MAX_DEPTH:
                raise MalformedInputError(f"{what} is nested deeper than {MAX_DEPTH} levels")
        elif b in (0x5D, 0x7D):
            depth -= 1
    try:
        doc = json.loads(data.decode("utf-8"), parse_constant=_no_constant)
    except (UnicodeDecodeError, ValueError, RecursionError) as exc:
        raise MalformedInputError(f"{what} is not valid JSON: {exc}") from exc
    # "\ud800" is valid JSON but no text: a lone surrogate makes every later .encode() raise
    try:
        json.dumps(doc, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError as exc:
        raise MalformedInputError(f"{what} has a string that is not valid Unicode (a lone surrogate)") from exc
    return doc


def _no_constant(name: str) -> object:
    raise ValueError(f"{name} is not JSON")  # Python's json takes NaN/Infinity; RFC 8259 does not


def expect_dict(obj: object, what: str) -> dict:
    if not isinstance(obj, dict):
        raise MalformedInputError(f"{what}: expected a JSON object, got {type(obj).__name__}")
    return obj


def expect_field(obj: dict, key: str, typ: type | tuple[type, ...], what: str) -> object:
    if key not in obj:
        raise MalformedInputError(f"{what}: missing field {key!r}")
    val = obj[key]
    # bool is an int subclass: refuse it where an int is wanted
    if typ is int and isinstance(val, bool):
        raise MalformedInputError(f"{what}: field {key!r} must be an integer")
    if not isinstance(val, typ):
        raise MalformedInputError(f"{what}: field {key!r} has the wrong type ({type(val).__name__})")
    return val
