"""A static file server on 127.0.0.1 that can misbehave on purpose.

Used by the end-to-end tests and the demo as the package mirror and the
signature server. Runs in a thread of the test process (tests only).
"""

from __future__ import annotations

import os
import threading
import time
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from tests.servers.base import Handler, Serving, make_httpd


@dataclass
class Behaviour:
    # path suffix → action: "truncate" (close mid-body), "slow", "trickle", "404", "500"
    rules: dict[str, str] = field(default_factory=dict)
    slow_seconds: float = 5.0
    # exact path → (status, Location): answer with a redirect instead of the file
    redirects: dict[str, tuple[int, str]] = field(default_factory=dict)
    # "trickle": the whole Content-Length promised, then trickle_bytes every trickle_interval seconds
    trickle_bytes: int = 1024
    trickle_interval: float = 0.2

    def action_for(self, path: str) -> str | None:
        for suffix, action in self.rules.items():
            if path.endswith(suffix):
                return action
        return None


class FileServer(Serving):
    def __init__(self, root: Path, host: str = "127.0.0.1", port: int = 0) -> None:
        self.root = Path(root)
        self.behaviour = Behaviour()
        self.requests: list[tuple[str, str]] = []  # (method, path)
        self._lock = threading.Lock()
        self._httpd = make_httpd(host, port, self._handle)

    @property
    def url(self) -> str:
        return self.base_url

    def _handle(self, h: Handler, method: str) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        with self._lock:
            self.requests.append((method, path))
        if path in self.behaviour.redirects:
            code, location = self.behaviour.redirects[path]
            h.rfile.read(int(h.headers.get("Content-Length") or 0))  # a POST's body, so keep-alive stays in step
            h.send_response(code)
            h.send_header("Location", location)
            h.send_header("Content-Length", "0")
            h.end_headers()
            return
        action = self.behaviour.action_for(path)
        target = (self.root / path.lstrip("/")).resolve()
        if method != "GET" or not str(target).startswith(str(self.root.resolve())) or not target.is_file() \
                or action == "404":
            return self._send(h, 404, b"not found\n")
        if action == "500":
            return self._send(h, 500, b"boom\n")
        if action is None:
            return self._send_file(h, target)
        data = target.read_bytes()
        if action == "slow":
            time.sleep(self.behaviour.slow_seconds)
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.send_header("Content-Type", "application/octet-stream")
        h.end_headers()
        try:
            if action == "trickle":
                # bounded by the body's length; a client that hangs up ends it at once
                for i in range(0, len(data), self.behaviour.trickle_bytes):
                    h.wfile.write(data[i:i + self.behaviour.trickle_bytes])
                    h.wfile.flush()
                    time.sleep(self.behaviour.trickle_interval)
                return
            if action == "truncate":
                # Promise the whole body, send half, hang up.
                h.wfile.write(data[: len(data) // 2])
                h.wfile.flush()
                h.close_connection = True
                return
            h.wfile.write(data)
        except OSError:
            pass

    @staticmethod
    def _send_file(h: Handler, target: Path) -> None:
        # streamed with sendfile(2): a GiB-sized package is neither read into memory nor copied through Python
        with open(target, "rb") as f:
            h.send_response(200)
            h.send_header("Content-Length", str(os.fstat(f.fileno()).st_size))
            h.send_header("Content-Type", "application/octet-stream")
            h.end_headers()
            h.wfile.flush()
            try:
                h.connection.sendfile(f)
            except OSError:
                h.close_connection = True

    @staticmethod
    def _send(h: Handler, code: int, body: bytes) -> None:
        h.send_response(code)
        h.send_header("Content-Length", str(len(body)))
        h.end_headers()
        try:
            h.wfile.write(body)
        except OSError:
            pass


class HoldingMirror(FileServer):
    """Serves ``held`` in two halves and sends the second only once ``gate`` is set (``hold_seconds`` at most):
    a client that must do something else before the download ends shows it by the order of what is recorded.

    ``record`` (e.g. ``list.append``) hears "package start" when the held file's answer begins and "package end"
    just before its second half leaves (the client cannot know the whole file, or its hash, earlier);
    ``half_sent`` is set once the first half is out. ``on_request(method, path)`` hears every request first.
    """

    def __init__(self, root: Path, held: str, gate: threading.Event, *, hold_seconds: float,
                 record=None, on_request=None) -> None:
        self.held, self.gate, self.hold_seconds = held, gate, hold_seconds
        self.record = record if record is not None else (lambda what: None)
        self.on_request = on_request
        self.half_sent = threading.Event()
        super().__init__(root)

    def _handle(self, h: Handler, method: str) -> None:
        path = urllib.parse.unquote(urllib.parse.urlsplit(h.path).path)
        if self.on_request is not None:
            self.on_request(method, path)
        if method != "GET" or not path.endswith("/" + self.held):
            return super()._handle(h, method)
        data = (self.root / path.lstrip("/")).read_bytes()
        self.record("package start")
        h.send_response(200)
        h.send_header("Content-Length", str(len(data)))
        h.end_headers()
        try:
            h.wfile.write(data[: len(data) // 2])
            h.wfile.flush()
            self.half_sent.set()
            self.gate.wait(self.hold_seconds)
            self.record("package end")
            h.wfile.write(data[len(data) // 2:])
            h.wfile.flush()
        except OSError:
            pass
