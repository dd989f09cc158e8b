"""Rebuilder base URLs: one spelling per rebuilder, and API paths joined onto the base (pure)."""

from __future__ import annotations

import urllib.parse

from ..errors import ConfigError


def normalise_rebuilder_url(url: str) -> str:
    """``HTTPS://Host/rebuild`` → ``https://host/rebuild/``: one spelling per rebuilder.

    The base keeps its path (wolfpit.net/rebuild/): API paths are appended to
    it, never replace it.
    """
    try:
        parts = urllib.parse.urlsplit(url.strip())
    except ValueError as exc:  # "Invalid IPv6 URL": http://[::1/
        raise ConfigError(f"rebuilder URL {url!r} is not a URL ({exc})") from exc
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ConfigError(f"rebuilder URL {url!r} must be http:// or https:// with a host")
    if parts.query or parts.fragment:
        raise ConfigError(f"rebuilder URL {url!r} must not have a query or fragment")
    path = parts.path if parts.path.endswith("/") else parts.path + "/"
    scheme, netloc = parts.scheme.lower(), parts.netloc.lower()
    try:
        port = parts.port
    except ValueError as exc:
        raise ConfigError(f"rebuilder URL {url!r} has a bad port ({exc})") from exc
    if port == {"http": 80, "https": 443}[scheme]:
        netloc = netloc.rsplit(":", 1)[0]  # the default port is the same rebuilder: one spelling, counted once
    return urllib.parse.urlunsplit((scheme, netloc, path, "", ""))


def endpoint(base: str, path: str, query: dict[str, str] | None = None) -> str:
    """Join an API path onto a rebuilder's base URL, keeping the base's own path."""
    url = normalise_rebuilder_url(base) + path.lstrip("/")
    return url + ("?" + urllib.parse.urlencode(query) if query else "")
