"""`torfetch prefetch`: download and verify what an upgrade will fetch, several packages at once, into CacheDir.

    torfetch prefetch [--pacman-conf FILE] [--jobs N] [fetch options] [-- pacman args]

pacman runs its XferCommand for one file at a time (``ParallelDownloads`` does not apply to it), and over
Tor each file costs several round trips. A package that is already complete in CacheDir is not downloaded
again, so this command puts every package of the upgrade there first, verified exactly as the XferCommand
path verifies it (the same per-file pipeline, ``workflow.fetch_in_session``), ``--jobs`` at a time, in one
process: one Tor context, one Network (a circuit per purpose and service, kept-alive connections, as a
single fetch has; ``--isolate package`` still gives every package its own circuits), one log state.

Steps: (1) ask pacman what ``-Su`` will download (``pacman --config FILE -Sup --print-format %l``; see
``pacman/upgrade_plan.py`` for why pacman and not the dbs); (2) read each package's %SHA256SUM% from the sync
dbs, once; (3) leave out what CacheDir already holds with exactly that sha256; (4) fetch and verify the rest
concurrently, each into a temporary file in CacheDir, renamed to its final name only when every check passed
and its bytes have the sync db's sha256. A package that fails is not placed (a stale file of that name is
removed) and gets one line; the exit code is 0 only if every package was placed or already there.

Run as root with a pacman.conf that names a ``DownloadUser`` (pacman 7), the network part runs as that user
(``commands/prefetch_user.py``), as pacman 7 runs its own downloads, so that the state it writes stays the
DownloadUser's.
"""

from __future__ import annotations

import argparse
import copy
import hashlib
import os
import stat
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path

from .. import cliargs
from ..errors import NetworkError, TorfetchError, UsageError, VerificationError

DEFAULT_JOBS = 4  # Tor: a few circuits' worth of streams at once, not a burst that looks like a crawler
PLAN_TIMEOUT = 600.0  # pacman resolving a large upgrade
HASH_CHUNK = 1024 * 1024


def build_parser() -> cliargs.RecordingParser:
    from .. import cli

    p = cli.build_parser(single_file=False)
    p.prog = "torfetch prefetch"
    p.description = ("download and verify, several at once, every package 'pacman -Su' would download, into "
                     "pacman's CacheDir, so that pacman then finds them there and calls XferCommand for none of them. "
                     "The fetch options are torfetch's (and its config file's); arguments after '--' go to pacman.")
    p.epilog = "Exit codes: 0 every package placed or already cached, 1 a verification failed, 2 usage, 3 network/Tor."
    p.allow_abbrev = False  # pacman's options after '--' are never taken for abbreviations of ours
    p.add_argument("--jobs", type=cliargs.positive_int, default=DEFAULT_JOBS, metavar="N",
                   help=f"packages fetched at once (default {DEFAULT_JOBS})")
    return p


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """torfetch's arguments, and pacman's after the first ``--``."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


@dataclass
class Outcome:
    filename: str
    state: str = "failed"  # "placed", "cached" (already there with the db's sha256), "local" (file://), "failed"
    size: int = 0
    checks: tuple[str, ...] = ()
    error: TorfetchError | None = None


@dataclass
class PrefetchResult:
    cachedir: str
    outcomes: list[Outcome] = field(default_factory=list)

    def count(self, state: str) -> int:
        return sum(1 for o in self.outcomes if o.state == state)

    def exit_code(self) -> int:
        """0 only if nothing failed; else a verification failure (1) over a network one (3) over the rest."""
        errors = [o.error for o in self.outcomes if o.state == "failed" and o.error is not None]
        if not errors:
            return 0
        for cls in (VerificationError, NetworkError):
            if any(isinstance(e, cls) for e in errors):
                return cls.exit_code
        return errors[0].exit_code


# --- (1) and (2): the plan --------------------------------------------------------------------------------------


def pacman_command(pacman_conf: Path, *operation: str, pacman_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    return ["pacman", "--config", str(pacman_conf), *operation, *pacman_args]


async def _run(cmd: list[str], what: str) -> bytes:
    import trio

    try:
        with trio.fail_after(PLAN_TIMEOUT):
            r = await trio.run_process(cmd, capture_stdout=True, capture_stderr=True, check=False,
                                       stdin=subprocess.DEVNULL, env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError as exc:
        raise UsageError(f"{what}: {cmd[0]} is not installed") from exc
    except trio.TooSlowError as exc:
        raise UsageError(f"{what}: {cmd[0]} did not answer within {PLAN_TIMEOUT:g} s") from exc
    if r.returncode != 0:
        said = [ln for ln in r.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
        raise UsageError(f"{what}: {' '.join(cmd[:1] + cmd[3:4])} exited {r.returncode}"
                         + (f": {said[-1][:300]}" if said else ""))
    return r.stdout


def _cached_sha256(path: Path) -> str | None:
    """The sha256 of a regular file already at ``path`` (never through a symlink), None if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError:
        return None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return None
        h = hashlib.sha256()
        while chunk := os.read(fd, HASH_CHUNK):
            h.update(chunk)
        return h.hexdigest()
    finally:
        os.close(fd)


