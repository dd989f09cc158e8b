"""The network part of a root prefetch runs as pacman 7's DownloadUser, as pacman 7 runs its own downloads.

Why: pacman 7 runs XferCommand (torfetch) as ``DownloadUser`` (Arch: ``alpm``), and torfetch's state (the
remembered log heads in /var/lib/torfetch) belongs to that user. A prefetch that ran as root would write that
state as root, and every later XferCommand run as alpm would fail on it; it would also parse everything the
network sends as root. So, with a DownloadUser in pacman.conf and euid 0:

1. root makes a private staging directory in CacheDir (``torfetch-prefetch-XXXXXX``, 0700, owned by the
   DownloadUser), on CacheDir's file system so that placing a file is a rename;
2. a forked child drops to the DownloadUser (setgroups, setgid, setuid), fetches and verifies every package
   into it exactly as the unprivileged path does, and reports the outcomes on a pipe;
3. root takes each verified file (a regular file owned by the DownloadUser, opened without following links),
   makes it root's and 0644 (so no process of that user can write it any more), checks that its bytes still
   have the sync db's sha256, and renames it to its final name in CacheDir; then removes the staging directory.
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import json
import os
import pwd
import signal
import stat
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError, LocalStorageError, TorfetchError, VerificationError

if TYPE_CHECKING:
    from .prefetch import Lines, Plan

MAX_REPORT_BYTES = 16 * 1024 * 1024
STAGING_PREFIX = "torfetch-prefetch-"


@dataclass(frozen=True)
class DownloadUser:
    name: str
    uid: int
    gid: int


def download_user(pacman_conf: Path) -> DownloadUser | None:
    """pacman.conf's DownloadUser as pacman reads it (``pacman-conf``); None for pacman 6 or when unset."""
    try:
        r = subprocess.run(["pacman-conf", "--config", str(pacman_conf), "DownloadUser"], capture_output=True,
                           check=False, stdin=subprocess.DEVNULL, timeout=60)
    except (OSError, subprocess.TimeoutExpired):
        return None
    name = r.stdout.decode("utf-8", "replace").strip().splitlines()[:1]
    if r.returncode != 0 or not name or not name[0].strip():
        return None  # pacman 6's pacman-conf does not know the directive: no DownloadUser
    try:
        pw = pwd.getpwnam(name[0].strip())
    except KeyError:
        raise ConfigError(f"{pacman_conf}: DownloadUser {name[0].strip()[:64]} does not exist") from None
    if pw.pw_uid == 0:
        return None
    return DownloadUser(pw.pw_name, pw.pw_uid, pw.pw_gid)


class ChildError(TorfetchError):
    """An error the DownloadUser child reported: its exit code and check as it had them."""

    def __init__(self, exit_code: int, check: str, message: str) -> None:
        super().__init__(message)
        self.exit_code, self.check = exit_code, check


def _error(exc: TorfetchError) -> list:
    return [exc.exit_code, exc.check, exc.message]


def _child(user: DownloadUser, ns: argparse.Namespace, plan: "Plan", staging: Path, line: "Lines", w: int) -> int:
    import trio

    from ..lifecycle import run_interruptible
    from ..workflow import first_error
    from .prefetch import fetch_jobs

    os.setgroups([])
    os.setgid(user.gid)
    os.setuid(user.uid)
    fatal = None
    try:
        trio.run(lambda: run_interruptible(lambda: fetch_jobs(ns, plan.jobs, staging, line),
                                           output_name="the rest of the prefetch"))
    except TorfetchError as exc:
        fatal = _error(exc)
    except BaseExceptionGroup as eg:
        err = first_error(eg)
        if not isinstance(err, TorfetchError):
            raise
        fatal = _error(err)
    doc = {"fatal": fatal, "jobs": [[j.outcome.state, j.outcome.size, list(j.outcome.checks),
                                     _error(j.outcome.error) if j.outcome.error else None] for j in plan.jobs]}
    data = json.dumps(doc).encode()
    view = memoryview(data)
    while view:
        view = view[os.write(w, view):]
    return 0


