"""One port, several services by base path: a tiny reverse proxy on 127.0.0.1 (GET only, tests only).

Two rebuilders behind one origin (``http://rebuilder.test:PORT/a/`` and
``.../b/``) are two services to torfetch and must ride two circuits; this
front lets the tests put real test servers there.
"""

from __future__ import annotations

import urllib.error
import urllib.request

from tests.servers.base import Handler, Serving, make_httpd


class PathFront(Serving):
    def __init__(self, routes: dict[str, str]) -> None:
        """``routes``: base path (``/a/``) → backend base URL (``http://127.0.0.1:PORT/``)."""
        self.routes = {("/" + k.strip("/") + "/"): v if v.endswith("/") else v + "/" for k, v in routes.items()}
        self.requests: list[str] = []
        self._httpd = make_httpd("127.0.0.1", 0, self._handle)

    def _handle(self, h: Handler, method: str) -> None:
        self.requests.append(h.path)
        for prefix, backend in self.routes.items():
            if h.path.startswith(prefix) and method == "GET":
                url = backend + h.path[len(prefix):]
                try:
                    with urllib.request.urlopen(url, timeout=30) as r:  # noqa: S310 (127.0.0.1 backend)
                        status, body, ctype = r.status, r.read(), r.headers.get("Content-Type", "")
                except urllib.error.HTTPError as e:
                    status, body, ctype = e.code, e.read(), e.headers.get("Content-Type", "")
                return self._send(h, status, body, ctype)
        return self._send(h, 404, b"no such service\n", "text/plain")

    @staticmethod
    def _send(h: Handler, status: int, body: bytes, ctype: str) -> None:
        h.send_response(status)
        h.send_header("Content-Length", str(len(body)))
        if ctype:
            h.send_header("Content-Type", ctype)
        h.end_headers()
        try:
            h.wfile.write(body)
        except OSError:
            pass
