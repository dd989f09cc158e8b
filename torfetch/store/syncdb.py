"""Find a package's sha256 in pacman's sync dbs before its download ends (blocking: run it in a thread).

The sha256 a sync db lists lets the signature check and the log proof start
while the package still streams; the workflow then requires the downloaded
bytes to have exactly that hash. Anything that keeps the db from answering (no
pacman.conf, no db, the filename not listed, a db that does not parse, two dbs
that disagree) is not an error: the lookups just wait for the download's hash.
"""

from __future__ import annotations

import dataclasses
import os
import stat
import threading
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from ..errors import TorfetchError
from ..localfile import decode_text, read_local_file
from ..pacman.conf import MAX_CONF_BYTES, PacmanConf, parse_pacman_conf
from ..pacman.repodb import RepoDbLimits, RepoDbReader

CHUNK = 64 * 1024  # small, so a hit early in the db stops the read early
# a db is read whole per fetch; Arch's largest (extra.db) is ~8 MiB
DB_LIMITS = RepoDbLimits(max_compressed=256 * 1024 * 1024, max_decompressed=1024 * 1024 * 1024)


@dataclass(frozen=True)
class SyncDbAnswer:
    sha256: str | None  # lowercase hex, None: no answer
    db: str  # the db that listed it ("core.db"), or ""
    note: str  # for -v: where the answer came from, or why there is none
    csize: int | None = None  # %CSIZE%, where the db lists it (lookup_many: the prefetch starts the largest first)


def read_pacman_conf(pacman_conf: Path, *, dbpath: str | None = None) -> PacmanConf:
    """pacman.conf's DBPath and repositories (read capped, a regular file only); ``dbpath`` replaces its DBPath
    (pacman's ``--dbpath``). Raises TorfetchError."""
    f = read_local_file(pacman_conf, what="--pacman-conf", max_bytes=MAX_CONF_BYTES)
    conf = parse_pacman_conf(decode_text(f.data, what=f"--pacman-conf {pacman_conf}"), source=str(pacman_conf))
    if dbpath is not None:
        conf = dataclasses.replace(conf, dbpath=dbpath.rstrip("/") + "/")
    return conf


def lookup_sha256(pacman_conf: Path, filename: str, stop: threading.Event | None = None) -> SyncDbAnswer:
    """The %SHA256SUM% the sync dbs of ``pacman_conf`` list for ``filename`` (blocking, bounded)."""
    try:
        conf = read_pacman_conf(pacman_conf)
    except TorfetchError as exc:
        return SyncDbAnswer(None, "", f"no sync db lookup: {exc.message}")
    found: dict[str, str] = {}  # db file name -> sha256
    read = 0
    for path in conf.sync_db_paths():
        if stop is not None and stop.is_set():
            return SyncDbAnswer(None, "", "sync db lookup stopped: the download ended first")
        try:
            sha = _find_in_db(Path(path), filename, stop)
        except (OSError, TorfetchError):
            continue  # a missing or unreadable db: pacman would not have picked the package from it
        read += 1
        if sha is not None:
            found[os.path.basename(path)] = sha
    if not found:
        return SyncDbAnswer(None, "", _not_found(filename, read, pacman_conf, conf.dbpath) +
                            ": the lookups wait for the download")
    if len(set(found.values())) > 1:
        return SyncDbAnswer(None, "", f"sync dbs {', '.join(sorted(found))} list different sha256 for {filename}: "
                            "the lookups wait for the download")
    db = next(iter(found))
    return SyncDbAnswer(found[db], db, f"sync db {db} lists sha256 {found[db]} for {filename}")


def _find_in_db(path: Path, filename: str, stop: threading.Event | None) -> str | None:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        os.set_blocking(fd, True)
        reader = RepoDbReader(DB_LIMITS, source=path.name)
        for _ in range(DB_LIMITS.max_compressed // CHUNK + 2):
            if stop is not None and stop.is_set():
                return None
            chunk = os.read(fd, CHUNK)
            if not chunk:
                break
            for pkg in reader.feed(chunk):
                if pkg.filename == filename:
                    return pkg.sha256  # a filename is listed once per db
        reader.finish()
        return None
    finally:
        os.close(fd)


def lookup_many(pacman_conf: Path, filenames: Iterable[str], *, dbpath: str | None = None) -> dict[str, SyncDbAnswer]:
    """:func:`lookup_sha256` for many files at once (``torfetch prefetch``): each db is read once, not per file.

    Same rules: a file no db lists, or that two dbs list with different sha256, has no answer. ``dbpath``
    replaces pacman.conf's DBPath (pacman's ``--dbpath``).
    """
    wanted = set(filenames)
    try:
        conf = read_pacman_conf(pacman_conf, dbpath=dbpath)
    except TorfetchError as exc:
        return {name: SyncDbAnswer(None, "", f"no sync db lookup: {exc.message}") for name in wanted}
    found: dict[str, dict[str, str]] = {name: {} for name in wanted}  # filename -> db -> sha256
    sizes: dict[str, int] = {}
    read = 0
    for path in conf.sync_db_paths():
        try:
            listed = _scan_db(Path(path), wanted)
        except (OSError, TorfetchError):
            continue
        read += 1
        for name, (sha, csize) in listed.items():
            found[name][os.path.basename(path)] = sha
            if csize is not None:
                sizes[name] = csize
    answers: dict[str, SyncDbAnswer] = {}
    for name, by_db in found.items():
        if not by_db:
            answers[name] = SyncDbAnswer(None, "", _not_found(name, read, pacman_conf, conf.dbpath))
        elif len(set(by_db.values())) > 1:
            answers[name] = SyncDbAnswer(None, "", f"sync dbs {', '.join(sorted(by_db))} list different sha256 "
                                         f"for {name}")
        else:
            db = next(iter(by_db))
            answers[name] = SyncDbAnswer(by_db[db], db, f"sync db {db} lists sha256 {by_db[db]} for {name}",
                                         csize=sizes.get(name))
    return answers


def missing_sync_dbs(pacman_conf: Path, *, dbpath: str | None = None) -> list[str]:
    """The sync db files of pacman.conf's repositories that do not exist (pacman -Sup then plans without them,
    silently); [] if pacman.conf cannot be read here (pacman itself will have said so)."""
    try:
        conf = read_pacman_conf(pacman_conf, dbpath=dbpath)
    except TorfetchError:
        return []
    return [p for p in conf.sync_db_paths() if not os.path.lexists(p)]


def _scan_db(path: Path, wanted: set[str]) -> dict[str, tuple[str, int | None]]:
    fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    out: dict[str, tuple[str, int | None]] = {}
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return out
        os.set_blocking(fd, True)
        reader = RepoDbReader(DB_LIMITS, source=path.name)
        for _ in range(DB_LIMITS.max_compressed // CHUNK + 2):
            chunk = os.read(fd, CHUNK * 16)
            if not chunk:
                break
            for pkg in reader.feed(chunk):
                if pkg.filename in wanted:
                    out[pkg.filename] = (pkg.sha256, pkg.csize)
        reader.finish()
        return out
    finally:
        os.close(fd)


__all__ = ["SyncDbAnswer", "lookup_many", "lookup_sha256"]


def _not_found(filename: str, read: int, pacman_conf: object, dbpath: str) -> str:
    if read:
        return f"{filename} is not listed in {read} sync db(s) of {pacman_conf}"
    return (f"no readable sync db under {dbpath}sync/ (the DBPath of {pacman_conf}; --pacman-conf or "
            f"pacman_conf names another) lists {filename}")
