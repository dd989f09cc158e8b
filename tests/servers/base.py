"""What every local test server shares: a quiet threaded HTTP server on 127.0.0.1, start/stop, `with`."""

from __future__ import annotations

import http.server
import ssl
import threading
from collections.abc import Callable
from typing import Self

Handler = http.server.BaseHTTPRequestHandler


def make_httpd(host: str, port: int, on_request: Callable[[Handler, str], None]) -> http.server.ThreadingHTTPServer:
    class _Handler(http.server.BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: object) -> None:
            pass

        def do_GET(self) -> None:
            on_request(self, "GET")

        def do_POST(self) -> None:
            on_request(self, "POST")

    class _Server(http.server.ThreadingHTTPServer):
        daemon_threads = True

        def handle_error(self, request: object, client_address: object) -> None:
            pass  # clients hang up on purpose in these tests (cancelled lookups)

    return _Server((host, port), _Handler)


class Serving:
    """Mixin: ``self._httpd`` is served in a daemon thread between start() and stop()."""

    _httpd: http.server.ThreadingHTTPServer
    _thread: threading.Thread | None = None
    _scheme: str = "http"

    @property
    def base_url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"{self._scheme}://{host}:{port}"

    def use_tls(self, context: ssl.SSLContext) -> Self:
        """Serve HTTPS with ``context`` (a server context, e.g. from tests.servers.tls); call before start()."""
        self._httpd.socket = context.wrap_socket(self._httpd.socket, server_side=True)
        self._scheme = "https"
        return self

    def start(self) -> Self:
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