def fetch_as(user: DownloadUser, ns: argparse.Namespace, plan: "Plan", line: "Lines") -> None:
    """Steps 1-3 above; fills in the plan's outcomes. A failure of the whole run is raised (one line)."""
    cachedir = plan.result.cachedir
    try:
        staging = tempfile.mkdtemp(prefix=STAGING_PREFIX, dir=cachedir)
        os.chown(staging, user.uid, user.gid)
    except OSError as exc:
        raise LocalStorageError(f"cannot make a directory for {user.name} in {cachedir}: {exc.strerror}") from exc
    try:
        r, w = os.pipe()
        for stream in (sys.stdout, sys.stderr):
            stream.flush()
        pid = os.fork()
        if pid == 0:  # the child: never returns into the caller's stack
            code = 70
            try:
                os.close(r)
                code = _child(user, ns, plan, Path(staging), line, w)
            except BaseException as exc:  # noqa: BLE001 - the child must exit, whatever happened
                with contextlib.suppress(Exception):
                    print(f"torfetch prefetch: internal error as {user.name}: {type(exc).__name__}: {exc}",
                          file=sys.stderr, flush=True)
            finally:
                os._exit(code)
        os.close(w)
        data, status = _wait(pid, r)
        _apply(plan, data, status, user)
        _place_all(plan, staging, user, line)
    finally:
        _remove_staging(staging)


def _wait(pid: int, r: int) -> tuple[bytes, int]:
    """Read the child's report and reap it; SIGINT/SIGTERM/SIGHUP meanwhile go to the child, which cleans up."""
    def forward(signum: int, frame: object) -> None:
        with contextlib.suppress(OSError):
            os.kill(pid, signum)

    saved = {s: signal.signal(s, forward) for s in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP)
             if signal.getsignal(s) is not signal.SIG_IGN}
    try:
        chunks: list[bytes] = []
        size = 0
        while size <= MAX_REPORT_BYTES:
            chunk = os.read(r, 1 << 16)
            if not chunk:
                break
            chunks.append(chunk)
            size += len(chunk)
        os.close(r)
        _, status = os.waitpid(pid, 0)
    finally:
        for s, h in saved.items():
            signal.signal(s, h)
    return b"".join(chunks), status


def _apply(plan: "Plan", data: bytes, status: int, user: DownloadUser) -> None:
    code = os.waitstatus_to_exitcode(status)
    try:
        doc = json.loads(data) if data else None
    except ValueError:
        doc = None
    if not isinstance(doc, dict) or len(doc.get("jobs", ())) != len(plan.jobs):
        raise TorfetchError(f"the prefetch as {user.name} ended without a report (exit status {code})")
    if doc.get("fatal"):
        raise ChildError(*doc["fatal"])
    for job, (state, size, checks, error) in zip(plan.jobs, doc["jobs"]):
        out = job.outcome
        out.state, out.size, out.checks = state, size, tuple(checks)
        out.error = ChildError(*error) if error else None


def _place_all(plan: "Plan", staging: str, user: DownloadUser, line: "Lines") -> None:
    cachedir = plan.result.cachedir
    sfd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
    cfd = os.open(cachedir, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        for job in plan.jobs:
            if job.outcome.state != "placed":
                continue
            try:
                _place(sfd, cfd, job.outcome.filename, job.answer.sha256 or "", user)
            except TorfetchError as exc:
                line.failed(job.outcome, exc)
            except OSError as exc:
                line.failed(job.outcome, LocalStorageError(f"cannot place {job.outcome.filename} in {cachedir}: "
                                                           f"{exc.strerror}"))
        os.fsync(cfd)
    finally:
        os.close(sfd)
        os.close(cfd)


def _place(sfd: int, cfd: int, name: str, sha256: str, user: DownloadUser) -> None:
    st = os.stat(name, dir_fd=sfd, follow_symlinks=False)
    if not stat.S_ISREG(st.st_mode) or st.st_uid != user.uid:
        raise VerificationError(f"{name}: what {user.name} left is not its own regular file: not placed")
    fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=sfd)
    try:
        os.fchown(fd, 0, 0)  # from here no process of the DownloadUser can open it for writing
        os.fchmod(fd, 0o644)
        h = hashlib.sha256()
        while chunk := os.read(fd, 1 << 20):
            h.update(chunk)
        if h.hexdigest() != sha256:
            raise VerificationError(f"{name}: the file {user.name} verified no longer has the sync db's sha256 "
                                    f"{sha256}: not placed")
    finally:
        os.close(fd)
    os.rename(name, name, src_dir_fd=sfd, dst_dir_fd=cfd)


def _remove_staging(staging: str) -> None:
    """Files only (what a failed run left), then the directory; never through a link, never recursive."""
    with contextlib.suppress(OSError):
        dfd = os.open(staging, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC)
        try:
            for name in os.listdir(dfd)[:100_000]:
                with contextlib.suppress(OSError):
                    if not stat.S_ISDIR(os.stat(name, dir_fd=dfd, follow_symlinks=False).st_mode):
                        os.unlink(name, dir_fd=dfd)
        finally:
            os.close(dfd)
        os.rmdir(staging)
