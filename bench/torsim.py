"""A loopback SOCKS5 proxy that behaves like a Tor circuit, for benchmarks (never for tests: it sleeps).

Each CONNECT is answered after ``connect_delay`` (a circuit's extend and the exit's TCP connect); each request
burst (client bytes that follow a quiet client, or follow the server's answer) is held for ``request_delay``
before it reaches the server (the round trip to the exit); the server's bytes reach the client at most at
``rate`` bytes per second per connection (a circuit's bandwidth). Any host name is relayed to 127.0.0.1 at the
requested port, so local servers can be named ``*.test`` as behind tor's MapAddress. Username/password
authentication is accepted and ignored (tor's IsolateSOCKSAuth is what a real proxy would do with it).

    with TorSim(connect_delay=0.3, request_delay=0.3, rate=2_000_000) as sim:
        ... sim.url is socks5h://127.0.0.1:PORT ...
"""

from __future__ import annotations

import socket
import struct
import threading
import time
from typing import Self


def _recv_exact(sock: socket.socket, n: int) -> bytes:
    buf = b""
    while len(buf) < n:
        part = sock.recv(n - len(buf))
        if not part:
            raise ConnectionError("closed")
        buf += part
    return buf


class TorSim:
    def __init__(self, *, connect_delay: float = 0.3, request_delay: float = 0.3, rate: float = 2_000_000,
                 idle_gap: float = 0.05) -> None:
        self.connect_delay, self.request_delay, self.rate, self.idle_gap = connect_delay, request_delay, rate, idle_gap
        self.connects = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._listener = socket.create_server(("127.0.0.1", 0))
        self._listener.settimeout(0.1)
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        return f"socks5h://127.0.0.1:{self._listener.getsockname()[1]}"

    def __enter__(self) -> Self:
        self._thread = threading.Thread(target=self._serve, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        if self._thread:
            self._thread.join(timeout=5)
        self._listener.close()

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                conn, _ = self._listener.accept()
            except (TimeoutError, socket.timeout):
                continue
            except OSError:
                return
            threading.Thread(target=self._handle, args=(conn,), daemon=True).start()

    def _handle(self, conn: socket.socket) -> None:
        conn.settimeout(120)
        try:
            ver, n = _recv_exact(conn, 2)
            methods = _recv_exact(conn, n)
            if 2 in methods:
                conn.sendall(b"\x05\x02")
                _, ulen = _recv_exact(conn, 2)
                _recv_exact(conn, ulen)
                (plen,) = _recv_exact(conn, 1)
                _recv_exact(conn, plen)
                conn.sendall(b"\x01\x00")
            else:
                conn.sendall(b"\x05\x00")
            _, cmd, _, atyp = _recv_exact(conn, 4)
            if atyp == 1:
                _recv_exact(conn, 4)
            elif atyp == 4:
                _recv_exact(conn, 16)
            else:
                (ln,) = _recv_exact(conn, 1)
                _recv_exact(conn, ln)
            (port,) = struct.unpack("!H", _recv_exact(conn, 2))
            with self._lock:
                self.connects += 1
            time.sleep(self.connect_delay)
            up = socket.create_connection(("127.0.0.1", port), timeout=120)
            conn.sendall(bytes([5, 0, 0, 1, 127, 0, 0, 1]) + struct.pack("!H", up.getsockname()[1]))
        except (OSError, ConnectionError, ValueError):
            conn.close()
            return
        state = {"answered": True, "last_client": 0.0}
        down = threading.Thread(target=self._down, args=(up, conn, state), daemon=True)
        down.start()
        try:
            while True:
                data = conn.recv(65536)
                if not data:
                    break
                now = time.monotonic()
                if state["answered"] or now - state["last_client"] > self.idle_gap:
                    time.sleep(self.request_delay)  # a new request burst: one round trip to the exit
                    state["answered"] = False
                state["last_client"] = time.monotonic()
                up.sendall(data)
        except OSError:
            pass
        finally:
            try:
                up.shutdown(socket.SHUT_WR)
            except OSError:
                pass
            down.join(timeout=120)
            up.close()
            conn.close()

    def _down(self, up: socket.socket, conn: socket.socket, state: dict) -> None:
        start = time.monotonic()
        sent = 0
        try:
            while True:
                data = up.recv(16384)
                if not data:
                    break
                state["answered"] = True
                conn.sendall(data)
                sent += len(data)
                ahead = sent / self.rate - (time.monotonic() - start)
                if ahead > 0:
                    time.sleep(ahead)
                else:
                    start, sent = time.monotonic(), 0  # idle time is not credit for a later burst
        except OSError:
            pass
        try:
            conn.shutdown(socket.SHUT_WR)
        except OSError:
            pass
