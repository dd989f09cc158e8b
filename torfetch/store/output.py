"""Hand a file to pacman atomically, or leave nothing at all.

pacman passes ``-O <dest>.part`` and never deletes a partial file, so a stale
``.part`` from an earlier failed try may be there. We never read or append to
it: it is removed first, the body goes to a private temporary file in the same
directory, and only after every check passed is that file fsynced and renamed
onto OUTPUT. On any failure the temporary file is removed and OUTPUT stays
absent.

Only a regular file (or a symlink, which is replaced, never followed) at OUTPUT
is ever removed: ``-O /dev/null``, a FIFO or a directory is refused.

Temporary files are named ``.torfetch-<name>.<pid>.<random>.tmp``. A run that
was SIGKILLed cannot remove its own, so every run first sweeps OUTPUT's
directory for files of that exact shape whose PID is no longer alive, owned by
this user, regular files only (looked at with ``lstat`` through a directory
descriptor, so a symlink is never followed).
"""

from __future__ import annotations

import errno
import itertools
import os
import re
import stat
import tempfile
from pathlib import Path

from ..errors import LocalStorageError, OutputPathError

TEMP_PREFIX = ".torfetch-"
TEMP_SUFFIX = ".tmp"
# Bytes of OUTPUT's name kept in the temp name: with the prefix, PID, mkstemp's
# 8 random characters and the suffix the temp name stays far below NAME_MAX (255).
TEMP_NAME_BYTES = 100
# The sweep looks at this many directory entries at most (a pacman cache holds thousands of packages).
SWEEP_MAX_ENTRIES = 100_000
SWEEP_MAX_REMOVALS = 1_000

# .torfetch-<name>.<pid>.<mkstemp's 8 characters>.tmp ; a PID has at most 7 digits (pid_max <= 2**22)
_TEMP_RE = re.compile(r"\.torfetch-.*\.([1-9][0-9]{0,6})\.[a-z0-9_]{8}\.tmp", re.DOTALL)


def _directory(output: Path) -> Path:
    return output.parent if str(output.parent) else Path(".")


def temp_prefix(output: Path, pid: int | None = None) -> str:
    """Temp names carry our PID, so a cleanup removes only files of processes that are gone.

    The name is cut to ``TEMP_NAME_BYTES`` bytes (not characters: a 255-byte
    name of 4-byte characters must still give a temp name within NAME_MAX),
    at a character boundary.
    """
    raw = os.fsencode(Path(output).name)[:TEMP_NAME_BYTES]
    name = raw.decode("utf-8", errors="ignore")  # drops a character cut in half (and undecodable bytes)
    return f"{TEMP_PREFIX}{name}.{os.getpid() if pid is None else pid}."


def temp_pid(name: str) -> int | None:
    """The PID in one of torfetch's temp names, or None if ``name`` is not one."""
    m = _TEMP_RE.fullmatch(name)
    return int(m.group(1)) if m else None


def pid_alive(pid: int) -> bool:
    """True unless no process has this PID (another user's process counts as alive)."""
    if pid <= 0:
        return True  # never a real PID of ours: leave such a file alone
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OverflowError):
        return True
    return True


def sweep_dead_temps(directory: Path | str, *, max_entries: int = SWEEP_MAX_ENTRIES,
                     uid: int | None = None) -> list[str]:
    """Remove temp files left in ``directory`` by torfetch runs that died (SIGKILL, power loss).

    Removed only if all hold: the name has torfetch's exact temp shape, its PID
    is not alive, it is a regular file (``lstat`` via the directory descriptor:
    a symlink is never followed), and it is owned by this user. Best effort:
    errors are ignored (this is housekeeping; creating our own temp file
    reports a broken directory clearly). ``uid`` (default: ours) is the
    owner a file must have. Returns the names removed.
    """
    removed: list[str] = []
    try:
        dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return removed
    try:
        uid = os.geteuid() if uid is None else uid
        with os.scandir(dfd) as entries:
            for entry in itertools.islice(entries, max_entries):
                name = entry.name
                if not name.startswith(TEMP_PREFIX):
                    continue
                pid = temp_pid(name)
                if pid is None or pid_alive(pid):
                    continue
                try:
                    st = os.stat(name, dir_fd=dfd, follow_symlinks=False)
                    if not stat.S_ISREG(st.st_mode) or st.st_uid != uid:
                        continue
                    # unlink never follows a symlink; if the entry was swapped since the lstat, whoever
                    # could swap it could also have removed it: nothing is gained against us.
                    os.unlink(name, dir_fd=dfd)
                except OSError:
                    continue
                removed.append(name)
                if len(removed) >= SWEEP_MAX_REMOVALS:
                    break
    except OSError:
        pass
    finally:
        os.close(dfd)
    return removed


def check_output_path(output: Path) -> None:
    """Refuse an OUTPUT that is neither absent, a regular file nor a symlink (never unlinked)."""
    try:
        st = os.lstat(output)
    except FileNotFoundError:
        return
    except OSError as exc:
        raise OutputPathError(f"cannot inspect -O {output}: {exc.strerror}") from exc
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        return
    raise OutputPathError(f"-O {output} is {_kind(st.st_mode)}, not a regular file: refusing to replace it")


