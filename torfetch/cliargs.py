"""The one argparse helper of torfetch: a parser whose errors are UsageErrors, and typed value converters.

Used by ``cli.py`` (the bare pacman form) and ``commands/*`` (subcommands), and by the config-file loader,
which runs every value through the same converter as its command-line option, so ``proxy = "..."`` in
``/etc/torfetch.toml`` is checked exactly like ``--proxy``.

A converter raises ``argparse.ArgumentTypeError`` with a message for the user: argparse prefixes the option
(``argument --deadline: 'nan' is not ...``) and our parser turns it into a UsageError (exit 2), never an
"internal error" from a stray ``ValueError``; the config loader names the file, line and key instead.
"""

from __future__ import annotations

import argparse
import math
from typing import NoReturn

from .errors import TorfetchError, UsageError


class ArgumentParser(argparse.ArgumentParser):
    """argparse, but a usage error is one line (``torfetch: usage: ...``) and exit 2 via UsageError."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def _show(value: str) -> str:
    return repr(value[:100])


def seconds(value: str) -> float:
    """A duration in seconds: a finite number above zero (``nan``, ``inf``, ``-1`` and ``0`` are refused)."""
    try:
        x = float(value)
    except (TypeError, ValueError):
        raise argparse.ArgumentTypeError(f"{_show(str(value))} is not a number of seconds") from None
    if not math.isfinite(x) or x <= 0:
        raise argparse.ArgumentTypeError(f"{_show(str(value))} is not a positive, finite number of seconds")
    return x


def positive_int(value: str) -> int:
    x = _int(value)
    if x <= 0:
        raise argparse.ArgumentTypeError(f"{_show(str(value))} must be a whole number above 0")
    return x


def count(value: str) -> int:
    """A whole number, 0 or more."""
    x = _int(value)
    if x < 0:
        raise argparse.ArgumentTypeError(f"{_show(str(value))} must be 0 or more")
    return x


def _int(value: str) -> int:
    s = str(value).strip()
    # int() also takes "١٢" and "1_000": only ASCII digits, as a user would type them
    digits = s[1:] if s.startswith("-") else s
    if not (digits.isascii() and digits.isdigit()) or len(s) > 30:
        raise argparse.ArgumentTypeError(f"{_show(str(value))} is not a whole number")
    return int(s)


def proxy_url(value: str) -> str:
    """``socks5://`` or ``socks5h://`` host:port → its ``socks5h://`` spelling; a bad port or bracket is a usage error."""
    from .net.http import normalise_proxy

    try:
        return normalise_proxy(value)
    except TorfetchError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    except ValueError as exc:  # urllib: "Port out of range 0-65535", "Invalid IPv6 URL"
        raise argparse.ArgumentTypeError(f"proxy {_show(value)} is not a valid URL ({exc})") from None


def rebuilder_url(value: str) -> str:
    """A rebuilder base URL in its one normalised spelling (``http(s)://host[:port]/path/``)."""
    import urllib.parse

    from .net.rebuilder_url import normalise_rebuilder_url

    try:
        url = normalise_rebuilder_url(value)
        urllib.parse.urlsplit(url).port  # noqa: B018 - raises on a port out of range
        return url
    except TorfetchError as exc:
        raise argparse.ArgumentTypeError(exc.message) from None
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"rebuilder URL {_show(value)} is not a valid URL ({exc})") from None



_GIVEN = "_torfetch_given"


class RecordingParser(ArgumentParser):
    """An ArgumentParser that remembers which options were given on the command line.

    A config file sits between the built-in defaults and the command line, so the merge must know whether
    ``--isolate purpose`` was typed or is merely the default. argparse cannot tell; this parser parses with
    every default suppressed, records the names it saw (:func:`given`), then fills the defaults in, so the
    namespace looks exactly as plain argparse would make it.
    """

    def parse_known_args(self, args=None, namespace=None):  # type: ignore[override]
        saved = [(a, a.default) for a in self._actions if a.default is not argparse.SUPPRESS]
        for a, _ in saved:
            a.default = argparse.SUPPRESS
        try:
            ns, extras = super().parse_known_args(args, namespace)
        finally:
            for a, d in saved:
                a.default = d
        seen = frozenset(k for k in vars(ns) if k != _GIVEN)
        for a, d in saved:
            if not hasattr(ns, a.dest):
                setattr(ns, a.dest, self.default_of(a))
        setattr(ns, _GIVEN, seen)
        return ns, extras

    def default_of(self, action: argparse.Action) -> object:
        d = action.default
        if isinstance(d, str) and action.type is not None:
            return self._get_value(action, d)  # as argparse converts a string default
        return list(d) if isinstance(d, list) else d

    def defaults(self) -> dict[str, object]:
        return {a.dest: self.default_of(a) for a in self._actions
                if a.dest is not argparse.SUPPRESS and a.default is not argparse.SUPPRESS}


def given(ns: argparse.Namespace) -> frozenset[str]:
    """The dests that were on the command line (for a namespace from a RecordingParser)."""
    return getattr(ns, _GIVEN, frozenset(k for k in vars(ns)))


def url(value: str) -> str:
    """A URL torfetch can fetch: ``http(s)://`` with a host, or ``file://`` (e.g. ``--transparency-url``, ``--log-url``)."""
    import urllib.parse

    try:
        parts = urllib.parse.urlsplit(value.strip())
        parts.port  # noqa: B018 - raises on a port out of range
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"URL {_show(value)} is not valid ({exc})") from None
    scheme = parts.scheme.lower()
    if not ((scheme in ("http", "https") and parts.hostname) or scheme == "file"):
        raise argparse.ArgumentTypeError(f"URL {_show(value)} must be http://, https:// (with a host) or file://")
    return value.strip()
