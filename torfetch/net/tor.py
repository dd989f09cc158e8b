"""Tor through stem, where a control port exists: bootstrap check, circuit audit, a private tor.

Isolation itself never needs the control port (it is SOCKS credentials, see
``isolation.py``), so torfetch works behind Whonix's control-port filter or
on Tails. When a control port *is* given (``--tor-control PORT|SOCKET``) we
use it to fail fast if tor has not bootstrapped, to find its SocksPort, and,
with ``--audit-circuits``, to watch STREAM events and fail if two isolation
keys ever shared a circuit. ``--tor launch`` starts a private tor for the run.

stem is blocking: every call goes through ``trio.to_thread.run_sync`` with
``abandon_on_cancel=True``; stem's own event thread only appends to a list.
"""

from __future__ import annotations

import os
import re
import shutil
import socket
import tempfile
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ..config import DEFAULT_TOR_PROXY, Options
from ..errors import IsolationError, TorUnavailable

BOOTSTRAP_TIMEOUT = 120.0
CONTROL_TIMEOUT = 20.0
PASSWORD_ENV = "TORFETCH_CONTROL_PASSWORD"

#: The SocksPort used when nothing says otherwise. Tests that must not depend on what listens on this machine's
#: 127.0.0.1:9050 replace it in their own process (``torfetch.net.tor.DEFAULT_SOCKS = ...``); deliberately no
#: option, config key or environment variable changes it, so nothing can silently move where traffic goes.
DEFAULT_SOCKS = DEFAULT_TOR_PROXY


def _stem():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        import stem
        import stem.control
        import stem.process
    return stem


def _connect(spec: str):
    """Open and authenticate a controller (blocking; run in a thread)."""
    stem = _stem()
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            if spec.isdigit():
                ctl = stem.control.Controller.from_port(address="127.0.0.1", port=int(spec))
            elif ":" in spec and spec.rsplit(":", 1)[1].isdigit():
                host, port = spec.rsplit(":", 1)
                ctl = stem.control.Controller.from_port(address=host, port=int(port))
            else:
                ctl = stem.control.Controller.from_socket_file(path=spec)
    except stem.SocketError as exc:
        raise TorUnavailable(f"cannot reach tor's control port {spec}: {exc}",
                             hint="is tor running with ControlPort? (Whonix/Tails: leave --tor-control out)") from exc
    try:
        ctl.authenticate(password=os.environ.get(PASSWORD_ENV))
    except Exception as exc:  # stem raises several unrelated classes here
        ctl.close()
        raise TorUnavailable(f"cannot authenticate to tor's control port {spec}: {exc}",
                             hint=f"cookie auth needs read access to the cookie; or set {PASSWORD_ENV}") from exc
    return ctl


def parse_bootstrap(status: str) -> tuple[int, str]:
    """``NOTICE BOOTSTRAP PROGRESS=45 TAG=... SUMMARY="Loading relay descriptors"`` → (45, summary)."""
    m = re.search(r"PROGRESS=(\d+)", status)
    s = re.search(r'SUMMARY="([^"]*)"', status)
    return (int(m.group(1)) if m else 0), (s.group(1) if s else status[:100])


def _socks_listener(ctl) -> str | None:
    try:
        listeners = ctl.get_listeners(_stem().control.Listener.SOCKS)
    except Exception:
        return None
    for addr, port in listeners:
        if addr in ("127.0.0.1", "::1", "localhost"):
            return f"socks5h://{'[' + addr + ']' if ':' in addr else addr}:{port}"
    return None


@dataclass
class CircuitAudit:
    """Records which circuit each of our streams used, from STREAM events."""

    controller: object
    streams: list[tuple[str, str, str, str]] = field(default_factory=list)  # (circ, user, password, target)

    def on_stream(self, event) -> None:  # stem's thread: append only
        if getattr(event, "status", None) != "SUCCEEDED" or not getattr(event, "circ_id", None):
            return
        kw = getattr(event, "keyword_args", {}) or {}
        user, pw = kw.get("SOCKS_USERNAME", ""), kw.get("SOCKS_PASSWORD", "")
        if not str(user).strip('"').startswith("torfetch-"):
            return  # another program's stream
        self.streams.append((event.circ_id, str(user).strip('"'), str(pw).strip('"'),
                             f"{event.target_address}:{event.target_port}"))

    def violations(self) -> list[str]:
        by_circ: dict[str, set[tuple[str, str]]] = {}
        for circ, user, pw, _ in self.streams:
            by_circ.setdefault(circ, set()).add((user, pw))
        out = []
        for circ, keys in sorted(by_circ.items()):
            if len(keys) > 1:
                names = sorted({u.removeprefix("torfetch-") for u, _ in keys})
                out.append(f"circuit {circ} carried {len(keys)} isolation keys ({', '.join(names)})")
        return out

    async def check(self) -> None:
        await trio.sleep(0.3)  # let stem's thread deliver the last events
        bad = self.violations()
        if bad:
            raise IsolationError("two lookups shared a Tor circuit: " + "; ".join(bad),
                                 hint="tor may have IsolateSOCKSAuth disabled on this SocksPort")

    def describe(self) -> list[str]:
        lines = []
        seen: set[str] = set()
        for circ, user, _, target in self.streams:
            if circ in seen:
                continue
            seen.add(circ)
            path = "?"
            try:
                c = self.controller.get_circuit(circ, None)
                if c is not None:
                    path = " → ".join(nick or fp[:8] for fp, nick in c.path)
            except Exception:
                pass
            lines.append(f"circuit {circ} ({user.removeprefix('torfetch-')} → {target}): {path}")
        return lines


@dataclass
class TorContext:
    proxy: str | None
    audit: CircuitAudit | None = None
    controller: object | None = None


