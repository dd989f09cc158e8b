"""HTTP(S) and file:// over Tor: a thin trio layer with limits and error mapping.

One ``httpx.AsyncClient`` per isolation key: the SOCKS credentials live in the
proxy URL, so a client (and its keep-alive pool) belongs to one circuit.
Foreign exceptions are translated into torfetch's tree here and only here.
"""

from __future__ import annotations

import http.cookiejar
import math
import os
import ssl
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Mapping

import httpcore
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
    MalformedInputError,
    NetworkError,
    NotFoundError,
    TorfetchError,
    TorUnavailable,
)
from .isolation import IsolationKey, IsolationPolicy, origin_of, service_of

# Same for every torfetch user; never pacman's HTTP_USER_AGENT unless asked.
GENERIC_USER_AGENT = "torfetch"
FILE_CHUNK = 1024 * 1024  # one worker-thread hop per MiB of a file:// read


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
    # the path's bytes, as libcurl decodes them (%FF is the byte 0xff, not U+FFFD); no NUL in a path
    raw = urllib.parse.unquote_to_bytes(parts.path)
    if b"\x00" in raw:
        raise MalformedInputError(f"refusing a file URL with a NUL byte (%00) in its path: {_show(url)}")
    return os.fsdecode(raw)


def _show(url: str) -> str:
    """A URL from a server, fit for one line of stderr."""
    text = url.encode("ascii", "backslashreplace").decode("ascii")
    text = "".join(c if c.isprintable() else f"\\x{ord(c):02x}" for c in text)
    return text if len(text) <= 200 else text[:200] + "…"


def _redirect_method(status: int, method: str) -> str:
    """What the next hop's method is (RFC 9110 §15.4, as browsers and httpx do)."""
    if status == 303 and method != "HEAD":
        return "GET"
    if status == 302 and method != "HEAD":
        return "GET"
    if status == 301 and method == "POST":
        return "GET"
    return method


