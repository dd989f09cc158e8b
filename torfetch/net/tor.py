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

import functools
import os
import re
import shutil
import subprocess
import tempfile
import urllib.parse
import warnings
from collections.abc import AsyncIterator, Callable, Mapping
from contextlib import AsyncExitStack, asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path

import trio

from ..config import DEFAULT_TOR_PROXY, Options
from ..errors import IsolationError, TorUnavailable
from ..localfile import read_local_text

BOOTSTRAP_TIMEOUT = 120.0
CONTROL_TIMEOUT = 20.0
_AUDIT_POLLS, _AUDIT_POLL_S = 50, 0.1  # wait at most 5 s for tor's last STREAM events
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
    control: str = "?"  # the --tor-control spec, for messages
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

    def shortfall(self, opened: Mapping[tuple[str, str], tuple[str, int]]) -> list[tuple[str, int, int]]:
        """Keys for which tor saw fewer streams than torfetch opened: (label, seen, opened)."""
        seen: dict[tuple[str, str], int] = {}
        for _, user, pw, _ in list(self.streams):
            seen[(user, pw)] = seen.get((user, pw), 0) + 1
        return sorted((label, seen.get(cred, 0), n) for cred, (label, n) in opened.items() if seen.get(cred, 0) < n)

    async def check(self, opened: Mapping[tuple[str, str], tuple[str, int]]) -> None:
        """Fail unless tor saw every stream torfetch opened, and no two keys shared a circuit.

        Args:
          opened: what ``Network.opened_streams()`` counted: SOCKS credentials
            → (key label, streams). Silence proves nothing: if ``--proxy`` is
            another tor, or not tor at all, this tor sees none of our streams
            and its audit would find no violation.
        """
        # stem's thread delivers events a little after tor answered the SOCKS request: wait, bounded.
        for _ in range(_AUDIT_POLLS):
            if not self.shortfall(opened):
                break
            await trio.sleep(_AUDIT_POLL_S)
        await trio.sleep(_AUDIT_POLL_S)  # and for late events of other keys
        missing = self.shortfall(opened)
        if missing:
            total = sum(n for _, n in opened.values())
            unseen = sum(n - got for _, got, n in missing)
            raise IsolationError(
                f"circuit audit proves nothing: tor's control port {self.control} saw {total - unseen} of the "
                f"{total} streams torfetch opened ({'; '.join(f'{label}: {got} of {n}' for label, got, n in missing)})",
                hint="--proxy must be the SocksPort of the tor whose control port --tor-control names")
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


LAUNCH_LOG = "tor.log"
LAUNCH_LOG_MAX_BYTES = 1024 * 1024
LAUNCH_POLL = 0.1
STOP_TIMEOUT = 5.0


def _launch_torrc(data: Path, extra: str) -> str:
    """The user's lines first, ours last (for single-valued options the last line wins)."""
    return (extra + ("\n" if extra and not extra.endswith("\n") else "") + "\n".join([
        "SocksPort 127.0.0.1:auto IsolateSOCKSAuth",
        "ControlPort 127.0.0.1:auto",
        f"ControlPortWriteToFile {data / 'control-port'}",
        "CookieAuthentication 1",
        f"DataDirectory {data}",
        "Log notice stdout",
        # if torfetch is SIGKILLed, tor notices its owner is gone and exits by itself
        f"__OwningControllerProcess {os.getpid()}",
    ]) + "\n")


def _read_launch_state(data: Path) -> tuple[str, str | None]:
    """(tor's log so far, its control port once written); small files in our own directory."""
    try:
        with open(data / LAUNCH_LOG, "rb") as f:
            log = f.read(LAUNCH_LOG_MAX_BYTES).decode("utf-8", "replace")
    except OSError:
        log = ""
    try:
        line = (data / "control-port").read_text("ascii", "replace").strip()
    except OSError:
        line = ""
    return log, (line.removeprefix("PORT=") if line.startswith("PORT=") else None)


def _last_complaint(log: str) -> str:
    """The line of tor's log that says why it stopped (its [err] often only says "see warnings above")."""
    lines = [ln for ln in log.splitlines()
             if ("[err]" in ln or "[warn]" in ln) and "running Tor as root" not in ln and "see warnings" not in ln]
    errs = [ln for ln in lines if "[err]" in ln]
    pick = errs[-1] if errs else (lines[-1] if lines else "no error in its log")
    return pick.split("] ", 1)[-1].strip()[:300]


