"""Tor by default: without --proxy torfetch uses 127.0.0.1:9050, fails closed when nothing is there, --direct opts out.

What listens on this machine's 127.0.0.1:9050 is not up to the test. Where a test needs the real default
address it uses it when it is free and otherwise points torfetch's internal, test-only hook
(``torfetch.net.tor.DEFAULT_SOCKS``, set in the child process's own code, never by an option or the
environment) at an address the test controls; the assertions are the same either way.
"""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
import urllib.parse
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.servers.files import FileServer

# --config /dev/null: whatever this machine's /etc/torfetch.toml says is not part of these tests
TORFETCH = [sys.executable, "-m", "torfetch", "--config", "/dev/null"]
# the CLI, with the default SocksPort replaced in this process only (argv[1])
WITH_DEFAULT = [sys.executable, "-c",
                "import sys, torfetch.net.tor as t; t.DEFAULT_SOCKS = sys.argv[1]; "
                "from torfetch.cli import main; sys.exit(main(['--config', '/dev/null', *sys.argv[2:]]))"]
NO_TOR = "torfetch: tor: no Tor SOCKS proxy at {}: start tor, pass --proxy, or --direct to fetch without Tor"



@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs here are sync dbs, which pacman writes into its sync directory (only there is a .db metadata)."""
    d = tmp_path_factory.mktemp("t") / "sync"
    d.mkdir()
    return d

def lines(text: str) -> list[str]:
    return [ln for ln in text.splitlines() if ln.strip()]


class CountingListener:
    """A TCP port that counts connections and answers nothing (the mirror that must never be reached)."""

    def __init__(self) -> None:
        self.sock = socket.create_server(("127.0.0.1", 0))
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self.connections = 0
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            self.connections += 1
            c.close()

    def close(self) -> None:
        self._stop.set()
        self._t.join(timeout=5)
        self.sock.close()


@pytest.fixture
def counting() -> Iterator[CountingListener]:
    c = CountingListener()
    yield c
    c.close()


def closed_port() -> int:
    s = socket.create_server(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    return port


def default_is_free() -> bool:
    """True if nothing accepts connections on 127.0.0.1:9050 (so the real default can be tested as such)."""
    try:
        with socket.create_connection(("127.0.0.1", 9050), timeout=1):
            return False
    except OSError:
        return True


def run_without_tor(args: list[str]) -> tuple[subprocess.CompletedProcess[str], str]:
    """torfetch with no Tor at its default address: the real 127.0.0.1:9050 when free, else the hook."""
    if default_is_free():
        return subprocess.run([*TORFETCH, *args], capture_output=True, text=True, timeout=60), "127.0.0.1:9050"
    port = closed_port()
    return (subprocess.run([*WITH_DEFAULT, f"socks5h://127.0.0.1:{port}", *args], capture_output=True, text=True,
                           timeout=60), f"127.0.0.1:{port}")


def test_no_tor_fails_closed_with_one_line_and_never_goes_direct(tmp_path: Path, counting: CountingListener) -> None:
    out = tmp_path / "core.db.part"
    out.write_bytes(b"stale")
    r, addr = run_without_tor(["-O", str(out), f"http://127.0.0.1:{counting.port}/core.db"])
    assert r.returncode == 3, r.stderr
    assert lines(r.stderr) == [NO_TOR.format(addr)]
    assert counting.connections == 0  # not even a try at the mirror
    assert not out.exists()


def test_package_without_tor_fails_closed_too(tmp_path: Path, counting: CountingListener) -> None:
    out = tmp_path / "a-1-1-any.pkg.tar.zst.part"
    r, addr = run_without_tor([
        "-O", str(out), "--pubkey", "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
        "--transparency-url", f"http://127.0.0.1:{counting.port}/sigs", "--rebuilder", f"http://127.0.0.1:{counting.port}/",
        "--log-url", f"http://127.0.0.1:{counting.port}", "--log-key", _pem(tmp_path),
        f"http://127.0.0.1:{counting.port}/a-1-1-any.pkg.tar.zst"])
    assert r.returncode == 3, r.stderr
    assert lines(r.stderr) == [NO_TOR.format(addr)]
    assert counting.connections == 0
    assert list(tmp_path.iterdir()) == [tmp_path / "log.pem"]


def test_bypass_without_proxy_uses_the_default_tor_for_lookups(tmp_path: Path, counting: CountingListener) -> None:
    # pacman-bintrans's flag keeps its meaning: packages direct, lookups through Tor, here the default one
    r, addr = run_without_tor(["-O", str(tmp_path / "core.db.part"), "--bypass-proxy-for-pkgs",
                               f"http://127.0.0.1:{counting.port}/core.db"])
    assert r.returncode == 3 and lines(r.stderr) == [NO_TOR.format(addr)]
    assert counting.connections == 0


def _pem(tmp_path: Path) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    p = tmp_path / "log.pem"
    p.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return str(p)


# --- a recording SOCKS5 proxy standing in for tor on the default address ------------------------------------------


@dataclass
class RecordingSocks:
    """RFC 1928 CONNECT (no auth or RFC 1929 username/password, as Tor's IsolateSOCKSAuth sees it), forwarding to
    127.0.0.1 only; records (username, host, port) of every CONNECT."""

    host: str = "127.0.0.1"
    port: int = 0
    connects: list[tuple[str, str, int]] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.sock.bind((self.host, self.port))
        self.sock.listen(16)
        self.sock.settimeout(0.2)
        self.port = self.sock.getsockname()[1]
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._serve, daemon=True)
        self._t.start()

    @property
    def url(self) -> str:
        return f"socks5h://{self.host}:{self.port}"

    def _serve(self) -> None:
        while not self._stop.is_set():
            try:
                c, _ = self.sock.accept()
            except OSError:
                continue
            threading.Thread(target=self._handle, args=(c,), daemon=True).start()

    @staticmethod
    def _read(c: socket.socket, n: int) -> bytes:
        buf = b""
        while len(buf) < n:
            chunk = c.recv(n - len(buf))
            if not chunk:
                raise ConnectionError("client hung up")
            buf += chunk
        return buf

    def _handle(self, c: socket.socket) -> None:
        c.settimeout(30)
        try:
            ver, n = self._read(c, 2)
            methods = self._read(c, n)
            user = ""
            if 2 in methods:
                c.sendall(b"\x05\x02")
                _, ulen = self._read(c, 2)
                user = self._read(c, ulen).decode()
                (plen,) = self._read(c, 1)
                self._read(c, plen)
                c.sendall(b"\x01\x00")
            else:
                c.sendall(b"\x05\x00")
            _, cmd, _, atyp = self._read(c, 4)
            if atyp == 3:
                (ln,) = self._read(c, 1)
                host = self._read(c, ln).decode()
            elif atyp == 1:
                host = socket.inet_ntoa(self._read(c, 4))
            else:
                host = socket.inet_ntop(socket.AF_INET6, self._read(c, 16))
            port = int.from_bytes(self._read(c, 2), "big")
            self.connects.append((user, host, port))
            up = socket.create_connection(("127.0.0.1", port), timeout=30)
            c.sendall(b"\x05\x00\x00\x01\x00\x00\x00\x00\x00\x00")
        except (OSError, ValueError, ConnectionError):
            c.close()
            return

        def pump(a: socket.socket, b: socket.socket) -> None:
            try:
                while data := a.recv(65536):
                    b.sendall(data)
            except OSError:
                pass
            finally:
                for s in (a, b):
                    try:
                        s.shutdown(socket.SHUT_RDWR)
                    except OSError:
                        pass

        t = threading.Thread(target=pump, args=(up, c), daemon=True)
        t.start()
        pump(c, up)
        t.join(timeout=30)
        c.close()
        up.close()

    def close(self) -> None:
        self._stop.set()
        self._t.join(timeout=5)
        self.sock.close()


@pytest.fixture
def mirror(tmp_path: Path) -> Iterator[FileServer]:
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "core.db").write_bytes(b"db bytes" * 1000)
    with FileServer(tmp_path / "www") as s:
        yield s


def test_default_tor_is_used_when_it_listens(tmp_path: Path, mirror: FileServer) -> None:
    out = tmp_path / "core.db.part"
    url = f"{mirror.url}/core.db"
    try:
        proxy = RecordingSocks(port=9050)  # the real default address, when this machine leaves it free
        cmd = [*TORFETCH, "-O", str(out), url]
    except OSError:
        proxy = RecordingSocks()
        cmd = [*WITH_DEFAULT, proxy.url, "-O", str(out), url]
    try:
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    finally:
        proxy.close()
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"db bytes" * 1000
    # the download went through the proxy, with an isolation username, and the name was resolved there
    assert [(u.startswith("torfetch-"), h, p) for u, h, p in proxy.connects] == [(True, "127.0.0.1", urllib.parse.urlsplit(mirror.url).port)]
    assert len(mirror.requests) == 1


def test_direct_fetches_without_tor(tmp_path: Path, mirror: FileServer) -> None:
    out = tmp_path / "core.db.part"
    port = closed_port()  # even if a tor listened at the default address, --direct must not use it
    r = subprocess.run([*WITH_DEFAULT, f"socks5h://127.0.0.1:{port}", "--direct", "-O", str(out), f"{mirror.url}/core.db"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"db bytes" * 1000
    assert mirror.requests == [("GET", "/core.db")]


@pytest.mark.parametrize("extra", [["--proxy", "socks5h://127.0.0.1:9050"], ["--tor", "launch"],
                                   ["--tor-control", "9051"], ["--bypass-proxy-for-pkgs"]])
def test_direct_with_a_tor_option_is_a_usage_error(tmp_path: Path, counting: CountingListener, extra: list[str]) -> None:
    out = tmp_path / "core.db.part"
    out.write_bytes(b"untouched")
    r = subprocess.run([*TORFETCH, "--direct", *extra, "-O", str(out), f"http://127.0.0.1:{counting.port}/core.db"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 2, r.stderr
    (line,) = lines(r.stderr)
    assert line.startswith("torfetch: usage: --direct") and extra[0] in line
    assert out.read_bytes() == b"untouched"  # a usage error touches nothing
    assert counting.connections == 0


def test_something_that_is_not_socks_on_the_default_address_is_refused(tmp_path: Path, counting: CountingListener) -> None:
    # an HTTP server (or anything else) on the SocksPort is no Tor: refused before any lookup
    srv = socket.create_server(("127.0.0.1", 0))
    port = srv.getsockname()[1]

    def answer() -> None:
        srv.settimeout(10)
        try:
            c, _ = srv.accept()
            c.recv(16)
            c.sendall(b"HTTP/1.0 400 Bad Request\r\n\r\n")
            c.close()
        except OSError:
            pass

    t = threading.Thread(target=answer, daemon=True)
    t.start()
    try:
        r = subprocess.run([*WITH_DEFAULT, f"socks5h://127.0.0.1:{port}", "-O", str(tmp_path / "core.db.part"),
                            f"http://127.0.0.1:{counting.port}/core.db"], capture_output=True, text=True, timeout=60)
    finally:
        t.join(timeout=10)
        srv.close()
    assert r.returncode == 3
    assert lines(r.stderr) == [f"torfetch: tor: 127.0.0.1:{port} does not answer as a SOCKS5 proxy: start tor, pass "
                               "--proxy, or --direct to fetch without Tor"]
    assert counting.connections == 0