class Network:
    """Open per-isolation-key clients lazily; close them all on exit.

    ``proxy`` None means direct connections (only allowed when the user gave
    no --proxy). ``direct_purposes`` lists purposes that bypass the proxy
    (``{"package"}`` with --bypass-proxy-for-pkgs).

    Redirects are followed here, not by httpx: httpx follows them inside one
    client, so a redirect to another host kept the first host's circuit.
    Each hop picks its client by its own origin (same purpose, same package
    scope), at most ``MAX_REDIRECTS`` hops, http(s) only, never https → http.

    Every proxied stream is counted per isolation key (``opened_streams``):
    httpcore reports each completed SOCKS handshake through its ``trace``
    extension, and a keep-alive request reuses the stream without one, so
    the count is exactly what tor's STREAM events should show.
    """

    MAX_REDIRECTS = 5

    def __init__(
        self,
        *,
        proxy: str | None,
        timeouts: Timeouts,
        isolation: IsolationPolicy | None = None,
        direct_purposes: frozenset[str] = frozenset(),
        user_agent: str = GENERIC_USER_AGENT,
        on_request: Callable[[str, str, str], None] | None = None,
        verify: ssl.SSLContext | None = None,
    ) -> None:
        self.proxy = normalise_proxy(proxy) if proxy else None
        self.timeouts = timeouts
        self.isolation = isolation or IsolationPolicy.new()
        self.direct_purposes = direct_purposes
        self.user_agent = user_agent
        self.on_request = on_request
        self.verify = verify  # None: certifi's trust store, as httpx's default (tests pass their own CA)
        self._trust: ssl.SSLContext | None = None  # made once, on the first https origin
        self._no_tls: ssl.SSLContext | None = None
        self._clients: dict[tuple[bool, IsolationKey], httpx.AsyncClient] = {}
        self._opened: dict[IsolationKey, int] = {}

    async def __aenter__(self) -> "Network":
        return self

    async def __aexit__(self, *exc: object) -> None:
        with trio.move_on_after(2, shield=True):
            for client in self._clients.values():
                await client.aclose()
        self._clients.clear()

    def uses_proxy(self, purpose: str) -> bool:
        return self.proxy is not None and purpose not in self.direct_purposes

    def key_for(self, purpose: str, url: str, package: str = "", service: str | None = None) -> IsolationKey:
        """The isolation key of a request: ``service`` (a base URL) names it if given, else the URL's origin."""
        try:
            name = service_of(service) if service is not None else origin_of(url)
        except ValueError as exc:
            raise ConfigError(f"not a usable http(s) URL: {_show(service or url)}") from exc
        return self.isolation.key(purpose, name, package)

    def opened_streams(self) -> dict[tuple[str, str], tuple[str, int]]:
        """SOCKS credentials → (isolation key label, streams opened through the proxy with them)."""
        return {self.isolation.credentials(k): (k.label().replace("\n", " "), n) for k, n in self._opened.items()}

    def _tls_for(self, key: IsolationKey) -> ssl.SSLContext:
        """One TLS context for every client (httpx loads the trust store anew per client: ~75 ms each here,
        paid serially before each purpose's first connection). An http:// origin gets a context that trusts
        no CA at all: it is never used there, and if it ever were, every handshake would fail."""
        if key.service.startswith("https://"):
            if self.verify is not None:
                return self.verify
            if self._trust is None:
                self._trust = httpx.create_ssl_context(verify=True, trust_env=False)
            return self._trust
        if self._no_tls is None:
            self._no_tls = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)  # CERT_REQUIRED, check_hostname, no CAs
        return self._no_tls

    def _client(self, key: IsolationKey, direct: bool) -> httpx.AsyncClient:
        client = self._clients.get((direct, key))
        if client is None:
            proxy_url = None
            if not direct:
                if self.proxy is None:  # uses_proxy() checked it; never fall back to direct
                    raise TorUnavailable("no Tor proxy configured")
                user, pw = self.isolation.credentials(key)
                proxy_url = self.proxy.replace("socks5h://", f"socks5h://{user}:{pw}@", 1)
            t = self.timeouts
            transport = httpx.AsyncHTTPTransport(proxy=proxy_url, trust_env=False, verify=self._tls_for(key))
            _read_in_large_blocks(transport)
            client = httpx.AsyncClient(
                transport=transport,
                timeout=httpx.Timeout(connect=t.connect, read=t.idle_read, write=t.idle_read, pool=t.connect),
                # No identifying headers; no cookies kept (fresh jar, never read).
                headers={"User-Agent": self.user_agent, "Accept": "*/*", "Accept-Encoding": "identity"},
                # A jar whose policy accepts no domain: cookies are never stored or sent.
                cookies=http.cookiejar.CookieJar(policy=http.cookiejar.DefaultCookiePolicy(allowed_domains=[])),
                follow_redirects=False,  # stream() follows them, each hop on its own origin's circuit
                trust_env=False,  # never pick up HTTP(S)_PROXY / NO_PROXY behind the user's back
            )
            self._clients[(direct, key)] = client
        return client

    async def preconnect(self, purpose: str, url: str, *, max_bytes: int, timeout: float, package: str = "") -> None:
        """Open the circuit and keep-alive connection that ``purpose``'s next request to this origin reuses, by
        a GET of ``url`` (a request every client makes alike; its answer is read and dropped), so a lookup that
        must wait for something else does not also wait for a connect. Nothing if this key has a client
        already; a failure is left to the real request to report."""
        key = self.key_for(purpose, url, package)
        if (not self.uses_proxy(purpose), key) in self._clients:
            return
        try:
            await self.request(purpose, "GET", url, max_bytes=max_bytes, timeout=timeout, package=package)
        except TorfetchError:
            pass

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
        service: str | None = None,
    ) -> Response:
        """Fetch a small document into memory; any HTTP status is returned."""
        chunks: list[bytes] = []
        status, hdrs = await self.stream(
            purpose, method, url, chunks.append, max_bytes=max_bytes, timeout=timeout,
            content=content, headers=headers, package=package, raise_for_status=False, service=service,
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
        service: str | None = None,
    ) -> tuple[int, Mapping[str, str]]:
        """Stream a body into ``sink`` chunk by chunk; memory stays flat.

        A sink that returns an awaitable (its queue is full) is awaited before the next read.

        Args:
          service: the base URL of the service asked (a rebuilder's URL with
            its path); its origin and path name the circuit. Default: the
            URL's origin.

        Raises DownloadTooLarge past ``max_bytes`` (or when Content-Length
        says so, before the body), FetchTimeout past ``timeout`` seconds in
        total, past ``timeouts.connect`` before the connection (SOCKS
        handshake included) is up, or below the low-speed rule; NetworkError
        for a redirect loop, a redirect off http(s) or from https to http;
        and maps every transport failure.
        """
        scheme = urllib.parse.urlsplit(url).scheme.lower()
        try:
            with trio.fail_after(timeout):
                if scheme == "file":
                    if self.on_request is not None:
                        self.on_request(purpose, method, url)
                    return await self._stream_file(url, sink, max_bytes)
                if scheme not in ("http", "https"):
                    raise ConfigError(f"unsupported URL scheme {scheme!r} in {url}")
                first_key = key = self.key_for(purpose, url, package, service)
                first_origin = self.key_for(purpose, url).service  # the URL's own origin, validated
                for _hop in range(self.MAX_REDIRECTS + 1):
                    if self.on_request is not None:
                        self.on_request(purpose, method, url)
                    status, hdrs, location = await self._send(
                        purpose, key, method, url, sink, max_bytes=max_bytes, content=content, headers=headers,
                        raise_for_status=raise_for_status)
                    if location is None:
                        return status, hdrs
                    url, key = self._next_hop(purpose, url, location, package, first_origin, first_key)
                    if headers and origin_of(url) != first_origin:
                        # another host is not told what was meant for the first (a log's sigsum-token, say):
                        # only the body's own description goes along, as curl drops credentials off-host
                        headers = {k: v for k, v in headers.items() if k.lower() in _PORTABLE_HEADERS}
                    new_method = _redirect_method(status, method)
                    if new_method != method:
                        method, content = new_method, None
                raise NetworkError(f"{purpose} request for {_name(url)}: more than {self.MAX_REDIRECTS} redirects "
                                   f"(last to {_show(url)})")
        except trio.TooSlowError as exc:
            raise FetchTimeout(f"{purpose} lookup of {_name(url)} took longer than {timeout:g} s") from exc

    def _next_hop(self, purpose: str, url: str, location: str, package: str, first_origin: str,
                  first_key: IsolationKey) -> tuple[str, IsolationKey]:
        """Resolve a Location and pick the hop's circuit; refuse what pacman's curl would not do safely."""
        what = f"{purpose} request for {_name(url)}"
        try:
            target = urllib.parse.urljoin(url, location.strip())
            parts = urllib.parse.urlsplit(target)
            target = urllib.parse.urlunsplit(parts._replace(fragment=""))
            new_scheme = parts.scheme.lower()
        except ValueError as exc:
            raise NetworkError(f"{what}: redirect to a malformed URL {_show(location)}") from exc
        if new_scheme not in ("http", "https"):
            raise NetworkError(f"{what}: refusing a redirect to {new_scheme or 'a relative'}:// URL {_show(target)}",
                               hint="only http:// and https:// redirects are followed")
        if urllib.parse.urlsplit(url).scheme.lower() == "https" and new_scheme == "http":
            raise NetworkError(f"{what}: refusing a redirect from https to http ({_show(target)})",
                               hint="the server downgraded the connection; ask for the http:// URL if you mean it")
        try:
            origin = origin_of(target)
        except ValueError as exc:
            raise NetworkError(f"{what}: redirect to a malformed URL {_show(target)}") from exc
        # Back on the first origin: the service's own circuit (a rebuilder's base path included);
        # anywhere else: that origin's circuit for this purpose and package.
        key = first_key if origin == first_origin else self.isolation.key(purpose, origin, package)
        return target, key

    async def _send(
        self, purpose: str, key: IsolationKey, method: str, url: str, sink: Callable[[bytes], object], *,
        max_bytes: int, content: bytes | None, headers: Mapping[str, str] | None, raise_for_status: bool,
    ) -> tuple[int, Mapping[str, str], str | None]:
        """One hop. Returns (status, headers, Location of a redirect or None); a redirect's body is not read.

        A GET or HEAD sent on a kept-alive connection that the server closed before answering it (the
        server's idle timer and our request crossed: likelier now that the log's connection is opened at
        t=0 and sits idle until the signature is in) is sent once more, on a new connection of the same
        client (the same circuit), as RFC 9112 §9.3.1 allows for idempotent requests. httpcore does not."""
        retry = method in ("GET", "HEAD")
        while True:
            try:
                return await self._send_once(purpose, key, method, url, sink, max_bytes=max_bytes, content=content,
                                             headers=headers, raise_for_status=raise_for_status, stale_retry=retry)
            except _StaleConnection:
                retry = False

    async def _send_once(
        self, purpose: str, key: IsolationKey, method: str, url: str, sink: Callable[[bytes], object], *,
        max_bytes: int, content: bytes | None, headers: Mapping[str, str] | None, raise_for_status: bool,
        stale_retry: bool,
    ) -> tuple[int, Mapping[str, str], str | None]:
        direct = not self.uses_proxy(purpose)
        client = self._client(key, direct)
        t = self.timeouts
        what = f"{purpose} request for {_name(url)}"
        # One cancel scope, two jobs: until the request goes out it is the
        # connect bound (TCP + SOCKS handshake + TLS: httpx's own connect
        # timeout does not cover waiting for the SOCKS reply); from then on it
        # is the low-speed rule's window (pacman's curl: CURLOPT_LOW_SPEED_*).
        quota = t.low_speed_limit * t.low_speed_time
        scope = trio.CancelScope(deadline=trio.current_time() + t.connect)
        phase = "connect"
        reused, answered = True, False  # until this request opens a connection / gets its status line

        def next_window() -> None:
            scope.deadline = trio.current_time() + t.low_speed_time if quota > 0 else math.inf

        async def trace(event: str, info: object) -> None:
            nonlocal phase, reused, answered
            if event.endswith(".connect_tcp.started"):
                reused = False
            elif event.endswith(".receive_response_headers.complete"):
                answered = True
            elif event.endswith(".setup_socks5_connection.complete"):
                self._opened[key] = self._opened.get(key, 0) + 1  # one SOCKS stream = one tor STREAM
            elif event.endswith(".send_request_headers.started") and phase == "connect":
                phase = "transfer"
                next_window()

        stale = _stale_connection(lambda: stale_retry and reused and not answered)
        with scope:
            with _map_errors(purpose, url, not direct), stale:
                async with client.stream(method, url, content=content, headers=headers,
                                         extensions={"trace": trace}) as resp:
                    location = resp.headers.get("location")
                    if resp.status_code in (301, 302, 303, 307, 308) and location:
                        return resp.status_code, dict(resp.headers), location
                    if raise_for_status:
                        _raise_for_status(resp.status_code, url)
                    length = resp.headers.get("content-length", "")
                    if length.isascii() and length.isdigit() and int(length) > max_bytes:
                        raise DownloadTooLarge(f"{_name(url)} is larger than the limit of {max_bytes} bytes "
                                               f"(Content-Length {int(length)})")
                    total = window = 0
                    async for chunk in resp.aiter_raw():  # as received: a chunker would hide progress from the low-speed rule
                        total += len(chunk)
                        if total > max_bytes:
                            raise DownloadTooLarge(f"{_name(url)} is larger than the limit of {max_bytes} bytes")
                        if hasattr(wait := sink(chunk), "__await__"):
                            await wait  # the sink's backpressure (PackageSink: its workers are behind)
                        window += len(chunk)
                        if window >= quota:
                            window = 0
                            next_window()
                    return resp.status_code, dict(resp.headers), None
        # only reached when the scope's own deadline cancelled the request
        if phase == "connect":
            raise FetchTimeout(f"{what}: no connection within {t.connect:g} s (--connect-timeout)"
                               + (": the SOCKS proxy did not complete the handshake" if not direct else ""),
                               hint="is --proxy tor's SocksPort, and is tor bootstrapped?" if not direct else None)
        raise FetchTimeout(f"{what}: slower than {t.low_speed_limit} bytes/s over {t.low_speed_time:g} s "
                           "(--low-speed-limit, --low-speed-time)")

    async def _stream_file(self, url: str, sink: Callable[[bytes], object], max_bytes: int) -> tuple[int, Mapping[str, str]]:
        # open() and read() run in a worker thread: a FIFO without a writer, a
        # hung NFS mount or a slow disk must not stall the event loop (the
        # deadline still fires; the abandoned thread holds no output).
        path = _file_path(url)
        try:
            # unbuffered: a BufferedReader's close() would wait for the lock an abandoned read holds
            f = await trio.to_thread.run_sync(lambda: open(path, "rb", buffering=0), abandon_on_cancel=True)
        except FileNotFoundError as exc:
            raise NotFoundError(f"{_show(path)} does not exist") from exc
        except OSError as exc:
            raise NetworkError(f"cannot read {_show(path)}: {exc.strerror}") from exc
        abandoned = False
        try:
            total = 0
            while True:
                try:
                    chunk = await trio.to_thread.run_sync(f.read, FILE_CHUNK, abandon_on_cancel=True)
                except OSError as exc:
                    raise NetworkError(f"cannot read {_show(path)}: {exc.strerror}") from exc
                except BaseException:
                    abandoned = True  # a read may still run in its thread: it closes the file when done
                    raise
                if not chunk:
                    break
                total += len(chunk)
                if total > max_bytes:
                    raise DownloadTooLarge(f"{_name(url)} is larger than the limit of {max_bytes} bytes")
                if hasattr(wait := sink(chunk), "__await__"):
                    await wait
        finally:
            if not abandoned:
                f.close()
        return 200, {}