def _kind(mode: int) -> str:
    for test, what in ((stat.S_ISDIR, "a directory"), (stat.S_ISCHR, "a character device"),
                       (stat.S_ISBLK, "a block device"), (stat.S_ISFIFO, "a FIFO"), (stat.S_ISSOCK, "a socket")):
        if test(mode):
            return what
    return "not a regular file"


def _remove_stale_output(output: Path) -> None:
    """Unlink OUTPUT if it is a regular file or a symlink; anything else is left alone."""
    try:
        st = os.lstat(output)
    except FileNotFoundError:
        return
    if stat.S_ISREG(st.st_mode) or stat.S_ISLNK(st.st_mode):
        _unlink_quietly(output)


def remove_leftovers(output: Path) -> None:
    """Last resort after a failure outside the file's own cleanup: our own temp files and a stale OUTPUT.

    Dead runs' temp files go too: a run that failed before it began writing
    (Tor down, say) still sweeps what a SIGKILLed predecessor left.
    """
    output = Path(output)
    prefix = temp_prefix(output)
    sweep_dead_temps(_directory(output))
    try:
        dfd = os.open(_directory(output), os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    except OSError:
        return
    try:
        with os.scandir(dfd) as entries:
            for entry in itertools.islice(entries, SWEEP_MAX_ENTRIES):
                if entry.name.startswith(prefix) and entry.name.endswith(TEMP_SUFFIX):
                    try:
                        if stat.S_ISREG(os.stat(entry.name, dir_fd=dfd, follow_symlinks=False).st_mode):
                            os.unlink(entry.name, dir_fd=dfd)
                    except OSError:
                        pass
    except OSError:
        pass
    finally:
        os.close(dfd)
    try:
        _remove_stale_output(output)
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


def _storage_error(action: str, directory: Path, exc: OSError) -> LocalStorageError:
    code = errno.errorcode.get(exc.errno or 0, "")
    why = f"{exc.strerror or exc}" + (f" ({code})" if code else "")
    hint = None
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        hint = f"free some space in {directory} (pacman's cache: 'paccache -r' or 'pacman -Sc'), then retry"
    return LocalStorageError(f"{action} in {directory}: {why}", hint=hint)


class AtomicOutput:
    """Context manager: ``write`` chunks, ``commit`` on success.

    Leaving the block without ``commit`` (an exception, a cancellation, a
    signal) removes the temporary file and makes sure OUTPUT does not exist.
    A failing disk (ENOSPC, EDQUOT, EIO) raises ``LocalStorageError`` naming
    the directory, never an error that looks like the network's.
    """

    def __init__(self, output: Path) -> None:
        self.output = Path(output)
        self.directory = _directory(self.output)
        self.temp_path: Path | None = None
        self._fd: int | None = None
        self.size = 0
        self.committed = False

    def __enter__(self) -> "AtomicOutput":
        check_output_path(self.output)
        sweep_dead_temps(self.directory)
        # A stale file at OUTPUT must not survive a failed run.
        try:
            _remove_stale_output(self.output)
        except OSError as exc:
            raise _storage_error(f"cannot remove the stale {self.output.name}", self.directory, exc) from exc
        try:
            fd, name = tempfile.mkstemp(prefix=temp_prefix(self.output), suffix=TEMP_SUFFIX, dir=self.directory)
        except OSError as exc:
            raise _storage_error("cannot create a temporary file", self.directory, exc) from exc
        self._fd = fd
        self.temp_path = Path(name)
        return self

    def write(self, chunk: bytes) -> None:
        assert self._fd is not None, "write() outside the context"
        view = memoryview(chunk)
        try:
            while view:
                n = os.write(self._fd, view)
                view = view[n:]
        except OSError as exc:
            raise _storage_error(f"cannot write {self.output.name}", self.directory, exc) from exc
        self.size += len(chunk)

    def fileno(self) -> int:
        """The temporary file's descriptor (for writeback hints; writes go through ``write``)."""
        assert self._fd is not None, "fileno() outside the context"
        return self._fd

    def commit(self) -> None:
        assert self._fd is not None and self.temp_path is not None
        try:
            # by descriptor: the path could have been swapped by anyone who can write the directory
            os.fchmod(self._fd, 0o644)
            os.fsync(self._fd)
            os.close(self._fd)
            self._fd = None
            os.replace(self.temp_path, self.output)
            fsync_directory(self.directory)
        except OSError as exc:
            raise _storage_error(f"cannot save {self.output.name}", self.directory, exc) from exc
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
            try:
                _remove_stale_output(self.output)
            except OSError:
                pass

    def __exit__(self, *exc: object) -> None:
        if not self.committed:
            self.discard()
        elif self._fd is not None:  # pragma: no cover - commit closes it
            os.close(self._fd)