def _launch(extra_config: str | None, report: Callable[[str], None]) -> tuple[object, object, str, str]:
    stem = _stem()
    data = tempfile.mkdtemp(prefix="torfetch-tor-")
    os.chmod(data, 0o700)
    ports = []
    for _ in range(2):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        ports.append(s)
    socks_port, control_port = (s.getsockname()[1] for s in ports)
    for s in ports:
        s.close()
    config: dict[str, object] = {
        "SocksPort": f"127.0.0.1:{socks_port} IsolateSOCKSAuth",
        "ControlPort": f"127.0.0.1:{control_port}",
        "CookieAuthentication": "1",
        "DataDirectory": data,
    }
    torrc_extra = Path(data) / "extra.torrc"
    if extra_config:
        torrc_extra.write_text(Path(extra_config).read_text())
        config["%include"] = str(torrc_extra)
    try:
        # stem's own timeout needs the main thread; the caller bounds us with trio.fail_after,
        # and take_ownership makes tor exit with this process if we are abandoned.
        proc = stem.process.launch_tor_with_config(config=config, timeout=None, take_ownership=True,
                                                   init_msg_handler=lambda line: None)
    except OSError as exc:
        shutil.rmtree(data, ignore_errors=True)
        raise TorUnavailable(f"could not start a private tor: {exc}", hint="is Debian's tor installed?") from exc
    return proc, data, f"socks5h://127.0.0.1:{socks_port}", str(control_port)


async def probe_socks(proxy: str, timeout: float) -> str:
    """Check that a SOCKS5 server answers at ``proxy`` (a greeting only: no CONNECT, no circuit is built).

    Without this, a missing tor would surface as a connection error from whichever lookup ran first;
    with it, the user gets the one line that says what to do.
    """
    parts = urllib.parse.urlsplit(proxy)
    host, port = parts.hostname or "127.0.0.1", parts.port or 9050
    shown = f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
    missing = TorUnavailable(f"no Tor SOCKS proxy at {shown}: start tor, pass --proxy, or --direct to fetch without Tor")
    try:
        with trio.fail_after(min(timeout, 10.0)):
            stream = await trio.open_tcp_stream(host, port)
            async with stream:
                await stream.send_all(b"\x05\x02\x00\x02")  # SOCKS5, methods: no auth, username/password
                reply = b""
                while len(reply) < 2:
                    chunk = await stream.receive_some(2 - len(reply))
                    if not chunk:
                        break
                    reply += chunk
    except (OSError, trio.TooSlowError, trio.BrokenResourceError) as exc:
        raise missing from exc
    if len(reply) != 2 or reply[0] != 5 or reply[1] not in (0, 2):
        raise TorUnavailable(f"{shown} does not answer as a SOCKS5 proxy: start tor, pass --proxy, or --direct "
                             "to fetch without Tor")
    return proxy


@asynccontextmanager
async def tor_context(opts: Options, report: Callable[[str], None]) -> AsyncIterator[TorContext]:
    """The proxy to use for this run, checked; with --audit-circuits, a live audit."""
    proxy = opts.proxy
    control = opts.tor_control
    proc = data = None
    ctl = None
    try:
        if opts.tor_launch:
            report("starting a private tor (this can take a while)…")
            try:
                with trio.fail_after(BOOTSTRAP_TIMEOUT):
                    proc, data, proxy, control = await trio.to_thread.run_sync(
                        _launch, opts.tor_config, report, abandon_on_cancel=True)
            except trio.TooSlowError as exc:
                raise TorUnavailable(f"the private tor did not bootstrap within {BOOTSTRAP_TIMEOUT:g} s") from exc
            report(f"private tor bootstrapped, SocksPort {proxy}")
        if control:
            with trio.fail_after(CONTROL_TIMEOUT):
                ctl = await trio.to_thread.run_sync(_connect, control, abandon_on_cancel=True)
                status = await trio.to_thread.run_sync(ctl.get_info, "status/bootstrap-phase", abandon_on_cancel=True)
            progress, summary = parse_bootstrap(status)
            if progress < 100:
                raise TorUnavailable(f"tor is not bootstrapped ({progress}%): {summary}",
                                     hint="wait for tor to finish bootstrapping, then retry")
            report(f"tor is bootstrapped (control port {control})")
            if proxy is None:
                proxy = await trio.to_thread.run_sync(_socks_listener, ctl, abandon_on_cancel=True)
                if proxy is None:
                    raise TorUnavailable("tor's control port reports no SocksPort on localhost: give --proxy")
        if proxy is None and not opts.direct:
            proxy = await probe_socks(DEFAULT_SOCKS, opts.timeouts.connect)
            report(f"using Tor's SocksPort {proxy}")
        if proxy is None and (opts.audit_circuits or opts.bypass_proxy_for_pkgs):
            raise TorUnavailable("no Tor proxy: give --proxy, --tor-control or --tor launch")
        audit = None
        if opts.audit_circuits:
            assert ctl is not None
            audit = CircuitAudit(ctl)
            stem = _stem()
            await trio.to_thread.run_sync(ctl.add_event_listener, audit.on_stream, stem.control.EventType.STREAM,
                                          abandon_on_cancel=True)
        yield TorContext(proxy=proxy, audit=audit, controller=ctl)
    except trio.TooSlowError as exc:
        raise TorUnavailable(f"tor's control port {control} did not answer within {CONTROL_TIMEOUT:g} s") from exc
    finally:
        if ctl is not None:
            with trio.move_on_after(2, shield=True):
                await trio.to_thread.run_sync(ctl.close, abandon_on_cancel=True)
        if proc is not None:
            try:
                proc.terminate()
                proc.wait(timeout=5)
            except Exception:
                proc.kill()
        if data is not None:
            shutil.rmtree(data, ignore_errors=True)
