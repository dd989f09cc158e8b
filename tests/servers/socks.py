"""A recording SOCKS5 proxy on 127.0.0.1 (RFC 1928, username/password per RFC 1929), for tests.

It stands where tor's SocksPort would: every CONNECT is recorded as sent
(address type, host name or address, port, username/password), names under
``.test`` are relayed to 127.0.0.1 (as the test Tor network's MapAddress does)
and anything else is refused. Tests use the log to assert what no real proxy
would show them cheaply: that nothing went direct, that names (ATYP 3), not
addresses, were sent, and which credentials (= which Tor circuit) each request
used.

Modes:
  * ``"relay"`` (default): answer and relay bytes both ways;
  * ``"silent"``: accept the TCP connection and never say a word (a hung proxy);
  * ``"fail"``: answer every CONNECT with ``reply`` (default 0x01, general
    failure, as tor reports a refused destination).

Runs in daemon threads of the test process; every socket has a timeout and
stop() closes them all. Typical use::

    with SocksProxy() as proxy, FileServer(root) as mirror:
        url = mirror.url.replace("127.0.0.1", "mirror.test") + "/core.db"
        async with Network(proxy=proxy.url, timeouts=Timeouts()) as net:
            await net.get_ok("database", url, max_bytes=1 << 20, timeout=30)
    assert [(c.atyp, c.host) for c in proxy.connects] == [(ATYP_NAME, "mirror.test")]
    assert proxy.connects[0].username == "torfetch-database"

A direct connection cannot succeed behind it: the ``.test`` names resolve
nowhere else, so "every request went through the proxy" is "every request
the server saw is in ``connects``".
"""

from __future__ import annotations

import socket
import struct
import threading
from collections import Counter
from dataclasses import dataclass
from typing import Self

ATYP_IPV4, ATYP_NAME, ATYP_IPV6 = 1, 3, 4
REPLY_OK, REPLY_GENERAL_FAILURE, REPLY_NOT_ALLOWED, REPLY_HOST_UNREACHABLE = 0, 1, 2, 4


@dataclass(frozen=True)
class Connect:
    """One CONNECT request, as the client sent it."""

    atyp: int  # 1 IPv4, 3 host name, 4 IPv6
    host: str  # the name as sent (ATYP 3), or the address in text form
    port: int
    username: str | None  # None when the client chose "no authentication"
    password: str | None
    allowed: bool  # relayed (a .test name) or refused

    @property
    def credentials(self) -> tuple[str | None, str | None]:
        return self.username, self.password


class _Closed(Exception):
    pass


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise _Closed
        buf += part
    return buf


class SocksProxy:
    def __init__(self, *, mode: str = "relay", reply: int = REPLY_GENERAL_FAILURE, offer_auth: bool = True,
                 suffix: str = ".test", io_timeout: float = 30.0) -> None:
        if mode not in ("relay", "silent", "fail"):
            raise ValueError(mode)
        self.mode, self.reply, self.offer_auth, self.suffix = mode, reply, offer_auth, suffix
        self.io_timeout = io_timeout
        self.connects: list[Connect] = []
        self.accepted = 0  # TCP connections accepted, answered or not
        self._lock = threading.Lock()
        self._socks: set[socket.socket] = set()
        self._stopping = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._thread: threading.Thread | None = None

    @property
    def port(self) -> int:
        return self._listener.getsockname()[1]

    @property
    def url(self) -> str:
        return f"socks5h://127.0.0.1:{self.port}"

    def by_credentials(self) -> Counter[tuple[str | None, str | None]]:
        """How many CONNECTs each (username, password) made."""
        with self._lock:
            return Counter(c.credentials for c in self.connects)

    def clear(self) -> None:
        with self._lock:
            self.connects.clear()
            self.accepted = 0

    # -- lifecycle ----------------------------------------------------------

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._listener.close()
        with self._lock:
            socks, self._socks = list(self._socks), set()
        for s in socks:
            try:
                s.close()
            except OSError:
                pass

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- serving --------------------------------------------------------------

    def _track(self, s: socket.socket) -> None:
        with self._lock:
            self._socks.add(s)

    def _serve(self) -> None:
        while not self._stopping.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            with self._lock:
                self.accepted += 1
            self._track(conn)
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(self.io_timeout)
        try:
            if self.mode == "silent":
                self._stopping.wait(self.io_timeout)  # hold the connection, say nothing
                return
            self._negotiate(conn)
        except (_Closed, OSError):
            pass
        finally:
            try:
                conn.close()
            except OSError:
                pass

    def _negotiate(self, conn: socket.socket) -> None:
        # RFC 1928 §3: VER NMETHODS METHODS
        ver, n = _recv_exact(conn, 2)
        if ver != 5:
            return
        methods = _recv_exact(conn, n)
        user = pw = None
        if self.offer_auth and 2 in methods:
            conn.sendall(b"\x05\x02")
            # RFC 1929 §2: VER ULEN UNAME PLEN PASSWD
            _ver, ulen = _recv_exact(conn, 2)
            user = _recv_exact(conn, ulen).decode("utf-8", "replace")
            (plen,) = _recv_exact(conn, 1)
            pw = _recv_exact(conn, plen).decode("utf-8", "replace")
            conn.sendall(b"\x01\x00")
        elif 0 in methods:
            conn.sendall(b"\x05\x00")
        else:
            conn.sendall(b"\x05\xff")
            return
        # RFC 1928 §4: VER CMD RSV ATYP DST.ADDR DST.PORT
        _ver, cmd, _rsv, atyp = _recv_exact(conn, 4)
        if atyp == ATYP_IPV4:
            host = socket.inet_ntop(socket.AF_INET, _recv_exact(conn, 4))
        elif atyp == ATYP_IPV6:
            host = socket.inet_ntop(socket.AF_INET6, _recv_exact(conn, 16))
        elif atyp == ATYP_NAME:
            (ln,) = _recv_exact(conn, 1)
            host = _recv_exact(conn, ln).decode("utf-8", "replace")
        else:
            return
        (port,) = struct.unpack("!H", _recv_exact(conn, 2))
        allowed = cmd == 1 and atyp == ATYP_NAME and host.lower().endswith(self.suffix) and self.mode == "relay"
        with self._lock:
            self.connects.append(Connect(atyp, host, port, user, pw, allowed))
        if not allowed:
            code = self.reply if self.mode == "fail" else REPLY_NOT_ALLOWED
            conn.sendall(bytes([5, code, 0, 1, 0, 0, 0, 0, 0, 0]))
            return
        try:
            upstream = socket.create_connection(("127.0.0.1", port), timeout=self.io_timeout)
        except OSError:
            conn.sendall(bytes([5, REPLY_HOST_UNREACHABLE, 0, 1, 0, 0, 0, 0, 0, 0]))
            return
        self._track(upstream)
        conn.sendall(bytes([5, REPLY_OK, 0, 1, 127, 0, 0, 1]) + struct.pack("!H", upstream.getsockname()[1]))
        pump = threading.Thread(target=self._pump, args=(upstream, conn), daemon=True)
        pump.start()
        try:
            self._pump(conn, upstream)
        finally:
            pump.join(timeout=self.io_timeout)
            upstream.close()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while True:
                data = src.recv(65536)
                if not data:
                    break
                dst.sendall(data)
        except OSError:
            pass
        try:
            dst.shutdown(socket.SHUT_WR)
        except OSError:
            pass
