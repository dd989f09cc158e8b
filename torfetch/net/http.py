"""HTTP(S) and file:// over Tor: a thin trio layer with limits and error mapping.

One ``httpx.AsyncClient`` per isolation key: the SOCKS credentials live in the
proxy URL, so a client (and its keep-alive pool) belongs to one circuit.
Foreign exceptions are translated into torfetch's tree here and only here.
"""

from __future__ import annotations

import http.cookiejar
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Mapping

import httpx
import socksio
import trio

from ..config import Timeouts
from ..errors import (
    CircuitFailed,
    ConfigError,
    DownloadTooLarge,
    FetchTimeout,
    HTTPStatusError,
    NetworkError,
    NotFoundError,
    TorUnavailable,
)
from .isolation import IsolationPolicy

# Same for every torfetch user; never pacman's HTTP_USER_AGENT unless asked.
GENERIC_USER_AGENT = "torfetch"
CHUNK = 64 * 1024


@dataclass(frozen=True)
class Response:
    status: int
    body: bytes
    headers: Mapping[str, str] = field(default_factory=dict)
    url: str = ""


def normalise_proxy(proxy: str) -> str:
    """Accept socks5:// and socks5h://, always resolve names at the proxy."""
    parts = urllib.parse.urlsplit(proxy)
    scheme = parts.scheme.lower()
    if scheme not in ("socks5", "socks5h"):
        raise ConfigError(f"unsupported proxy {proxy!r}: only socks5:// or socks5h:// (Tor's SocksPort)")
    if not parts.hostname or not parts.port:
        raise ConfigError(f"proxy {proxy!r} needs a host and a port, e.g. socks5h://127.0.0.1:9050")
    if parts.username or parts.password:
        raise ConfigError("do not put credentials in --proxy: torfetch sets them per circuit")
    host = parts.hostname
    if ":" in host:
        host = f"[{host}]"
    return f"socks5h://{host}:{parts.port}"


def host_of(url: str) -> str:
    return (urllib.parse.urlsplit(url).hostname or "").lower()


def _file_path(url: str) -> str:
    parts = urllib.parse.urlsplit(url)
    if parts.netloc not in ("", "localhost"):
        raise ConfigError(f"file URL with a host is not supported: {url}")
    return urllib.parse.unquote(parts.path)


