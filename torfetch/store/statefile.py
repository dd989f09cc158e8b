"""One small JSON state file beside its lock file: the file handling the log and Sigsum head stores share.

Never through a symlink and only a regular file (a FIFO would block, a device mislead), read with a size cap,
written to a temporary file in the same directory and renamed over (fsync'd, directory too), all under an
exclusive ``flock`` on the lock file. What the bytes mean is the caller's business.
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import os
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from ..errors import StateError
from .output import fsync_directory


class StateFile:
    def __init__(self, directory: Path, name: str, lock_name: str, what: str) -> None:
        self.directory = Path(directory)
        self.path = self.directory / name
        self.lock_path = self.directory / lock_name
        self.what = what  # "log state", "Sigsum state": for messages

    def open_nofollow(self, path: Path, flags: int) -> int:
        try:
            fd = os.open(path, flags | os.O_NOFOLLOW | os.O_CLOEXEC | os.O_NONBLOCK, 0o600)
        except OSError as exc:
            if exc.errno == errno.ELOOP:  # the last component is a symlink
                raise StateError(f"{path} is a symbolic link: the {self.what} is never opened through one",
                                 hint="replace it by the file itself, or use --state-dir") from exc
            raise
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            os.close(fd)
            raise StateError(f"{path} is not a regular file", hint="remove it, or use --state-dir")
        return fd

    def read(self, max_bytes: int) -> bytes | None:
        """The file's bytes (at most ``max_bytes + 1``, so the caller sees an oversized one), None if missing."""
        try:
            fd = self.open_nofollow(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return None
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc
        try:
            with os.fdopen(fd, "rb") as f:
                return f.read(max_bytes + 1)
        except OSError as exc:
            raise StateError(f"cannot read {self.path}: {exc.strerror}") from exc

    def write(self, data: bytes) -> None:
        fd, tmp = tempfile.mkstemp(prefix=f".{self.path.stem}.", suffix=".tmp", dir=self.directory)
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(data)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)  # replaces a symlink itself, never writes through it
            fsync_directory(self.directory)
        except OSError as exc:
            with contextlib.suppress(OSError):
                os.unlink(tmp)
            raise StateError(f"cannot write {self.path}: {exc.strerror}") from exc

    @contextlib.contextmanager
    def locked(self, *, wait: bool = True) -> Iterator[None]:
        """Exclusive access; ``wait=False`` raises BlockingIOError when another process holds the lock."""
        try:
            self.directory.mkdir(parents=True, exist_ok=True, mode=0o700)
            fd = self.open_nofollow(self.lock_path, os.O_RDWR | os.O_CREAT)
        except OSError as exc:
            raise StateError(f"cannot open the {self.what} in {self.directory}: {exc.strerror}",
                             hint="use --state-dir to choose a writable directory") from exc
        try:
            fcntl.flock(fd, fcntl.LOCK_EX if wait else fcntl.LOCK_EX | fcntl.LOCK_NB)
            yield
        finally:
            os.close(fd)  # releases the lock
