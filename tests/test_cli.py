"""The command line as pacman calls it: exit codes, one-line errors, nothing left behind."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from tests.servers.files import FileServer

TORFETCH = [sys.executable, "-m", "torfetch"]


def run(*args: str, timeout: float = 60, **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run([*TORFETCH, *args], capture_output=True, text=True, timeout=timeout, **kw)


def one_line(stderr: str) -> str:
    lines = [ln for ln in stderr.splitlines() if ln.strip()]
    assert len(lines) == 1, stderr
    assert "Traceback" not in stderr
    return lines[0]


def sync_part(tmp_path: Path, name: str) -> Path:
    """Where pacman writes a sync db: <DBPath>/sync/<repo>.db.part (only there is a db fetched without proof)."""
    (tmp_path / "sync").mkdir(exist_ok=True)
    return tmp_path / "sync" / name


@pytest.fixture
def served(tmp_path: Path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "core.db").write_bytes(b"db bytes" * 1000)
    with FileServer(tmp_path / "www") as s:
        yield s


def test_database_is_fetched_without_proof(tmp_path: Path, served: FileServer) -> None:
    out = sync_part(tmp_path, "core.db.part")
    r = run("--direct", "-O", str(out), f"{served.url}/core.db")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"db bytes" * 1000


def test_missing_optional_file_is_one_line_exit_3(tmp_path: Path, served: FileServer) -> None:
    out = sync_part(tmp_path, "core.db.sig.part")
    out.write_bytes(b"stale")
    r = run("--direct", "-O", str(out), f"{served.url}/core.db.sig")
    assert r.returncode == 3
    assert "core.db.sig" in one_line(r.stderr) and "404" in r.stderr
    assert not out.exists()


def test_usage_errors_exit_2(tmp_path: Path) -> None:
    r = run("http://127.0.0.1:1/x.db")  # no -O
    assert r.returncode == 2 and "-O" in one_line(r.stderr)
    r = run("-O", str(tmp_path / "o"), "--required-rebuild-confirms", "2", "--rebuilder", "http://127.0.0.1:1/",
            "--pubkey", "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3", "http://127.0.0.1:1/a-1-1-any.pkg.tar.zst")
    assert r.returncode == 2 and "only 1 --rebuilder" in one_line(r.stderr)
    r = run("-O", str(tmp_path / "o"), "http://127.0.0.1:1/a-1-1-any.pkg.tar.zst")
    assert r.returncode == 2 and "--pubkey" in one_line(r.stderr)
    r = run("-O", str(tmp_path / "o"), "--pubkey", "not-a-key", "http://127.0.0.1:1/a-1-1-any.pkg.tar.zst")
    assert r.returncode == 2 and "minisign public key" in one_line(r.stderr)


def test_bypass_with_direct_is_refused(tmp_path: Path) -> None:
    # without --proxy, --bypass-proxy-for-pkgs uses the default Tor for lookups (tests/test_tor_default.py)
    r = run("-O", str(sync_part(tmp_path, "core.db.part")), "--direct", "--bypass-proxy-for-pkgs",
            "http://127.0.0.1:1/core.db")
    assert r.returncode == 2 and "--direct" in one_line(r.stderr)


def test_unreachable_proxy_fails_closed_never_direct(tmp_path: Path, served: FileServer) -> None:
    out = sync_part(tmp_path, "core.db.part")
    r = run("-O", str(out), "--proxy", "socks5://127.0.0.1:9", f"{served.url}/core.db")
    assert r.returncode == 3, r.stderr
    assert "proxy" in one_line(r.stderr).lower()
    assert served.requests == []  # no direct fallback
    assert not out.exists()


def test_proxy_with_credentials_or_http_scheme_refused(tmp_path: Path) -> None:
    # each refused for its own reason, named in the one line (not for some earlier, unrelated error)
    for proxy, why in (("http://127.0.0.1:8080", "only socks5"), ("socks5://u:p@127.0.0.1:9050", "credentials")):
        r = run("-O", str(sync_part(tmp_path, "core.db.part")), "--proxy", proxy, "http://127.0.0.1:1/core.db")
        assert r.returncode == 2, (proxy, r.stderr)
        assert why in one_line(r.stderr), (proxy, r.stderr)


def _log_key_file(tmp_path: Path) -> Path:
    """A well-formed log key, so a run gets past the log configuration to the download."""
    key = ec.generate_private_key(ec.SECP256R1()).public_key()
    path = tmp_path / "log.pem"
    path.write_bytes(key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    return path


def test_size_cap(tmp_path: Path, served: FileServer) -> None:
    out = tmp_path / "big-1-1-any.pkg.tar.zst.part"
    out.write_bytes(b"stale")
    # --max-size applies to packages; databases have their own (larger) cap. A package over the cap is
    # refused while it streams. The signature lookup is held back, so the size limit is what ends the run.
    (served.root / "big-1-1-any.pkg.tar.zst").write_bytes(b"x" * 5000)
    (served.root / "big-1-1-any.pkg.tar.zst.t").write_bytes(b"untrusted comment: x\n")
    served.behaviour.rules[".t"] = "slow"
    served.behaviour.slow_seconds = 3
    r = run("--direct", "-O", str(out), "--max-size", "1000", "--pubkey", "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
            "--log-url", "http://127.0.0.1:9", "--log-key", str(_log_key_file(tmp_path)),
            "--state-dir", str(tmp_path / "state"), f"{served.url}/big-1-1-any.pkg.tar.zst")
    assert r.returncode == 3, r.stderr
    line = one_line(r.stderr)
    assert "size limit" in line and "big-1-1-any.pkg.tar.zst" in line and "1000" in line, line
    assert ("GET", "/big-1-1-any.pkg.tar.zst") in served.requests  # the download was reached
    assert not out.exists()
    assert [p for p in tmp_path.iterdir() if p.name.startswith(".torfetch-")] == []
    # the same package under the cap gets past the size check (and fails later, on its signature)
    served.behaviour.rules.clear()
    r = run("--direct", "-O", str(out), "--max-size", "5000", "--pubkey", "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
            "--log-url", "http://127.0.0.1:9", "--log-key", str(_log_key_file(tmp_path)),
            "--state-dir", str(tmp_path / "state"), f"{served.url}/big-1-1-any.pkg.tar.zst")
    assert r.returncode == 1 and "signature" in one_line(r.stderr) and "size limit" not in r.stderr, r.stderr
    assert not out.exists()


def test_ctrl_c_leaves_nothing(tmp_path: Path, served: FileServer) -> None:
    served.behaviour.rules["core.db"] = "slow"
    served.behaviour.slow_seconds = 10
    out = sync_part(tmp_path, "core.db.part")
    out.write_bytes(b"stale")
    # default SIGINT in the child even when pytest runs as a background job (which ignores SIGINT, and torfetch
    # keeps an inherited SIG_IGN)
    p = subprocess.Popen([*TORFETCH, "--direct", "-O", str(out), f"{served.url}/core.db"], stderr=subprocess.PIPE,
                         text=True, preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
    deadline = time.monotonic() + 10
    while not any(x.name.startswith(".torfetch-") for x in out.parent.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    p.send_signal(signal.SIGINT)
    _, err = p.communicate(timeout=20)
    assert p.returncode == 130, err
    assert "interrupted" in err
    assert sorted(x.name for x in tmp_path.iterdir()) == ["sync", "www"]
    assert list(out.parent.iterdir()) == []


def test_pacman_bintrans_flags_are_accepted(tmp_path: Path, served: FileServer) -> None:
    r = run("--help")
    assert r.returncode == 0
    for flag in ("-O", "--transparency-url", "--pubkey", "--proxy", "--bypass-proxy-for-pkgs", "--rebuilder",
                 "--required-rebuild-confirms", "-v"):
        assert flag in r.stdout
    # listed, and taken: a pacman-bintrans XferCommand line (its flags but --proxy, which needs a SOCKS proxy) runs
    out = sync_part(tmp_path, "core.db.part")
    r = run("-v", "--direct", "--transparency-url", f"{served.url}/t", "--pubkey",
            "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3", "--rebuilder", f"{served.url}/rebuild/",
            "--required-rebuild-confirms", "1", "-O", str(out), f"{served.url}/core.db")
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == b"db bytes" * 1000


def test_console_script_flushes_what_main_buffered_and_keeps_its_exit_code() -> None:
    # entry() leaves by os._exit (no interpreter teardown): without its own flush, text main() left in
    # stdout's buffer (a pipe: block-buffered) would be lost, and the exit code must be main()'s
    code = ("import sys, torfetch.cli as c\n"
            "c.main = lambda: (sys.stdout.write('buffered out'), sys.stderr.write('buffered err'), 7)[2]\n"
            "sys.argv = ['torfetch', '-O', '/nonexistent/x.part', 'http://mirror.invalid/x']\n"
            "c.entry()\n"
            "print('not reached')\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout, r.stderr) == (7, "buffered out", "buffered err")


def test_console_script_subcommands_exit_normally(tmp_path: Path) -> None:
    # a subcommand leaves through sys.exit: atexit handlers run (a fetch's os._exit would skip them)
    code = ("import atexit, sys, torfetch.cli as c\n"
            "atexit.register(lambda: print('atexit ran'))\n"
            "c.main = lambda: 3\n"
            "sys.argv = ['torfetch', 'log', 'status']\n"
            "c.entry()\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert (r.returncode, r.stdout) == (3, "atexit ran\n")


@pytest.mark.parametrize("closed,flags", [((1,), ()), ((1, 2), ()), ((2,), ("-v",)), ((1, 2), ("-vv",))],
                         ids=["stdout", "stdout-and-stderr", "stderr-verbose", "both-verbose"])
def test_console_script_with_closed_stdio_keeps_the_exit_code_of_a_good_fetch(
        tmp_path: Path, served: FileServer, closed: tuple[int, ...], flags: tuple[str, ...]) -> None:
    # A parent that closed fd 1 (or 2) before exec: Python sets sys.stdout (sys.stderr) to None. The fetch
    # hands the file over; neither entry()'s flush nor a -v line may turn that into exit 1 with the file at -O
    # (nor put an error line on stdout instead).
    out = sync_part(tmp_path, "core.db.part")
    r = subprocess.run([*TORFETCH, *flags, "--direct", "-O", str(out), f"{served.url}/core.db"], capture_output=True,
                       text=True, timeout=60, preexec_fn=lambda: [os.close(fd) for fd in closed])
    assert (r.returncode, r.stdout, r.stderr) == (0, "", ""), r.stderr
    assert out.read_bytes() == b"db bytes" * 1000


def test_closed_stderr_a_failed_fetch_keeps_its_exit_code_and_stdout_clean(tmp_path: Path, served: FileServer) -> None:
    # sys.stderr is None: print(file=None) would write the error line to stdout; the exit code is what tells
    out = sync_part(tmp_path, "core.db.sig.part")
    r = subprocess.run([*TORFETCH, "-v", "--direct", "-O", str(out), f"{served.url}/core.db.sig"], capture_output=True,
                       text=True, timeout=60, preexec_fn=lambda: os.close(2))
    assert (r.returncode, r.stdout) == (3, "")
    assert not out.exists()


def test_an_https_mirror_no_trusted_ca_signed_is_refused_in_one_line(tmp_path: Path) -> None:
    # the shared certifi context (net/http.py) refuses the tests' own CA: exit 3, the line says TLS, not Tor,
    # and a stale -O is gone
    from tests.servers.socks import SocksProxy
    from tests.servers.tls import make_tls

    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "core.db").write_bytes(b"db bytes")
    out = sync_part(tmp_path, "core.db.part")
    out.write_bytes(b"stale")
    tls = make_tls("secure.test")
    with SocksProxy() as socks, FileServer(tmp_path / "www").use_tls(tls.server) as secure:
        r = run("--proxy", socks.url, "--config", "/dev/null", "-O", str(out),
                secure.url.replace("127.0.0.1", "secure.test") + "/core.db")
        assert secure.requests == []
    assert r.returncode == 3, r.stderr
    line = one_line(r.stderr)
    assert "TLS handshake with secure.test failed: certificate not trusted" in line and "SOCKS" not in line, line
    assert not out.exists()


def test_a_config_error_quoting_terminal_escapes_is_one_printable_line(tmp_path: Path) -> None:
    conf = tmp_path / "torfetch.toml"
    conf.write_text('"k\\u001b]0;pwned\\u0007" = 1\n')
    out = sync_part(tmp_path, "core.db")
    r = run("--config", str(conf), "-O", str(out), "http://mirror.invalid/core.db")
    assert r.returncode == 2, r.stderr
    line = one_line(r.stderr)
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr, repr(r.stderr)
    assert "k?]0;pwned?" in line, line