#: bytes asked of the socket per read of a response (httpcore asks 64 KiB): a loopback or LAN mirror fills it,
#: and per read the trio/httpcore/h11 layers cost more than hashing and writing 64 KiB (bench/fetch.py P4).
#: 512 KiB, not 1 MiB: h11 copies each read three times, and with the package's hashing and writing in worker
#: threads (store/package_sink.py) the smaller buffers were faster and kept peak RSS lower (measured: 1 GiB
#: fetch 2.1 s / 52 MiB vs 2.4 s / 61 MiB; 256 KiB 2.6 s). A read still returns what has arrived, so progress
#: and the low-speed rule see the bytes as they come.
READ_BYTES = 512 * 1024


class _LargeReadStream(httpcore.AsyncNetworkStream):
    def __init__(self, inner: httpcore.AsyncNetworkStream) -> None:
        self._inner = inner

    async def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        # only the HTTP/1.1 body reads (httpcore's 64 KiB) grow; a SOCKS handshake's small reads stay as asked
        return await self._inner.read(READ_BYTES if max_bytes == 64 * 1024 else max_bytes, timeout)

    async def write(self, buffer: bytes, timeout: float | None = None) -> None:
        await self._inner.write(buffer, timeout)

    async def aclose(self) -> None:
        await self._inner.aclose()

    async def start_tls(self, ssl_context: ssl.SSLContext, server_hostname: str | None = None,
                        timeout: float | None = None) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class _LargeReadBackend(httpcore.AsyncNetworkBackend):
    def __init__(self, inner: httpcore.AsyncNetworkBackend) -> None:
        self._inner = inner

    async def connect_tcp(self, host: str, port: int, timeout: float | None = None, local_address: str | None = None,
                          socket_options: object = None) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.connect_tcp(host, port, timeout=timeout, local_address=local_address,
                                                              socket_options=socket_options))

    async def connect_unix_socket(self, path: str, timeout: float | None = None,
                                  socket_options: object = None) -> httpcore.AsyncNetworkStream:
        return _LargeReadStream(await self._inner.connect_unix_socket(path, timeout=timeout,
                                                                      socket_options=socket_options))

    async def sleep(self, seconds: float) -> None:
        await self._inner.sleep(seconds)