async def _stop_tor(proc: trio.Process) -> None:
    """SIGTERM, then SIGKILL after STOP_TIMEOUT; always waits, so no zombie and no tor is left."""
    with trio.CancelScope(shield=True):
        if proc.returncode is None:
            proc.terminate()
            with trio.move_on_after(STOP_TIMEOUT):
                await proc.wait()
        if proc.returncode is None:
            proc.kill()
            with trio.move_on_after(STOP_TIMEOUT):
                await proc.wait()


@asynccontextmanager
async def launch_private_tor(extra_config: Path | None) -> AsyncIterator[str]:
    """``--tor launch``: start a private tor, wait for it to bootstrap, yield its control port.

    The tor runs in its own session (a Ctrl-C to our process group is ours to
    handle) with a fresh 0700 DataDirectory. Whatever ends the block (success,
    an error, a timeout, a cancellation by a signal, even during bootstrap),
    tor is stopped and waited for, and only then is its DataDirectory removed.
    Everything runs under trio (no abandoned thread that could still be
    starting a tor after we gave up); ``__OwningControllerProcess`` covers a
    SIGKILL of torfetch itself.
    """
    # in a thread we may abandon: a FIFO given as --tor-config must not freeze the event loop (and signals)
    extra = await trio.to_thread.run_sync(
        functools.partial(read_local_text, extra_config, what="--tor-config"), abandon_on_cancel=True,
    ) if extra_config else ""
    data = Path(tempfile.mkdtemp(prefix="torfetch-tor-"))  # 0700, as tor requires
    proc: trio.Process | None = None
    try:
        torrc = data / "torrc"
        await trio.to_thread.run_sync(torrc.write_text, _launch_torrc(data, extra))
        log = await trio.to_thread.run_sync(open, data / LAUNCH_LOG, "wb")
        try:
            proc = await trio.lowlevel.open_process(
                ["tor", "-f", str(torrc), "--defaults-torrc", os.devnull], stdin=subprocess.DEVNULL,
                stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        except OSError as exc:
            raise TorUnavailable(f"could not start a private tor: {exc}", hint="is Debian's tor installed?") from exc
        finally:
            log.close()
        control = None
        with trio.move_on_after(BOOTSTRAP_TIMEOUT):
            for _ in range(int(BOOTSTRAP_TIMEOUT / LAUNCH_POLL) + 1):
                text, control = await trio.to_thread.run_sync(_read_launch_state, data)
                if control and "Bootstrapped 100%" in text:
                    break
                if proc.poll() is not None:
                    raise TorUnavailable(f"the private tor exited (status {proc.returncode}): {_last_complaint(text)}")
                control = None
                await trio.sleep(LAUNCH_POLL)
        if control is None:
            raise TorUnavailable(f"the private tor did not bootstrap within {BOOTSTRAP_TIMEOUT:g} s",
                                 hint="a network that blocks Tor needs bridges: give them with --tor-config")
        yield control
    finally:
        if proc is not None:
            await _stop_tor(proc)
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(shutil.rmtree, data, True)


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
    ctl = None
    launched = AsyncExitStack()
    try:
        if opts.tor_launch:
            report("starting a private tor (this can take a while)…")
            control = await launched.enter_async_context(launch_private_tor(opts.tor_config))
            report(f"private tor bootstrapped (control port {control})")
        if control:
            # Only the control-port calls are under this bound: a TooSlowError from the
            # lookups inside the ``yield`` below is theirs, not the control port's.
            try:
                with trio.fail_after(CONTROL_TIMEOUT):
                    ctl = await trio.to_thread.run_sync(_connect, control, abandon_on_cancel=True)
                    status = await trio.to_thread.run_sync(ctl.get_info, "status/bootstrap-phase",
                                                           abandon_on_cancel=True)
            except trio.TooSlowError as exc:
                raise TorUnavailable(f"tor's control port {control} did not answer within {CONTROL_TIMEOUT:g} s") \
                    from exc
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
            audit = CircuitAudit(ctl, control=str(control))
            stem = _stem()
            await trio.to_thread.run_sync(ctl.add_event_listener, audit.on_stream, stem.control.EventType.STREAM,
                                          abandon_on_cancel=True)
        yield TorContext(proxy=proxy, audit=audit, controller=ctl)
    finally:
        if ctl is not None:
            with trio.move_on_after(2, shield=True):
                await trio.to_thread.run_sync(ctl.close, abandon_on_cancel=True)
        await launched.aclose()  # stops --tor launch's tor, removes its DataDirectory
