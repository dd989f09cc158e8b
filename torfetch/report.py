"""What the user sees on stderr, the way pacman shows it.

* On a terminal: one compact progress line per file (bytes, rate, the checks pending and done), redrawn in
  place at most ``redraws_per_second`` times, and replaced by a one-line verdict when the file is handed over.
  On failure the line is erased, so the one error line that follows stands alone.
* Not a terminal (pacman's output piped, a log), or ``-q``: nothing but warnings and errors.
* ``-v``: one line per check as it passes (on a terminal, printed above the progress line); ``-vv``: also
  circuits and the details of proofs and rebuilder answers.

The line itself comes from :func:`format_progress` / :func:`format_verdict`, pure functions of the numbers,
so they are tested without a terminal; the Reporter only decides when to draw. Time is trio's clock (or an
injected one), never the wall clock.
"""

from __future__ import annotations

import shutil
import sys
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import TextIO

from .verify.minisign import sanitise

ERASE = "\r\x1b[K"  # carriage return, erase to end of line


def terminal_lines(text: str, max_len: int = 2000) -> str:
    """Each line of ``text`` fit for a terminal (no control characters, bounded), the newlines kept: for a
    message that may quote what a file, pacman or a server said."""
    return "\n".join(sanitise(line, max_len=max_len) for line in text.split("\n"))


def human_bytes(n: float) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if n < 1024 or unit == "GiB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1024
    raise AssertionError("unreachable")


def _fit(parts: Sequence[str], width: int, *, optional: Sequence[int] = ()) -> str:
    """Join ``parts`` (the first is the file name) into one line under ``width``.

    Too wide: leave out the ``optional`` parts, then shorten the name (down to 24 characters, marked ``~``),
    then cut the end.
    """
    limit = max(width - 1, 20)
    parts = list(parts)

    def joined(ps: Sequence[str]) -> str:
        return "  ".join(p for p in ps if p)

    for i in optional:
        if len(joined(parts)) <= limit:
            break
        parts[i] = ""
    over = len(joined(parts)) - limit
    if over > 0 and len(parts[0]) > 24:
        keep = max(len(parts[0]) - over - 1, 23)
        parts[0] = parts[0][:keep] + "~"
    return joined(parts)[:limit]


def format_checks(checks: Sequence[str], done: Iterable[str]) -> tuple[str, str]:
    """(``"1/4"``, ``"waiting: signature log .PKGINFO"``): how many checks passed, and which are pending."""
    if not checks:
        return "", ""
    finished = set(done)
    pending = [c for c in checks if c not in finished]
    return f"{len(checks) - len(pending)}/{len(checks)}", (f"waiting: {' '.join(pending)}" if pending else "")


def format_progress(filename: str, nbytes: int, elapsed: float, checks: Sequence[str], done: Iterable[str],
                    *, width: int = 80) -> str:
    """``hello-1.0-1-x86_64.pkg.tar.zst  1.2 MiB  340.0 KiB/s  1/4  waiting: signature log .PKGINFO``.

    The rate shows only while the download runs (for a file without checks: always). On a narrow terminal the
    list of pending checks goes first, then the rate, then the name is shortened.
    """
    done = list(done)
    rate = f"{human_bytes(nbytes / elapsed if elapsed > 0 else 0.0)}/s" if "download" not in done else ""
    count, waiting = format_checks(checks, done)
    parts = [sanitise(filename, max_len=200), f"{human_bytes(nbytes):>9}", rate, count, waiting]
    return _fit(parts, width, optional=(4, 2))


def format_verdict(filename: str, nbytes: int, verdict: str, *, width: int = 80) -> str:
    """``hello-1.0-1-x86_64.pkg.tar.zst  1.2 MiB  verified: signature, log, .PKGINFO``."""
    return _fit([sanitise(filename, max_len=200), f"{human_bytes(nbytes):>9}", verdict], width)


def _trio_time() -> float:
    import trio

    return trio.current_time()


