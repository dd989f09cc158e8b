"""Hand a file to pacman atomically, or leave nothing at all.

pacman passes ``-O <dest>.part`` and never deletes a partial file, so a stale
``.part`` from an earlier failed try may be there. We never read or append to
it: it is removed first, the body goes to a private temporary file in the same
directory, and only after every check passed is that file fsynced and renamed
onto OUTPUT. On any failure the temporary file is removed and OUTPUT stays
absent.
"""

from __future__ import annotations

import os
import tempfile
from pathlib import Path

from ..errors import TorfetchError

TEMP_PREFIX = ".torfetch-"
TEMP_SUFFIX = ".tmp"


class OutputError(TorfetchError):
    exit_code = 1
    check = "output"


def temp_prefix(output: Path, pid: int | None = None) -> str:
    """Temp names carry our PID, so a last-resort cleanup removes only our own files."""
    return f"{TEMP_PREFIX}{output.name[:100]}.{os.getpid() if pid is None else pid}."


def remove_leftovers(output: Path) -> None:
    """Last resort after a failure (e.g. a signal outside any task): leave nothing."""
    output = Path(output)
    directory = output.parent if str(output.parent) else Path(".")
    prefix = temp_prefix(output)
    try:
        names = os.listdir(directory)
    except OSError:
        names = []
    for name in names[:100000]:
        if name.startswith(prefix) and name.endswith(TEMP_SUFFIX):
            _unlink_quietly(directory / name)
    try:
        _unlink_quietly(output)
    except OSError:
        pass


def fsync_directory(directory: Path | str) -> None:
    """Make a rename inside ``directory`` durable (the directory entry itself)."""
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(dfd)
    finally:
        os.close(dfd)


def _unlink_quietly(path: Path | str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class AtomicOutput:
    """Context manager: ``write`` chunks, ``commit`` on success.

    Leaving the block without ``commit`` (an exception, a cancellation,
    Ctrl-C) removes the temporary file and makes sure OUTPUT does not exist.
    """

    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.temp_path: Path | None = None
        self._fd: int | None = None
        self.size = 0
        self.committed = False

    def __enter__(self) -> "AtomicOutput":
        directory = self.output.parent if str(self.output.parent) else Path(".")
        # A stale file at OUTPUT must not survive a failed run.
        try:
            if self.output.is_symlink() or self.output.exists():
                _unlink_quietly(self.output)
        except OSError as exc:
            raise OutputError(f"cannot remove stale {self.output}: {exc.strerror}") from exc
        try:
            fd, name = tempfile.mkstemp(prefix=temp_prefix(self.output), suffix=TEMP_SUFFIX, dir=directory)
        except OSError as exc:
            raise OutputError(f"cannot create a temporary file in {directory}: {exc.strerror}") from exc
        self._fd = fd
        self.temp_path = Path(name)
        return self

    def write(self, chunk: bytes) -> None:
        assert self._fd is not None, "write() outside the context"
        view = memoryview(chunk)
        while view:
            n = os.write(self._fd, view)
            view = view[n:]
        self.size += len(chunk)

    def commit(self) -> None:
        assert self._fd is not None and self.temp_path is not None
        try:
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.chmod(self.temp_path, 0o644)
            os.replace(self.temp_path, self.output)
            fsync_directory(self.output.parent if str(self.output.parent) else ".")
        except OSError as exc:
            raise OutputError(f"cannot write {self.output}: {exc.strerror}") from exc
        self.committed = True

    def discard(self) -> None:
        if self._fd is not None:
            try:
                os.close(self._fd)
            except OSError:
                pass
            self._fd = None
        if self.temp_path is not None:
            _unlink_quietly(self.temp_path)
        if not self.committed:
            _unlink_quietly(self.output)

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.discard()
        elif self._fd is not None:  # pragma: no cover - commit closes it
            os.close(self._fd)
