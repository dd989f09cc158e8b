"""Reading a small local file named by the user (a key, a torrc, the config): capped, never hanging.

``--pubkey-file /dev/zero`` must not grow to gigabytes and a FIFO with no writer must not block the run,
so the file is opened with ``O_NONBLOCK`` (a FIFO opens at once; the flag is dropped again for a regular
file), checked with ``fstat`` on the opened descriptor to be a regular file, and read up to a cap.
Every failure is a :class:`ConfigError` naming what the file is for, its path and why.
"""

from __future__ import annotations

import errno
import os
import stat
from dataclasses import dataclass
from pathlib import Path

from .errors import ConfigError

KEY_FILE_MAX_BYTES = 64 * 1024  # PEM and minisign .pub files are under 1 KiB


@dataclass(frozen=True)
class LocalFile:
    path: Path
    data: bytes
    st: os.stat_result


def read_local_file(path: str | os.PathLike[str], *, what: str, max_bytes: int = KEY_FILE_MAX_BYTES,
                    follow_symlinks: bool = True) -> LocalFile:
    """Read a regular file of at most ``max_bytes``; ``what`` names it in errors (``--pubkey-file``)."""
    p = Path(os.path.expanduser(os.fspath(path)))
    flags = os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC | (0 if follow_symlinks else os.O_NOFOLLOW)
    try:
        fd = os.open(p, flags)
    except OSError as exc:
        raise ConfigError(_open_error(what, p, exc)) from exc
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise ConfigError(f"{what} {p} is not a regular file")
        os.set_blocking(fd, True)
        chunks: list[bytes] = []
        total = 0
        while total <= max_bytes:
            chunk = os.read(fd, min(64 * 1024, max_bytes + 1 - total))
            if not chunk:
                break
            chunks.append(chunk)
            total += len(chunk)
        if total > max_bytes:
            raise ConfigError(f"{what} {p} is larger than {max_bytes} bytes")
        return LocalFile(p, b"".join(chunks), st)
    except OSError as exc:
        raise ConfigError(f"cannot read {what} {p}: {exc.strerror or exc}") from exc
    finally:
        os.close(fd)


def read_local_text(path: str | os.PathLike[str], *, what: str, max_bytes: int = KEY_FILE_MAX_BYTES) -> str:
    """As :func:`read_local_file`, decoded as UTF-8 (a typed error otherwise)."""
    f = read_local_file(path, what=what, max_bytes=max_bytes)
    return decode_text(f.data, what=f"{what} {f.path}")


def decode_text(data: bytes, *, what: str) -> str:
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{what} is not UTF-8 text (bad byte at offset {exc.start})") from None
    if "\x00" in text:
        raise ConfigError(f"{what} contains a NUL byte: not a text file")
    return text


def _open_error(what: str, p: Path, exc: OSError) -> str:
    if exc.errno == errno.ENOENT:
        return f"{what} {p} does not exist"
    if exc.errno == errno.ELOOP:
        return f"{what} {p} is a symbolic link, which is not allowed here"
    if exc.errno == errno.EACCES:
        return f"cannot read {what} {p}: permission denied (running as {_user()})"
    return f"cannot read {what} {p}: {exc.strerror or exc}"


def _user() -> str:
    try:
        import pwd

        return pwd.getpwuid(os.geteuid()).pw_name
    except (KeyError, ImportError):
        return f"uid {os.geteuid()}"
