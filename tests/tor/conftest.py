"""One private Tor network per test session (Debian's tor, 127.0.0.1 only)."""

from __future__ import annotations

import shutil
import time
import warnings
from typing import Callable, Iterator

import pytest

from tests.tornet import TorNetwork

needs_tor = pytest.mark.skipif(shutil.which("tor") is None or shutil.which("tor-gencert") is None,
                               reason="needs Debian's tor")


@pytest.fixture(scope="session")
def tornet() -> Iterator[TorNetwork]:
    if shutil.which("tor") is None:
        pytest.skip("needs Debian's tor")
    net = TorNetwork().start(timeout=120)
    try:
        yield net
    finally:
        net.stop()


class StreamRecorder:
    """An independent observer: our own control-port connection, STREAM events only."""

    def __init__(self, control_port: int) -> None:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            from stem.control import Controller, EventType

            self.ctl = Controller.from_port(port=control_port)
        self.ctl.authenticate()
        self.events: list[tuple[str, str, str, str]] = []  # circ, user, password, target
        self.ctl.add_event_listener(self._on, EventType.STREAM)

    def _on(self, ev) -> None:
        if ev.status == "SUCCEEDED" and ev.circ_id:
            kw = ev.keyword_args or {}
            self.events.append((ev.circ_id, kw.get("SOCKS_USERNAME", "").strip('"'),
                                kw.get("SOCKS_PASSWORD", "").strip('"'), f"{ev.target_address}:{ev.target_port}"))

    def wait_for(self, done: Callable[[list[tuple[str, str, str, str]]], bool], seconds: float = 30.0) -> None:
        """Wait (bounded) until ``done(events)``: tor reports a stream's SUCCEEDED on its own schedule,
        after the client has its answer; on a loaded machine that can take seconds."""
        deadline = time.monotonic() + seconds
        while not done(list(self.events)) and time.monotonic() < deadline:
            time.sleep(0.05)

    def circuits_by_key(self) -> dict[tuple[str, str], set[str]]:
        out: dict[tuple[str, str], set[str]] = {}
        for circ, user, pw, _ in self.events:
            out.setdefault((user, pw), set()).add(circ)
        return out

    def close(self) -> None:
        self.ctl.close()


@pytest.fixture
def streams(tornet: TorNetwork) -> Iterator[StreamRecorder]:
    rec = StreamRecorder(tornet.control_port)
    try:
        yield rec
    finally:
        rec.close()