# --- the run --------------------------------------------------------------------------------------------------------


async def prefetch(ns: argparse.Namespace, pacman_args: list[str], *, stream=None) -> PrefetchResult:
    """Steps (1)-(4) for the namespace of :func:`build_parser` and the pacman arguments."""
    import trio

    from ..cli import options_from_args
    from ..pacman.upgrade_plan import PRINT_FORMAT, cachedirs, first_server, pacman_paths, parse_print_output
    from ..report import Reporter, format_verdict
    from ..store.syncdb import lookup_many
    from ..workflow import fetch_in_session, open_session, plan_file

    stream = stream if stream is not None else sys.stderr
    report = Reporter(verbose=ns.verbose, quiet=ns.quiet, stream=stream, tty=False)  # no redrawn lines: many files
    conf: Path = ns.pacman_conf
    paths = pacman_paths(pacman_args)
    # (1) what -Su will download, as pacman decides it (a package it found in a CacheDir is printed as a
    # file:// URL there, unchecked: the prefetch checks it against the sync db itself)
    plan = parse_print_output(await _run(
        pacman_command(conf, "-Sup", "--print-format", PRINT_FORMAT, "--noconfirm", pacman_args=pacman_args),
        "the upgrade plan"))
    # pacman puts --cachedir before pacman.conf's CacheDirs, finds a package in any, downloads into the first
    dirs = (*paths.cachedirs, *cachedirs(await _run(["pacman-conf", "--config", str(conf), "CacheDir"],
                                                   "pacman's CacheDir")))
    cachedir = dirs[0]
    result = PrefetchResult(cachedir=cachedir)
    remote = [p for p in plan if p.file_path is None or p.in_cachedir(dirs)]
    # (2) each package's sha256 from the sync dbs, every db read once
    answers = await trio.to_thread.run_sync(lambda: lookup_many(conf, [p.filename for p in remote],
                                                                dbpath=paths.dbpath))
    servers: dict[str, str] = {}

    async def mirror_url(p) -> str:
        if p.file_path is None:
            return p.url
        if p.repo not in servers:
            servers[p.repo] = first_server(await _run(
                ["pacman-conf", "--config", str(conf), "--repo", p.repo, "Server"], f"repository {p.repo}"), p.repo)
        return f"{servers[p.repo]}/{p.filename}"

    def line(text: str) -> None:
        if not ns.quiet:
            report._emit(text)

    todo = []
    for p in plan:
        out = Outcome(p.filename)
        result.outcomes.append(out)
        if p not in remote:
            out.state = "local"
            line(f"{p.filename}  left to pacman: a file:// repository, nothing to download")
            continue
        answer = answers[p.filename]
        target = Path(cachedir) / p.filename
        try:
            if answer.sha256 is None:
                raise VerificationError(f"{p.filename}: prefetch needs the sync db's sha256 to hold the download "
                                        f"to, and has none ({answer.note})")
            # (3) already there, whole: nothing to do (anything else at that name is replaced or removed)
            have = await trio.to_thread.run_sync(_cached_sha256, Path(p.file_path or target))
            if have == answer.sha256:
                out.state = "cached"
                line(f"{p.filename}  already in {os.path.dirname(p.file_path or target)} (sha256 as {answer.db} lists)")
                continue
            url = await mirror_url(p)
            if urllib.parse.urlsplit(url).scheme.lower() == "file":
                out.state = "local"
                line(f"{p.filename}  left to pacman: a file:// repository, nothing to download")
                continue
            one = copy.copy(ns)
            one.url, one.output = url, target
            opts = options_from_args(one)
            todo.append((out, opts, plan_file(opts), answer))
        except TorfetchError as exc:
            out.error = exc
            line(f"{p.filename}  not placed: {exc.check}: {exc.message}")
    if not todo:
        return result

    # (4) one session for all of them; a Tor that is missing fails the run, not each package
    limiter = trio.CapacityLimiter(ns.jobs)

    async def one(session, out: Outcome, opts, file_plan, answer) -> None:
        async with limiter:
            try:
                fetched = await fetch_in_session(opts, report, session, file_plan, db_answer=answer)
            except TorfetchError as exc:
                out.error = exc
                line(f"{out.filename}  not placed: {exc.check}: {exc.message}")
                return
        out.state, out.size, out.checks = "placed", fetched.size, tuple(fetched.checks)
        line(format_verdict(out.filename, fetched.size, "placed in CacheDir, verified: "
                            + ", ".join([*fetched.checks, ".PKGINFO", "sync db sha256"]), width=200))

    first_opts = todo[0][1]
    if first_opts.config_note:
        report.info(first_opts.config_note)
    async with open_session(first_opts, report) as session:
        async with trio.open_nursery() as nursery:
            for out, opts, file_plan, answer in todo:
                nursery.start_soon(one, session, out, opts, file_plan, answer)
    return result