class Network:
    """Open per-purpose clients lazily; close them all on exit.

    ``proxy`` None means direct connections (only allowed when the user gave
    no --proxy). ``direct_purposes`` lists purposes that bypass the proxy
    (``{"package"}`` with --bypass-proxy-for-pkgs).
    """

    def __init__(
        self,
        *,
        proxy: str | None,
        timeouts: Timeouts,
        isolation: IsolationPolicy | None = None,
        direct_purposes: frozenset[str] = frozenset(),
        user_agent: str = GENERIC_USER_AGENT,
        on_request: Callable[[str, str, str], None] | None = None,
    ) -> None:
        self.proxy = normalise_proxy(proxy) if proxy else None
        self.timeouts = timeouts
        self.isolation = isolation or IsolationPolicy.new()
        self.direct_purposes = direct_purposes
        self.user_agent = user_agent
        self.on_request = on_request
        self._clients: dict[object, httpx.AsyncClient] = {}

    async def __aenter__(self) -> "Network":
        return self

    async def __aexit__(self, *exc: object) -> None:
        with trio.move_on_after(2, shield=True):
            for client in self._clients.values():
                await client.aclose()
        self._clients.clear()

    def uses_proxy(self, purpose: str) -> bool:
        return self.proxy is not None and purpose not in self.direct_purposes

    def _client(self, purpose: str, url: str, package: str) -> httpx.AsyncClient:
        direct = not self.uses_proxy(purpose)
        key = self.isolation.key(purpose, host_of(url), package)
        ck = ("direct", key) if direct else ("proxy", key)
        client = self._clients.get(ck)
        if client is None:
            proxy_url = None
            if not direct:
                assert self.proxy is not None  # uses_proxy() checked it
                user, pw = self.isolation.credentials(key)
                proxy_url = self.proxy.replace("socks5h://", f"socks5h://{user}:{pw}@", 1)
            t = self.timeouts
            client = httpx.AsyncClient(
                proxy=proxy_url,
                timeout=httpx.Timeout(connect=t.connect, read=t.idle_read, write=t.idle_read, pool=t.connect),
                # No identifying headers; no cookies kept (fresh jar, never read).
                headers={"User-Agent": self.user_agent, "Accept": "*/*", "Accept-Encoding": "identity"},
                # A jar whose policy accepts no domain: cookies are never stored or sent.
                cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
                follow_redirects=True,  # mirror redirectors; same purpose, same circuit
                max_redirects=5,
                trust_env=False,  # never pick up HTTP(S)_PROXY / NO_PROXY behind the user's back
            )
            self._clients[ck] = client
        return client

    async def request(
        self,
        purpose: str,
        method: str,
        url: str,
        *,
        max_bytes: int,
        timeout: float,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        package: str = "",
    ) -> Response:
        """Fetch a small document into memory; any HTTP status is returned."""
        chunks: list[bytes] = []
        status, hdrs = await self.stream(
            purpose, method, url, chunks.append, max_bytes=max_bytes, timeout=timeout,
            content=content, headers=headers, package=package, raise_for_status=False,
        )
        return Response(status, b"".join(chunks), hdrs, url)

    async def get_ok(self, purpose: str, url: str, *, max_bytes: int, timeout: float, package: str = "") -> bytes:
        r = await self.request(purpose, "GET", url, max_bytes=max_bytes, timeout=timeout, package=package)
        _raise_for_status(r.status, url)
        return r.body

    async def stream(
        self,
        purpose: str,
        method: str,
        url: str,
        sink: Callable[[bytes], object],
        *,
        max_bytes: int,
        timeout: float,
        content: bytes | None = None,
        headers: Mapping[str, str] | None = None,
        package: str = "",
        raise_for_status: bool = True,
    ) -> tuple[int, Mapping[str, str]]:
        """Stream a body into ``sink`` chunk by chunk; memory stays flat.

        Raises DownloadTooLarge past ``max_bytes``, FetchTimeout past
        ``timeout`` seconds in total, and maps every transport failure.
        """
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        if self.on_request is not None:
            self.on_request(purpose, method, url)
        try:
            with trio.fail_after(timeout):
                if scheme == "file":
                    return await self._stream_file(url, sink, max_bytes)
                if scheme not in ("http", "https"):
                    raise ConfigError(f"unsupported URL scheme {scheme!r} in {url}")
                client = self._client(purpose, url, package)
                with _map_errors(purpose, url, self.uses_proxy(purpose)):
                    async with client.stream(method, url, content=content, headers=headers) as resp:
                        if raise_for_status:
                            _raise_for_status(resp.status_code, url)
                        total = 0
                        async for chunk in resp.aiter_raw(CHUNK):
                            total += len(chunk)
                            if total > max_bytes:
                                raise DownloadTooLarge(
                                    f"{_name(url)} is larger than the limit of {max_bytes} bytes"
                                )
                            sink(chunk)
                        return resp.status_code, dict(resp.headers)
        except trio.TooSlowError as exc:
            raise FetchTimeout(f"{purpose} lookup of {_name(url)} took longer than {timeout:g} s") from exc

    async def _stream_file(self, url: str, sink: Callable[[bytes], object], max_bytes: int) -> tuple[int, Mapping[str, str]]:
        path = _file_path(url)
        try:
            f = open(path, "rb")
        except FileNotFoundError as exc:
            raise NotFoundError(f"{path} does not exist") from exc
        except OSError as exc:
            raise NetworkError(f"cannot read {path}: {exc.strerror}") from exc
        with f:
            total = 0
            while True:
                chunk = f.read(CHUNK)
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise DownloadTooLarge(f"{_name(url)} is larger than the limit of {max_bytes} bytes")
                sink(chunk)
                await trio.lowlevel.checkpoint()
        return 200, {}


def _name(url: str) -> str:
    path = urllib.parse.urlsplit(url).path
    return urllib.parse.unquote(path.rsplit("/", 1)[-1]) or url


def _raise_for_status(status: int, url: str) -> None:
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise NotFoundError(f"{_name(url)}: server answered {status} ({url})")
    raise HTTPStatusError(f"{_name(url)}: server answered HTTP {status} ({url})", status=status)


class _map_errors:
    """httpcore-style exception translation at the edge."""

    def __init__(self, purpose: str, url: str, via_proxy: bool) -> None:
        self.purpose, self.url, self.via_proxy = purpose, url, via_proxy

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type | None, exc: BaseException | None, tb: object) -> bool:
        if exc is None or not isinstance(exc, Exception):
            return False
        what = f"{self.purpose} request for {_name(self.url)}"
        if isinstance(exc, httpx.TimeoutException):
            raise FetchTimeout(f"{what} timed out ({type(exc).__name__})") from exc
        if isinstance(exc, httpx.ProxyError):
            raise CircuitFailed(f"{what}: Tor could not connect: {exc}") from exc
        if isinstance(exc, socksio.ProtocolError):
            raise CircuitFailed(f"{what}: SOCKS protocol error from the proxy: {exc}") from exc
        if isinstance(exc, httpx.ConnectError):
            if self.via_proxy:
                raise TorUnavailable(f"{what}: cannot reach the Tor SOCKS proxy ({exc})",
                                     hint="is tor running and is --proxy its SocksPort?") from exc
            raise NetworkError(f"{what}: cannot connect: {exc}") from exc
        if isinstance(exc, httpx.RemoteProtocolError):
            raise NetworkError(f"{what}: the server broke the connection ({exc})") from exc
        if isinstance(exc, (httpx.HTTPError, OSError, httpx.InvalidURL)):
            raise NetworkError(f"{what}: {type(exc).__name__}: {exc}") from exc
        return False