def _read_in_large_blocks(transport: httpx.AsyncHTTPTransport) -> None:
    """Give the transport's connection pool (direct or SOCKS) a backend that reads READ_BYTES at a time.

    httpx has no option for it; the pool is reached through its (long-stable) private attributes. If a later
    httpx moves them, reads stay at 64 KiB: slower, never different.
    """
    pool = getattr(transport, "_pool", None)
    backend = getattr(pool, "_network_backend", None)
    if isinstance(backend, httpcore.AsyncNetworkBackend) and not isinstance(backend, _LargeReadBackend):
        pool._network_backend = _LargeReadBackend(backend)  # type: ignore[union-attr]


#: request headers that describe the body, not the client: kept across a redirect to another origin
_PORTABLE_HEADERS = frozenset({"content-type", "accept"})


def _name(url: str) -> str:
    # a redirect hop's URL comes from the server: printable, bounded
    path = urllib.parse.urlsplit(url).path
    return _show(urllib.parse.unquote(path.rsplit("/", 1)[-1]) or url)


def _raise_for_status(status: int, url: str) -> None:
    if 200 <= status < 300:
        return
    if status in (404, 410):
        raise NotFoundError(f"{_name(url)}: server answered {status} ({url})")
    raise HTTPStatusError(f"{_name(url)}: server answered HTTP {status} ({url})", status=status)


