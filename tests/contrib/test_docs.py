"""contrib/*.md and contrib/torfetch.toml say only what torfetch does: every option, command line and config key
they mention exists (and parses), and the error lines they quote are the ones torfetch prints."""

from __future__ import annotations

import os
import re
import shlex
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from torfetch import cli
from torfetch.configfile import ConfigSpec, read_config_file
from torfetch.errors import StateError, TorfetchError
from torfetch.store.statedir import User, check_state_dir

from .parsers import commands

ROOT = Path(__file__).resolve().parents[2]
GUIDES = sorted((ROOT / "contrib").glob("*.md"))
EXAMPLE = ROOT / "contrib/torfetch.toml"
TEXTS = [*GUIDES, EXAMPLE]
SPEC = ConfigSpec.from_parser(cli.build_parser())
ALL_OPTIONS = set().union(*(c.options() for c in commands()))


def test_the_guides_are_there() -> None:
    assert {p.name for p in GUIDES} >= {"whonix.md", "tails.md"}


def _code(text: str) -> list[str]:
    """Inline code spans and the lines of indented code blocks."""
    spans = re.findall(r"`([^`\n]+)`", text)
    blocks = [ln[4:] for ln in text.splitlines() if ln.startswith("    ")]
    return spans + blocks


def _invocations(path: Path) -> list[list[str]]:
    """Every torfetch command line in the code of ``path`` (XferCommand lines included), as argv after the name."""
    found = []
    for code in _code(path.read_text()) if path.suffix == ".md" else re.findall(r"`([^`\n]+)`", path.read_text()):
        code = code.split(" #", 1)[0]
        try:
            words = shlex.split(code)
        except ValueError:
            continue
        for i, w in enumerate(words):
            # a bare path (`/usr/local/bin/torfetch`) names the program, it is no command line
            if os.path.basename(w) == "torfetch" and (i == 0 or words[i - 1] in ("sudo", "=")) and words[i + 1:]:
                found.append(words[i + 1:])
                break
    return found


def _parse(argv: list[str]) -> None:
    argv = [a.replace("%o", "out.part").replace("%u", "https://mirror.example.org/x-1-1-any.pkg.tar.zst")
            for a in argv]
    if argv and argv[0] in cli.SUBCOMMANDS:
        cmd = [c for c in commands() if c.words[1:2] == (argv[0],)]
        if argv[0] == "log":
            cmd = [c for c in cmd if c.words[2:3] == tuple(argv[1:2])]
            argv = argv[1:]
        [c] = cmd
        c.parser.parse_args(argv[1:])
    else:
        cli.build_parser().parse_args(argv)


@pytest.mark.parametrize("path", TEXTS, ids=[p.name for p in TEXTS])
def test_command_lines_parse(path: Path) -> None:
    for argv in _invocations(path):
        try:
            _parse(argv)
        except SystemExit as exc:  # -h
            assert exc.code == 0, argv
        except TorfetchError as exc:
            pytest.fail(f"{path.name}: torfetch {shlex.join(argv)}: {exc.one_line()}")


def test_the_guides_show_command_lines() -> None:
    # so that the parse test above has something to parse
    assert all(_invocations(p) for p in GUIDES)
    assert any(a[:1] == ["setup"] for a in _invocations(ROOT / "contrib/whonix.md"))


@pytest.mark.parametrize("path", TEXTS, ids=[p.name for p in TEXTS])
def test_every_option_mentioned_exists(path: Path) -> None:
    # pacman's --config is torfetch's option too; the docs name no other program's long options
    mentioned = set(re.findall(r"(?<![\w/.-])--[a-z][a-z-]*[a-z]", path.read_text()))
    assert mentioned - ALL_OPTIONS == set()


def _toml_lines(text: str) -> list[str]:
    """What reads as config in a guide: key = value lines (commented ones too) and [[repo]] headers."""
    out = []
    for code in _code(text):
        line = re.sub(r"^\s*#\s*", "", code).rstrip()
        if re.fullmatch(r"\[\[repo\]\]", line.strip()) or re.match(r"[a-z_]+ = \S", line.strip()):
            line = line.strip().split("  #", 1)[0].rstrip()
            if line not in out or line == "[[repo]]":  # the same setting in the prose and in a block
                out.append(line)
    return out


def _load(text: str, tmp_path: Path, name: str) -> None:
    p = tmp_path / name
    p.write_text(text)
    os.chmod(p, 0o644)
    read_config_file(p, spec=SPEC)  # unknown keys, wrong types, keys outside [[repo]]: ConfigError


def test_example_config_with_each_commented_setting_enabled(tmp_path: Path) -> None:
    # the commented-out settings are meant to be uncommented as they are: each one, on its own, must load
    text = EXAMPLE.read_text()
    lines = text.splitlines(keepends=True)
    commented = [i for i, ln in enumerate(lines) if re.match(r"# ?[a-z_]+ = ", ln)]
    assert {"proxy", "direct", "tor_control", "log_url", "rebuilder_key"} <= \
        {lines[i].lstrip("# ").split()[0] for i in commented}
    for i in commented:
        enabled = lines[:i] + [lines[i].lstrip("#").lstrip(" ")] + lines[i + 1:]
        _load("".join(enabled), tmp_path, f"line{i + 1}.toml")