@dataclass
class Reporter:
    verbose: int = 0
    quiet: bool = False  # -q: no progress line, no -v lines; warnings still
    stream: TextIO | None = field(default_factory=lambda: sys.stderr)  # None: fd 2 closed at start
    tty: bool | None = None  # None: ask the stream
    clock: Callable[[], float] = _trio_time
    redraws_per_second: float = 10.0
    width: int | None = None  # None: the terminal's
    _active: "FileProgress | None" = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.tty is None:
            try:
                self.tty = self.stream.isatty()
            except (AttributeError, ValueError):
                self.tty = False

    @property
    def shows_progress(self) -> bool:
        return bool(self.tty) and not self.quiet

    def line_width(self) -> int:
        if self.width is not None:
            return self.width
        try:
            import os

            return os.get_terminal_size(self.stream.fileno()).columns or 80
        except (AttributeError, ValueError, OSError):
            return shutil.get_terminal_size().columns

    def passed(self, msg: str) -> None:
        """A check passed (shown with -v)."""
        if self.verbose >= 1 and not self.quiet:
            self._emit(f"[+] {msg}")

    def info(self, msg: str) -> None:
        if self.verbose >= 1 and not self.quiet:
            self._emit(f"[*] {msg}")

    def detail(self, msg: str) -> None:
        """Circuits, proof details, rebuilder answers (shown with -vv)."""
        if self.verbose >= 2 and not self.quiet:
            self._emit(f"    {msg}")

    def warn(self, msg: str) -> None:
        self._emit(f"torfetch: warning: {msg}")

    def file(self, filename: str, checks: Sequence[str] = ()) -> "FileProgress":
        """The progress line of one file: ``with reporter.file(name, checks) as p: p.add(n); p.done(c)``."""
        return FileProgress(self, filename, tuple(checks))

    def _emit(self, line: str) -> None:
        # Everything we print may contain remote text: keep it one clean line each.
        active = self._active
        if active is not None and active.drawn:
            self._write(ERASE)
        for part in line.split("\n"):
            self._write(sanitise(part, max_len=500) + "\n")
        if active is not None and active.drawn:
            active.draw(force=True)

    def _write(self, text: str) -> None:
        if self.stream is None:
            return  # fd 2 was closed when we started (sys.stderr is None): nowhere to write
        try:
            self.stream.write(text)
            self.stream.flush()
        except (OSError, ValueError):
            pass  # a closed stderr must not turn a good download into a failure


@dataclass
class FileProgress:
    reporter: Reporter
    filename: str
    checks: tuple[str, ...]
    nbytes: int = 0
    completed: list[str] = field(default_factory=list)
    verdict: str | None = None
    drawn: bool = False
    _start: float = 0.0
    _last_draw: float | None = None

    def __enter__(self) -> "FileProgress":
        self._start = self.reporter.clock()
        self.reporter._active = self
        self.draw(force=True)
        return self

    def __exit__(self, typ: type | None, exc: BaseException | None, tb: object) -> None:
        r = self.reporter
        r._active = None
        if not r.shows_progress:
            return
        if exc is None and self.verdict is not None:
            r._write(ERASE + format_verdict(self.filename, self.nbytes, self.verdict, width=r.line_width()) + "\n")
        elif self.drawn:
            r._write(ERASE)  # the error line that follows replaces the progress line
        self.drawn = False

    def add(self, n: int) -> None:
        self.nbytes += n
        self.draw()

    def done(self, check: str) -> None:
        if check not in self.completed:
            self.completed.append(check)
        self.draw(force=True)

    def finish(self, verdict: str) -> None:
        """The file was handed over; the verdict replaces the progress line when the context closes."""
        self.verdict = verdict

    def draw(self, *, force: bool = False) -> None:
        r = self.reporter
        if not r.shows_progress:
            return
        now = r.clock()
        if not force and self._last_draw is not None and now - self._last_draw < 1.0 / r.redraws_per_second:
            return
        self._last_draw = now
        line = format_progress(self.filename, self.nbytes, now - self._start, self.checks, self.completed,
                               width=r.line_width())
        r._write(ERASE + line)
        self.drawn = True