class _StaleConnection(Exception):
    """A kept-alive connection was found closed by the server before it answered: send again (once)."""


class _stale_connection:
    """Turn the failure of a request on a reused connection, before any answer, into _StaleConnection."""

    def __init__(self, applies: Callable[[], bool]) -> None:
        self.applies = applies

    def __enter__(self) -> None:
        return None

    def __exit__(self, typ: type | None, exc: BaseException | None, tb: object) -> bool:
        if isinstance(exc, (httpx.RemoteProtocolError, httpx.ReadError, httpx.WriteError)) and self.applies():
            raise _StaleConnection() from exc
        return False


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
            tls = _tls_failure(exc)
            if tls is not None:  # the proxy and the TCP connection were fine: the server's TLS was not
                raise NetworkError(f"{what}: TLS handshake with {_show(host_of(self.url))} failed: {tls}",
                                   hint="an https server needs a certificate a CA in certifi's store signed, "
                                   "for its name") from exc
            if self.via_proxy:
                raise TorUnavailable(f"{what}: cannot reach the Tor SOCKS proxy ({exc})",
                                     hint="is tor running and is --proxy its SocksPort?") from exc
            raise NetworkError(f"{what}: cannot connect: {exc}") from exc
        if isinstance(exc, httpx.RemoteProtocolError):
            raise NetworkError(f"{what}: the server broke the connection ({exc})") from exc
        if isinstance(exc, (httpx.HTTPError, OSError, httpx.InvalidURL)):
            raise NetworkError(f"{what}: {type(exc).__name__}: {exc}") from exc
        return False


def _tls_failure(exc: BaseException) -> str | None:
    """Why TLS failed, if an ssl.SSLError is behind ``exc`` (httpcore wraps it in trio's BrokenResourceError,
    then in a ConnectError whose text is empty: without this a refused certificate read as "cannot reach
    the Tor SOCKS proxy ()")."""
    seen: BaseException | None = exc
    for _ in range(8):
        seen = seen.__cause__ or seen.__context__ if seen is not None else None
        if seen is None:
            return None
        if isinstance(seen, ssl.SSLCertVerificationError):
            return f"certificate not trusted ({_show(str(seen.verify_message or seen.reason))})"
        if isinstance(seen, ssl.SSLError):
            return _show(str(seen.reason or seen))
    return None