@pytest.mark.parametrize("path", GUIDES, ids=[p.name for p in GUIDES])
def test_config_lines_in_the_guides_load(path: Path, tmp_path: Path) -> None:
    lines = _toml_lines(path.read_text())
    _load("\n".join(lines) + "\n", tmp_path, path.stem + ".toml")
    # config keys named in the prose (`state_dir`, `tor_control`, ...) are keys of the file
    keys = set(SPEC.top) | set(SPEC.repo) | {"match"}
    named = {w for w in re.findall(r"`([a-z]+(?:_[a-z]+)+)`", path.read_text())}
    assert named - keys == set()


# --- the error lines the guides quote are torfetch's --------------------------------------------------------------


def _quoted_errors(prefix: str) -> list[str]:
    lines = []
    for p in GUIDES:
        lines += [ln.strip().strip("`") for ln in p.read_text().splitlines() if ln.strip().startswith(prefix)]
    return lines


def _free_port() -> int:
    with socket.socket() as s:  # a port where nothing listens
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _fetch_through(proxy_args: list[str], tmp_path: Path, *, default_socks: str | None = None) -> str:
    """torfetch's stderr for a package fetch whose SOCKS proxy is not there."""
    args = ["--state-dir", str(tmp_path), *proxy_args, "--pubkey", "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3",
            "-O", str(tmp_path / "out"), "http://mirror.test/x-1-1-any.pkg.tar.zst"]
    if default_socks is None:
        argv = [sys.executable, "-m", "torfetch", "--config", "/dev/null", *args]
    else:
        # the default SocksPort (127.0.0.1:9050) replaced in the child only: what listens there is not the test's
        argv = [sys.executable, "-c", "import sys, torfetch.net.tor as t; t.DEFAULT_SOCKS = sys.argv[1]; "
                "from torfetch.cli import main; sys.exit(main(['--config', '/dev/null', *sys.argv[2:]]))",
                default_socks, *args]
    r = subprocess.run(argv, capture_output=True, text=True, timeout=60)
    assert r.returncode == 3, r.stderr
    assert not (tmp_path / "out").exists()
    return r.stderr.strip()


def test_quoted_default_proxy_line_is_what_torfetch_prints(tmp_path: Path) -> None:
    quoted = [ln for ln in _quoted_errors("torfetch: tor: ") if "no Tor SOCKS proxy" in ln]
    assert len(quoted) >= 2  # Whonix and Tails
    port = _free_port()
    got = _fetch_through([], tmp_path, default_socks=f"socks5h://127.0.0.1:{port}")
    for line in quoted:
        assert line.replace("127.0.0.1:9050", f"127.0.0.1:{port}") == got


def test_quoted_configured_proxy_line_is_what_torfetch_prints(tmp_path: Path) -> None:
    [quoted] = [ln for ln in _quoted_errors("torfetch: tor: ") if "cannot reach the Tor SOCKS proxy" in ln]
    m = re.fullmatch(r"torfetch: tor: signature request for <file>\.t: (cannot reach the Tor SOCKS proxy "
                     r"\(all attempts to connect to )([\d.]+:\d+)( failed\))", quoted)
    assert m, quoted
    port = _free_port()
    got = _fetch_through(["--proxy", f"socks5h://127.0.0.1:{port}"], tmp_path)
    # which lookup reaches the proxy first varies; what it says about the proxy does not
    assert got.startswith("torfetch: tor: ")
    assert got.endswith(f"{m.group(1)}127.0.0.1:{port}{m.group(3)}"), got


def _state_error_as_nobody(directory: Path) -> str:
    """check_state_dir's line for a directory that user nobody cannot reach (as root, in a child as nobody)."""
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover - child
        os.close(r)
        msg = "no error"
        try:
            os.setgid(65534)
            os.setuid(65534)
            check_state_dir(directory, User(65534, "nobody", "nogroup"))
        except StateError as exc:
            msg = exc.one_line()
        except BaseException as exc:
            msg = repr(exc)
        os.write(w, msg.encode())
        os._exit(0)
    os.close(w)
    with os.fdopen(r) as f:
        msg = f.read()
    os.waitpid(pid, 0)
    return msg


def test_quoted_state_line_is_what_torfetch_prints(tmp_path: Path) -> None:
    [quoted] = _quoted_errors("torfetch: state: ")
    m = re.fullmatch(r"torfetch: state: cannot reach the state directory (\S+) as (\w+) \(uid (\d+)\) "
                     r"\(Permission denied\): fix it with \.\.\.", quoted)
    assert m, quoted
    home = tmp_path / "home"
    home.mkdir(mode=0o700)  # like /home/amnesia for alpm
    directory = home / "state"
    directory.mkdir()
    if os.geteuid() == 0:
        got = _state_error_as_nobody(directory)
    else:
        os.chmod(home, 0)
        try:
            check_state_dir(directory, User(os.geteuid(), "me", "me"))
            got = "no error"
        except StateError as exc:
            got = exc.one_line()
        finally:
            os.chmod(home, 0o700)
    want = quoted.replace(m.group(1), str(directory)).replace(f"{m.group(2)} (uid {m.group(3)})",
                                                                "nobody (uid 65534)" if os.geteuid() == 0 else
                                                                f"me (uid {os.geteuid()})")
    assert got.startswith(want.removesuffix("..."))