def summary(result: PrefetchResult) -> str:
    failed = result.count("failed")
    parts = [f"{result.count('placed')} placed", f"{result.count('cached')} already there"]
    if result.count("local"):
        parts.append(f"{result.count('local')} local (file://)")
    parts.append(f"{failed} failed")
    return f"torfetch prefetch: {len(result.outcomes)} package(s) in the upgrade: {', '.join(parts)} (CacheDir {result.cachedir})"


def run_prefetch(argv: list[str]) -> tuple[int, PrefetchResult | None]:
    """Parse, run under trio with the signal watcher, print the summary; (exit code, result)."""
    import trio

    from ..errors import Interrupted
    from ..lifecycle import run_interruptible
    from ..workflow import first_error

    own, pacman_args = split_args(argv)
    verbose = 0
    try:
        parser = build_parser()
        ns, extra = parser.parse_known_args(own)
        verbose = ns.verbose
        pacman_args = [*extra, *pacman_args]  # options torfetch does not know are pacman's
        result = trio.run(lambda: run_interruptible(lambda: prefetch(ns, pacman_args), output_name="the prefetch"))
    except TorfetchError as exc:
        _print(exc.diagnostics() if verbose else exc.one_line())
        return exc.exit_code, None
    except BaseExceptionGroup as eg:
        err = first_error(eg)
        if isinstance(err, TorfetchError):
            _print(err.one_line())
            return err.exit_code, None
        if isinstance(err, KeyboardInterrupt):
            _print(Interrupted(2, "the prefetch").one_line())
            return 130, None
        raise
    code = result.exit_code()
    if code or not ns.quiet:
        _print(summary(result))
    return code, result


def _print(text: str) -> None:
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    return run_prefetch(list(argv))[0]
