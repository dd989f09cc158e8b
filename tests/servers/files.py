"""A static file server on 127.0.0.1 that can misbehave on purpose.

Used by the end-to-end tests and the demo as the package mirror and the
signature server. Runs in a thread of the test process (tests only).
"""

from __future__ import annotations

import http.server
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Behaviour:
    # path suffix → action: "truncate" (close mid-body), "slow", "404", "500"
    rules: dict[str, str] = field(default_factory=dict)
    slow_seconds: float = 5.0

    def action_for(self, path: str) -> str | None:
        for suffix, action in self.rules.items():
            if path.endswith(suffix):
                return action
        return None


class FileServer:
    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root)
        self.behaviour = Behaviour()
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._lock = threading.Lock()
        server = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def log_message(self, *args: object) -> None:
                pass

            def do_GET(self) -> None:
                path = urllib.parse.unquote(urllib.parse.urlsplit(self.path).path)
                with server._lock:
                    server.requests.append(("GET", path))
                action = server.behaviour.action_for(path)
                target = (server.root / path.lstrip("/")).resolve()
                if not str(target).startswith(str(server.root.resolve())) or not target.is_file() or action == "404":
                    self._send(404, b"not found\n")
                    return
                if action == "500":
                    self._send(500, b"boom\n")
                    return
                data = target.read_bytes()
                if action == "slow":
                    time.sleep(server.behaviour.slow_seconds)
                self.send_response(200)
                self.send_header("Content-Length", str(len(data)))
                self.send_header("Content-Type", "application/octet-stream")
                self.end_headers()
                if action == "truncate":
                    # Promise the whole body, send half, hang up.
                    self.wfile.write(data[: len(data) // 2])
                    self.wfile.flush()
                    self.close_connection = True
                    return
                self.wfile.write(data)

            def _send(self, code: int, body: bytes) -> None:
                self.send_response(code)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

        class Server(http.server.ThreadingHTTPServer):
            def handle_error(self, request: object, client_address: object) -> None:
                pass  # clients hang up on purpose in these tests (cancelled lookups)

        self._httpd = Server((host, port), Handler)
        self._httpd.daemon_threads = True
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        host, port = self._httpd.server_address[:2]
        return f"http://{host}:{port}"

    def start(self) -> "FileServer":
        self._thread = threading.Thread(target=self._httpd.serve_forever, kwargs={"poll_interval": 0.1}, daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._httpd.shutdown()
        self._httpd.server_close()
        if self._thread:
            self._thread.join(timeout=5)

    def __enter__(self) -> "FileServer":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()
