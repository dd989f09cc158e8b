"""Output like pacman's: a progress line on a terminal, a one-line verdict, nothing but errors otherwise."""

from __future__ import annotations

import io
import os
import re
import select
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.servers.files import FileServer
from torfetch.report import ERASE, Reporter, format_progress, format_verdict, human_bytes


class Clock:
    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


class TTY(io.StringIO):
    def isatty(self) -> bool:
        return True



@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Outputs here are sync dbs, which pacman writes into its sync directory (only there is a .db metadata)."""
    d = tmp_path_factory.mktemp("t") / "sync"
    d.mkdir()
    return d

def screen(raw: str) -> list[str]:
    """What a user sees: each line as left by its last carriage-return redraw, erase codes applied."""
    out = []
    text = raw.replace("\r\n", "\n")
    for line in text.split("\n"):
        visible = line.split("\r")[-1].replace("\x1b[K", "")
        if visible.strip():
            out.append(visible)
    return out


# --- the pure formatter ------------------------------------------------------------------------------------------


def test_human_bytes() -> None:
    assert [human_bytes(n) for n in (0, 1023, 1024, 1536 * 1024, 3 * 1024**3, 5 * 1024**4)] == \
        ["0 B", "1023 B", "1.0 KiB", "1.5 MiB", "3.0 GiB", "5120.0 GiB"]


def test_progress_line_shows_bytes_rate_and_checks() -> None:
    line = format_progress("hello-1.0-1-x86_64.pkg.tar.zst", 3 * 1024 * 1024, 2.0,
                           ["download", "signature", "log"], ["signature"], width=120)
    assert line == "hello-1.0-1-x86_64.pkg.tar.zst    3.0 MiB  1.5 MiB/s  1/3  waiting: download log"
    # once downloaded, the rate means nothing any more
    line = format_progress("hello-1.0-1-x86_64.pkg.tar.zst", 3 * 1024 * 1024, 2.0,
                           ["download", "signature", "log"], ["download", "signature"], width=120)
    assert line == "hello-1.0-1-x86_64.pkg.tar.zst    3.0 MiB  2/3  waiting: log"
    assert format_progress("core.db", 2048, 1.0, [], [], width=80) == "core.db    2.0 KiB  2.0 KiB/s"


def test_narrow_terminal_drops_the_pending_list_then_the_rate_then_shortens_the_name() -> None:
    name = "linux-firmware-20240312.3b128b60-1-any.pkg.tar.zst"
    checks = ["download", "signature", "log", ".PKGINFO"]
    wide = format_progress(name, 10, 1.0, checks, [], width=200)
    assert wide.endswith("10 B/s  0/4  waiting: download signature log .PKGINFO")
    assert format_progress(name, 10, 1.0, checks, [], width=80) == f"{name}       10 B  10 B/s  0/4"
    assert format_progress(name, 10, 1.0, checks, [], width=70) == f"{name}       10 B  0/4"
    short = format_progress(name, 10, 1.0, checks, [], width=50)
    assert len(short) <= 49 and short.endswith("~       10 B  0/4") and short.startswith("linux-firmware-")
    assert len(format_verdict(name, 10, "verified: signature, log", width=50)) <= 49


def test_progress_line_is_clean() -> None:
    assert "\x1b" not in format_progress("evil\x1b[2Jname\r.db", 1, 1.0, [], [], width=80)


# --- the Reporter: when it draws ---------------------------------------------------------------------------------


def test_redraws_are_rate_limited() -> None:
    clock, tty = Clock(), TTY()
    r = Reporter(stream=tty, clock=clock, width=100)
    with r.file("core.db") as p:
        for _ in range(1000):  # 1000 chunks in 0.5 s of (fake) time
            clock.now += 0.0005
            p.add(100)
        p.finish("downloaded (no proof needed)")
    draws = tty.getvalue().count(ERASE)
    assert 5 <= draws <= 5 + 2, draws  # 10/s over 0.5 s, plus the first and the verdict
    assert screen(tty.getvalue()) == [format_verdict("core.db", 100000, "downloaded (no proof needed)", width=100)]


def test_a_check_redraws_at_once() -> None:
    clock, tty = Clock(), TTY()
    r = Reporter(stream=tty, clock=clock, width=100)
    with r.file("x-1-1-any.pkg.tar.zst", ["download", "signature"]) as p:
        p.add(10)
        p.done("signature")
        assert screen(tty.getvalue())[-1].endswith("1/2  waiting: download")
        p.done("download")
        p.finish("verified: signature")
    assert screen(tty.getvalue())[-1].endswith("verified: signature")


def test_failure_erases_the_line_for_the_error() -> None:
    clock, tty = Clock(), TTY()
    r = Reporter(stream=tty, clock=clock, width=100)
    with pytest.raises(RuntimeError):
        with r.file("core.db") as p:
            p.add(10)
            raise RuntimeError
    assert tty.getvalue().endswith(ERASE) and screen(tty.getvalue()) == []


def test_verbose_lines_print_above_the_progress_line() -> None:
    clock, tty = Clock(), TTY()
    r = Reporter(verbose=1, stream=tty, clock=clock, width=100)
    with r.file("core.db") as p:
        p.add(5)
        r.passed("a check passed")
        r.detail("only with -vv")
        p.finish("downloaded")
    seen = screen(tty.getvalue())
    assert seen[0] == "[+] a check passed" and seen[1].startswith("core.db") and seen[1].endswith("downloaded")
    assert len(seen) == 2


@pytest.mark.parametrize("tty, quiet", [(False, False), (True, True)])
def test_nothing_but_warnings_when_not_a_terminal_or_quiet(tty: bool, quiet: bool) -> None:
    stream = TTY() if tty else io.StringIO()
    r = Reporter(quiet=quiet, stream=stream, clock=Clock(), width=80)
    with r.file("core.db", ["download"]) as p:
        p.add(5)
        p.done("download")
        r.passed("not shown")
        r.info("not shown")
        p.finish("downloaded")
    r.warn("a rebuilder said BAD")
    assert stream.getvalue() == "torfetch: warning: a rebuilder said BAD\n"


def test_verbose_without_a_terminal_is_plain_lines() -> None:
    stream = io.StringIO()
    r = Reporter(verbose=2, stream=stream, clock=Clock())
    with r.file("core.db") as p:
        p.add(5)
        r.passed("checked")
        r.detail("circuit 7: a → b → c")
        p.finish("downloaded")
    assert stream.getvalue() == "[+] checked\n    circuit 7: a → b → c\n"


# --- through a real pseudo-terminal ------------------------------------------------------------------------------


def run_on_pty(args: list[str], timeout: float = 60) -> tuple[int, str]:
    """Run torfetch with stderr on a pty, as pacman on a terminal would; return what the terminal received."""
    master, slave = os.openpty()
    try:
        p = subprocess.Popen([sys.executable, "-m", "torfetch", "--config", "/dev/null", *args], stdin=subprocess.DEVNULL,
                             stdout=subprocess.DEVNULL, stderr=slave)
    finally:
        os.close(slave)
    chunks: list[bytes] = []
    deadline = time.monotonic() + timeout
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # EIO: the child closed its end
                    break
                if not data:
                    break
                chunks.append(data)
            elif p.poll() is not None:
                break
        rc = p.wait(timeout=max(deadline - time.monotonic(), 1))
    finally:
        os.close(master)
        if p.poll() is None:
            p.kill()
    return rc, b"".join(chunks).decode("utf-8", "replace")


@pytest.fixture
def mirror(tmp_path: Path):
    (tmp_path / "www").mkdir()
    (tmp_path / "www" / "core.db").write_bytes(b"d" * 300_000)
    with FileServer(tmp_path / "www") as s:
        yield s


def test_terminal_sees_a_progress_line_then_the_verdict(tmp_path: Path, mirror: FileServer) -> None:
    rc, raw = run_on_pty(["--direct", "-O", str(tmp_path / "core.db.part"), f"{mirror.url}/core.db"])
    assert rc == 0, raw
    assert "\r" in raw and "\x1b[K" in raw  # drawn in place
    seen = screen(raw)
    assert len(seen) == 1, seen
    assert re.fullmatch(r"core\.db +293\.0 KiB  downloaded \(no proof needed\)", seen[0]), seen


def test_terminal_sees_only_the_error_on_failure(tmp_path: Path, mirror: FileServer) -> None:
    rc, raw = run_on_pty(["--direct", "-O", str(tmp_path / "missing.db.part"), f"{mirror.url}/missing.db"])
    assert rc == 3
    assert screen(raw) == [f"torfetch: not found: missing.db: server answered 404 ({mirror.url}/missing.db)"]


def test_quiet_on_a_terminal_prints_nothing(tmp_path: Path, mirror: FileServer) -> None:
    rc, raw = run_on_pty(["-q", "--direct", "-O", str(tmp_path / "core.db.part"), f"{mirror.url}/core.db"])
    assert rc == 0 and raw == ""


def test_a_pipe_gets_nothing_on_success(tmp_path: Path, mirror: FileServer) -> None:
    r = subprocess.run([sys.executable, "-m", "torfetch", "--config", "/dev/null", "--direct", "-O", str(tmp_path / "core.db.part"),
                        f"{mirror.url}/core.db"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and r.stderr == ""


def test_quiet_failure_is_still_one_line(tmp_path: Path, mirror: FileServer) -> None:
    rc, raw = run_on_pty(["-q", "--direct", "-O", str(tmp_path / "missing.db.part"), f"{mirror.url}/missing.db"])
    assert rc == 3
    assert screen(raw) == [f"torfetch: not found: missing.db: server answered 404 ({mirror.url}/missing.db)"]
