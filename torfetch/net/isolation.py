"""Which Tor circuit a request rides on: SOCKS credentials per isolation key.

Tor isolates streams by SOCKS username/password (``IsolateSOCKSAuth``, on by
default), so we need no control port for it. The credentials are an HMAC of
the isolation key under a per-process random secret: another program on the
machine cannot guess them and join one of our circuits.

What a key names. Keying by host name alone was wrong: two rebuilders on one
host (other ports, or other base paths on one port) rode one circuit, so the
exit saw both answers and one slow or hostile rebuilder could sit on the same
circuit as the others. A key is therefore the *origin* (scheme, host, port,
RFC 6454) of the server asked, plus, for a rebuilder, its base path: each
``--rebuilder`` URL is one service and gets one circuit. For the other
purposes (the package mirror, the signature server, the log) the origin is
the natural service boundary.

Pure: no sockets. The secret is passed in so tests can fix it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import urllib.parse
from dataclasses import dataclass

PURPOSES = ("package", "database", "signature", "log", "rebuilder")
_DEFAULT_PORTS = {"http": 80, "https": 443}


def origin_of(url: str) -> str:
    """``HTTP://Mirror.Example`` → ``http://mirror.example:80``: one spelling per origin (RFC 6454).

    Raises ValueError for a URL without an http(s) scheme or a host, or with a
    bad port (the callers validated the URL already; this is a backstop).
    """
    parts = urllib.parse.urlsplit(url)
    scheme = parts.scheme.lower()
    host = (parts.hostname or "").lower()
    if scheme not in _DEFAULT_PORTS or not host:
        raise ValueError(f"no http(s) origin in {url!r}")
    port = parts.port or _DEFAULT_PORTS[scheme]  # .port raises ValueError when out of range
    if ":" in host:
        host = f"[{host}]"
    return f"{scheme}://{host}:{port}"


def service_of(base_url: str) -> str:
    """A service's origin and base path: ``https://h/rebuild`` → ``https://h:443/rebuild/``."""
    path = urllib.parse.urlsplit(base_url).path or "/"
    if not path.endswith("/"):
        path += "/"
    return origin_of(base_url) + path


@dataclass(frozen=True)
class IsolationKey:
    purpose: str  # one of PURPOSES
    service: str  # origin_of() of the server, or service_of() of a rebuilder's base URL
    scope: str = ""  # package filename with --isolate package, else ""

    def label(self) -> str:
        # newline-separated: urlsplit strips newlines, so no service spells another key
        return f"{self.purpose}\n{self.service}" + (f"\n{self.scope}" if self.scope else "")


@dataclass(frozen=True)
class IsolationPolicy:
    mode: str = "purpose"  # "purpose" or "package"
    secret: bytes = b""

    @classmethod
    def new(cls, mode: str = "purpose") -> "IsolationPolicy":
        if mode not in ("purpose", "package"):
            raise ValueError(f"unknown isolation mode {mode!r}")
        return cls(mode=mode, secret=secrets.token_bytes(32))

    def key(self, purpose: str, service: str, package: str = "") -> IsolationKey:
        """The key for ``purpose`` at ``service`` (an ``origin_of`` or ``service_of`` string)."""
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        scope = package if self.mode == "package" else ""
        return IsolationKey(purpose, service, scope)

    def credentials(self, key: IsolationKey) -> tuple[str, str]:
        """SOCKS5 username/password (RFC 1929) for ``key``; each at most 255 bytes."""
        digest = hmac.new(self.secret, key.label().encode("utf-8"), hashlib.sha256).hexdigest()
        # The username names the purpose so circuit audits are readable; the
        # password carries the unguessable part.
        return f"torfetch-{key.purpose}", digest
