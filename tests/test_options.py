"""Option validation: bad values, hostile local files and duplicates cost one line, exit 2, and touch nothing."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path

import pytest

from torfetch import cli, cliargs
from torfetch.errors import UsageError

PUB = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
PKG = "http://127.0.0.1:9/a-1-1-any.pkg.tar.zst"


def usage_error(capsys: pytest.CaptureFixture[str], tmp_path: Path, *args: str) -> str:
    """Run the CLI in this process; expect exit 2, one line, and -O untouched."""
    out = tmp_path / "out.part"
    out.write_bytes(b"untouched")
    rc = cli.main(["--config", "/dev/null", "--direct", "-O", str(out), *args])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert rc == 2, err
    assert len(lines) == 1 and "Traceback" not in err and "internal error" not in err, err
    assert out.read_bytes() == b"untouched"
    assert sorted(p.name for p in tmp_path.iterdir() if p.name.startswith(".torfetch-")) == []
    return lines[0]


@pytest.mark.parametrize("proxy, why", [
    ("socks5h://127.0.0.1:99999", "Port out of range"),
    ("socks5h://[::1:9050", "Invalid IPv6 URL"),
    ("socks5h://127.0.0.1", "needs a host and a port"),
    ("http://127.0.0.1:8080", "only socks5"),
])
def test_malformed_proxy(capsys, tmp_path: Path, proxy: str, why: str) -> None:
    out = tmp_path / "out.part"
    rc = cli.main(["--config", "/dev/null", "-O", str(out), "--proxy", proxy, "http://127.0.0.1:9/core.db"])
    line = capsys.readouterr().err.strip()
    assert rc == 2 and line.startswith("torfetch: usage: argument --proxy:") and why in line, line


@pytest.mark.parametrize("url", ["http://[::1/rebuild", "http://127.0.0.1:70000/", "ftp://r.test/", "http:///x"])
def test_malformed_rebuilder(capsys, tmp_path: Path, url: str) -> None:
    line = usage_error(capsys, tmp_path, "--rebuilder", url, "http://127.0.0.1:9/core.db")
    assert "argument --rebuilder:" in line


@pytest.mark.parametrize("opt", ["--deadline", "--connect-timeout", "--read-timeout", "--rebuilder-timeout"])
@pytest.mark.parametrize("value", ["nan", "inf", "-inf", "-1", "0", "ten", "1e400"])
def test_durations_are_positive_and_finite(capsys, tmp_path: Path, opt: str, value: str) -> None:
    # "--opt=-1": argparse would take a bare "-1" for an option
    line = usage_error(capsys, tmp_path, f"{opt}={value}", "http://127.0.0.1:9/core.db")
    assert f"argument {opt}:" in line and repr(value) in line


@pytest.mark.parametrize("opt, value", [("--max-size", "0"), ("--max-size", "1e3"), ("--max-size", "١٢"),
                                        ("--required-rebuild-confirms", "-1"), ("--required-rebuild-confirms", "x")])
def test_counts_are_whole_ascii_numbers(capsys, tmp_path: Path, opt: str, value: str) -> None:
    assert f"argument {opt}:" in usage_error(capsys, tmp_path, f"{opt}={value}", "http://127.0.0.1:9/core.db")


def test_a_plain_float_option_gets_the_same_rule() -> None:
    # options other helpers add with type=float are checked too (after the config file is merged)
    p = cli.build_parser()
    p.add_argument("--some-timeout", type=float, default=5.0)
    ns = p.parse_args(["-O", "x", "--some-timeout", "nan", "http://h.test/core.db"])
    with pytest.raises(UsageError, match="--some-timeout must be a positive, finite number"):
        cli._check_numbers(p, ns)


@pytest.mark.parametrize("a, b", [("http://r.test/", "HTTP://R.TEST"), ("https://r.test/x", "https://r.test/x/"),
                                  ("http://r.test:8080/a/", " http://R.test:8080/a "),
                                  # the default port is the same rebuilder: it must not count twice
                                  ("https://r.test/a", "https://r.test:443/a"), ("http://r.test:80/", "http://r.test")])
def test_duplicate_rebuilder_after_normalisation(capsys, tmp_path: Path, a: str, b: str) -> None:
    line = usage_error(capsys, tmp_path, "--pubkey", PUB, "--rebuilder", a, "--rebuilder", b, PKG)
    assert "is given twice" in line


def test_duplicate_rebuilder_key(capsys, tmp_path: Path) -> None:
    k = "00" * 32
    line = usage_error(capsys, tmp_path, "--pubkey", PUB, "--rebuilder", "http://r.test/",
                       "--rebuilder-key", f"http://r.test/={k}", "--rebuilder-key", f"HTTP://r.test={k}", PKG)
    assert "--rebuilder-key for http://r.test/ is given twice" in line


# --- local files: capped, typed, never hanging -------------------------------------------------------------------


@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    p = tmp_path / "fifo"
    os.mkfifo(p)
    return p


def _file_args(kind: str, path: str) -> list[str]:
    return {
        "--pubkey-file": ["--pubkey-file", path, PKG],
        "--log-key": ["--pubkey", PUB, "--log-key", path, PKG],
        "--rebuilder-key": ["--pubkey", PUB, "--rebuilder", "http://r.test/", "--rebuilder-key", f"http://r.test/={path}", PKG],
        "--tor-config": ["--tor", "launch", "--tor-config", path, "http://127.0.0.1:9/core.db"],
    }[kind]


KINDS = ["--pubkey-file", "--log-key", "--rebuilder-key", "--tor-config"]


def _cli(tmp_path: Path, args: list[str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    # --direct goes with everything here but --tor launch (a usage error of its own)
    direct = [] if "--tor" in args else ["--direct"]
    return subprocess.run([sys.executable, "-m", "torfetch", "--config", "/dev/null", *direct, "-O", str(tmp_path / "out.part"), *args],
                          capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize("kind", KINDS)
def test_dev_zero_is_refused_at_once(tmp_path: Path, kind: str) -> None:
    r = _cli(tmp_path, _file_args(kind, "/dev/zero"))
    assert r.returncode == 2, r.stderr
    assert r.stderr.strip() == f"torfetch: configuration: {kind}{' file' if kind == '--rebuilder-key' else ''} " \
                               "/dev/zero is not a regular file"


@pytest.mark.parametrize("kind", KINDS)
def test_fifo_does_not_hang(tmp_path: Path, fifo: Path, kind: str) -> None:
    r = _cli(tmp_path, _file_args(kind, str(fifo)), timeout=20)  # a blocking open() would hang until the timeout
    assert r.returncode == 2 and "is not a regular file" in r.stderr and str(fifo) in r.stderr, r.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_large_file_is_capped(tmp_path: Path, kind: str) -> None:
    big = tmp_path / "big"
    big.write_bytes(b"A" * (1024 * 1024))
    r = _cli(tmp_path, _file_args(kind, str(big)))
    assert r.returncode == 2 and "is larger than 65536 bytes" in r.stderr, r.stderr


@pytest.mark.parametrize("kind", KINDS)
def test_undecodable_file_is_a_typed_error(tmp_path: Path, kind: str) -> None:
    bad = tmp_path / "bad"
    bad.write_bytes(b"\xff\xfe untitled\n")
    r = _cli(tmp_path, _file_args(kind, str(bad)))
    assert r.returncode == 2 and "is not UTF-8 text" in r.stderr and "Traceback" not in r.stderr, r.stderr


def test_missing_file_is_named(tmp_path: Path) -> None:
    r = _cli(tmp_path, _file_args("--pubkey-file", str(tmp_path / "nope.pub")))
    assert r.returncode == 2 and r.stderr.strip() == f"torfetch: configuration: --pubkey-file {tmp_path}/nope.pub does not exist"


def test_log_key_file_without_a_pem_is_refused(capsys, tmp_path: Path) -> None:
    k = tmp_path / "k"
    k.write_text("not a key\n")
    line = usage_error(capsys, tmp_path, *_file_args("--log-key", str(k)))
    assert "does not hold a PEM public key" in line


def test_key_files_are_read_and_used(tmp_path: Path) -> None:
    pub = tmp_path / "op.pub"
    pub.write_text(f"untrusted comment: minisign public key\n{PUB}\n")
    rk = tmp_path / "r.hex"
    rk.write_text("ab" * 32 + "\n")
    ns = cli.build_parser().parse_args(["--config", "/dev/null", "--direct", "-O", "o", "--pubkey-file", str(pub), "--rebuilder", "http://r.test",
                                        "--rebuilder-key", f"http://r.test={rk}", PKG])
    opts = cli.options_from_args(ns)
    assert PUB in opts.pubkey
    assert opts.rebuilder_keys == (("http://r.test/", "ab" * 32),)


# --- the one argparse helper ---------------------------------------------------------------------------------------


def test_log_subcommand_uses_the_shared_parser(capsys) -> None:
    from torfetch.commands import log

    assert isinstance(log._parser(), cliargs.ArgumentParser)
    assert cli.main(["log", "no-such-command"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("torfetch: usage: ") and len(err.strip().splitlines()) == 1


def test_recording_parser_tells_given_from_default() -> None:
    p = cli.build_parser()
    ns = p.parse_args(["-O", "o", "--isolate", "purpose", "http://h.test/x.db"])
    assert {"isolate", "output", "url"} <= cliargs.given(ns)
    assert "connect_timeout" not in cliargs.given(ns) and ns.connect_timeout == 60.0  # defaults still filled in
    assert ns.rebuilder == [] and ns.verbose == 0
    ns2 = p.parse_args(["-O", "o", "http://h.test/x.db"])
    assert ns2.rebuilder is not ns.rebuilder  # no shared mutable default


def test_converters_raise_argument_type_errors() -> None:
    for conv, bad in ((cliargs.seconds, "nan"), (cliargs.positive_int, "0"), (cliargs.count, "-2"),
                      (cliargs.proxy_url, "socks5h://[::1:9050"), (cliargs.rebuilder_url, "http://[::1/"),
                      (cliargs.url, "gopher://x/")):
        with pytest.raises(argparse.ArgumentTypeError):
            conv(bad)
    assert cliargs.seconds("2.5") == 2.5 and cliargs.count("0") == 0
    assert cliargs.proxy_url("socks5://[::1]:9050") == "socks5h://[::1]:9050"
    assert cliargs.rebuilder_url("HTTPS://R.test/a") == "https://r.test/a/"


@pytest.mark.parametrize("args", [
    [PKG],  # a package without a key: found out once the URL is classified, still before any network work
    ["--pubkey", "not-a-key", PKG],
    ["--pubkey", PUB, "--rebuilder-key", "http://r.test/=" + "00" * 32, PKG],
    ["--pubkey", PUB, "--log-url", "http://127.0.0.1:9", PKG],
])
def test_later_usage_errors_touch_nothing_either(capsys, tmp_path: Path, args: list[str]) -> None:
    usage_error(capsys, tmp_path, *args)


def test_quiet_and_verbose_conflict(capsys, tmp_path: Path) -> None:
    assert "-q or -v" in usage_error(capsys, tmp_path, "-q", "-v", "http://127.0.0.1:9/core.db")
