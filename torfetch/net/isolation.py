"""Which Tor circuit a request rides on: SOCKS credentials per isolation key.

Tor isolates streams by SOCKS username/password (``IsolateSOCKSAuth``, on by
default), so we need no control port for it. The credentials are an HMAC of
the isolation key under a per-process random secret: another program on the
machine cannot guess them and join one of our circuits.

Pure: no sockets. The secret is passed in so tests can fix it.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

PURPOSES = ("package", "database", "signature", "log", "rebuilder")


@dataclass(frozen=True)
class IsolationKey:
    purpose: str  # one of PURPOSES
    host: str  # destination host (lower-case)
    scope: str = ""  # package filename with --isolate package, else ""

    def label(self) -> str:
        return f"{self.purpose}:{self.host}" + (f":{self.scope}" if self.scope else "")


@dataclass(frozen=True)
class IsolationPolicy:
    mode: str = "purpose"  # "purpose" or "package"
    secret: bytes = b""

    @classmethod
    def new(cls, mode: str = "purpose") -> "IsolationPolicy":
        if mode not in ("purpose", "package"):
            raise ValueError(f"unknown isolation mode {mode!r}")
        return cls(mode=mode, secret=secrets.token_bytes(32))

    def key(self, purpose: str, host: str, package: str = "") -> IsolationKey:
        if purpose not in PURPOSES:
            raise ValueError(f"unknown purpose {purpose!r}")
        scope = package if self.mode == "package" else ""
        return IsolationKey(purpose, host.lower(), scope)

    def credentials(self, key: IsolationKey) -> tuple[str, str]:
        """SOCKS5 username/password (RFC 1929) for ``key``; each at most 255 bytes."""
        digest = hmac.new(self.secret, key.label().encode("utf-8"), hashlib.sha256).hexdigest()
        # The username names the purpose so circuit audits are readable; the
        # password carries the unguessable part.
        return f"torfetch-{key.purpose}", digest
