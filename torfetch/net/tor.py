"""PLACEHOLDER by the foundation engineer (helper for issue 6 replaces this file).

tor_context: the proxy to use and, with --audit-circuits, a circuit audit.
"""

from __future__ import annotations

from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import AsyncIterator, Callable

from ..config import Options
from ..errors import NotSupportedError


@dataclass
class TorContext:
    proxy: str | None
    audit: object | None = None


@asynccontextmanager
async def tor_context(opts: Options, report: Callable[[str], None]) -> AsyncIterator[TorContext]:
    if opts.tor_control or opts.tor_launch or opts.audit_circuits:
        raise NotSupportedError("--tor-control / --tor launch / --audit-circuits are not supported yet")
    yield TorContext(proxy=opts.proxy)
