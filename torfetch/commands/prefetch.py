"""`torfetch prefetch`: download and verify what an upgrade will fetch, several packages at once, into CacheDir.

    torfetch prefetch [--pacman-conf FILE] [--jobs N] [fetch options] [-- pacman args...]

pacman runs its XferCommand for one file at a time (``ParallelDownloads`` does not apply to it), and over
Tor each file costs several round trips. A package that is already complete in CacheDir is not downloaded
again, so this command puts every package of the upgrade there first, verified exactly as the XferCommand
path verifies it (the same per-file pipeline, ``workflow.fetch_in_session``), ``--jobs`` downloads at once, in one
process: one Tor context, one Network (a circuit per purpose and service, kept-alive connections, as a
single fetch has; ``--isolate package`` still gives every package its own circuits), one log state.

Steps: (1) ask pacman what ``-Su`` will download (``pacman --config FILE -Sup --print-format '%r %l'``; see
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
import contextlib
import copy
import dataclasses
import hashlib
import os
import stat
import subprocess
import sys
import urllib.parse
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from .. import cliargs
from ..errors import LocalStorageError, NetworkError, TorfetchError, UsageError, VerificationError

# downloads at once: pacman's own ParallelDownloads as Arch's pacman.conf sets it; over Tor these are streams on
# one circuit per purpose (per package with --isolate package), a few at a time, as a browser opens them
DEFAULT_JOBS = 5
LOOKAHEAD = 3  # packages whose lookups run per download slot
PLAN_TIMEOUT = 600.0  # pacman resolving a large upgrade
HASH_CHUNK = 1024 * 1024
MAX_PACMAN_WARNINGS = 20  # lines of pacman's stderr passed on while planning

if TYPE_CHECKING:
    from ..store.syncdb import SyncDbAnswer


def build_parser() -> cliargs.RecordingParser:
    from .. import cli

    p = cli.build_parser(single_file=False)
    p.prog = "torfetch prefetch"
    p.description = ("download and verify, several at once, every package 'pacman -Su' would download, into "
                     "pacman's CacheDir, so that pacman then finds them there and calls XferCommand for none of them. "
                     "The fetch options are torfetch's (and its config file's); arguments after '--' go to pacman.")
    p.epilog = "Exit codes: 0 every package placed or already cached, 1 a verification failed, 2 usage, 3 network/Tor."
    p.add_argument("--jobs", type=cliargs.positive_int, default=DEFAULT_JOBS, metavar="N",
                   help=f"package downloads at once (default {DEFAULT_JOBS}, as pacman's ParallelDownloads); the "
                   f"lookups of up to {LOOKAHEAD} times as many packages run meanwhile")
    p.add_argument("pacman_args", nargs="*", default=[], metavar="PACMAN_ARG",
                   help="after '--': arguments for pacman (e.g. -- --ignore linux)")
    return p


def split_args(argv: list[str]) -> tuple[list[str], list[str]]:
    """torfetch's arguments, and pacman's after the first ``--`` (never read as torfetch's)."""
    if "--" in argv:
        i = argv.index("--")
        return argv[:i], argv[i + 1:]
    return argv, []


def parse(parser: argparse.ArgumentParser, argv: list[str]) -> tuple[argparse.Namespace, list[str]]:
    """(torfetch's namespace, pacman's arguments); a word before ``--`` that is not torfetch's is a usage error.

    The command line and the config file are checked here, once, before pacman runs (a usage or config error
    is one line, and nothing happened), and the config file's ``pacman_conf`` applies as for the XferCommand."""
    own, pacman_args = split_args(argv)
    ns, extra = parser.parse_known_args(own)
    extra += ns.pacman_args or []
    if extra:
        raise UsageError(f"{extra[0]!r} is not an option of {parser.prog}: pacman's arguments go after '--' "
                         f"({parser.prog} [options] -- {' '.join(extra)})")
    from ..cli import run_wide_options

    ns.pacman_conf = run_wide_options(ns).pacman_conf  # (each package's [[repo]] applies later, per package)
    return ns, pacman_args


def check_pacman_conf(conf: Path) -> None:
    """pacman.conf must be a regular file of a sane size before pacman is run with it: ``pacman --config FIFO``
    blocks until a writer comes (upgrade's ``pacman -Sy`` has no timeout) and /dev/zero is read for ever."""
    from ..localfile import read_local_file
    from ..pacman.conf import MAX_CONF_BYTES

    read_local_file(conf, what="--pacman-conf", max_bytes=MAX_CONF_BYTES)  # a ConfigError says why not


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
        codes = [o.error.exit_code for o in self.outcomes if o.state == "failed" and o.error is not None]
        if not codes:
            return 0
        for code in (VerificationError.exit_code, NetworkError.exit_code):
            if code in codes:
                return code
        return codes[0]


# --- (1)-(3): the plan (synchronous: it runs before any trio run, and before a fork for the DownloadUser) ----------


def pacman_command(pacman_conf: Path, *operation: str, pacman_args: list[str] | tuple[str, ...] = ()) -> list[str]:
    return ["pacman", "--config", str(pacman_conf), *operation, *pacman_args]


def _run(cmd: list[str], what: str) -> bytes:
    try:
        r = subprocess.run(cmd, capture_output=True, check=False, stdin=subprocess.DEVNULL, timeout=PLAN_TIMEOUT,
                           env={**os.environ, "LC_ALL": "C"})
    except FileNotFoundError as exc:
        raise UsageError(f"{what}: {cmd[0]} is not installed") from exc
    except subprocess.TimeoutExpired as exc:
        raise UsageError(f"{what}: {cmd[0]} did not answer within {PLAN_TIMEOUT:g} s") from exc
    from ..verify.minisign import sanitise

    said = [ln for ln in r.stderr.decode("utf-8", "replace").splitlines() if ln.strip()]
    if r.returncode != 0:
        # pacman quotes pacman.conf as it is (an Include path with escapes, say): printable text only
        raise UsageError(f"{what}: {cmd[0]} exited {r.returncode}"
                         + (f": {sanitise(said[-1], max_len=300)}" if said else ""))
    for ln in said[:MAX_PACMAN_WARNINGS]:
        # pacman's own warnings while planning (a package newer here than in its repository, say) reach the user
        _print(f"{cmd[0]}: {sanitise(ln, max_len=300)}")
    return r.stdout


def file_sha256(path: Path | str, *, dir_fd: int | None = None) -> str | None:
    """The sha256 of a regular file at ``path`` (never through a symlink), None if there is none."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=dir_fd)
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


@dataclass
class Job:
    """One package to fetch: where from, the sha256 its bytes must have, whether a wrong file has its name."""

    outcome: Outcome
    url: str
    answer: SyncDbAnswer
    stale: bool = False  # CacheDir holds a file of this name that is not the db's: replaced, or removed on failure


@dataclass
class Plan:
    result: PrefetchResult
    jobs: list[Job]
    pacman_conf: Path


class Lines:
    """The one line per package on stderr (and -v's lines, through the Reporter)."""

    def __init__(self, ns: argparse.Namespace, stream=None) -> None:
        from ..report import Reporter

        self.quiet = ns.quiet
        # tty=False: no progress line redrawn in place, many files are in flight at once
        self.report = Reporter(verbose=ns.verbose, quiet=ns.quiet, stream=stream or sys.stderr, tty=False)

    def __call__(self, text: str) -> None:
        if not self.quiet:
            self.report._emit(text)

    def failed(self, out: Outcome, exc: TorfetchError) -> None:
        out.state, out.error = "failed", exc
        # an error: printed with -q too (-q drops the lines of packages that went well)
        self.report._emit(f"{out.filename}  not placed: {exc.check}: {exc.message}")


def make_plan(ns: argparse.Namespace, pacman_args: list[str], line: Lines) -> Plan:
    """Steps (1)-(3); nothing is written."""
    from ..pacman.upgrade_plan import PRINT_FORMAT, cachedirs, first_server, pacman_paths, parse_print_output
    from ..store.syncdb import lookup_many, missing_sync_dbs

    conf: Path = ns.pacman_conf
    paths = pacman_paths(pacman_args)
    for db in missing_sync_dbs(conf, dbpath=paths.dbpath):
        # pacman -Sup plans without a repository whose db is missing, and says nothing
        line.report.warn(f"no sync db {db} (a repository of {conf}): the upgrade plan leaves that repository "
                         "out; run pacman -Sy first (torfetch upgrade does)")
    # (1) what -Su will download, as pacman decides it (a package it found in a CacheDir is printed as a
    # file:// URL there, unchecked: the prefetch checks it against the sync db itself)
    plan = parse_print_output(_run(
        pacman_command(conf, "-Sup", "--print-format", PRINT_FORMAT, "--noconfirm", pacman_args=pacman_args),
        "the upgrade plan"))
    # pacman puts --cachedir before pacman.conf's CacheDirs, finds a package in any, downloads into the first
    dirs = (*paths.cachedirs, *cachedirs(_run(["pacman-conf", "--config", str(conf), "CacheDir"], "pacman's CacheDir")))
    result = PrefetchResult(cachedir=dirs[0])
    remote = [p for p in plan if p.file_path is None or p.in_cachedir(dirs)]
    # (2) each package's sha256 from the sync dbs, every db read once
    answers = lookup_many(conf, [p.filename for p in remote], dbpath=paths.dbpath)
    servers: dict[str, str] = {}
    jobs: list[Job] = []
    for p in plan:
        out = Outcome(p.filename)
        result.outcomes.append(out)
        if p not in remote:
            out.state = "local"
            line(f"{p.filename}  left to pacman: a file:// repository, nothing to download")
            continue
        answer = answers[p.filename]
        try:
            if answer.sha256 is None:
                raise VerificationError(f"{p.filename}: prefetch needs the sync db's sha256 to hold the download "
                                        f"to, and has none ({answer.note})")
            # (3) already there, whole: nothing to do (anything else at that name is replaced or removed)
            where = p.file_path or os.path.join(dirs[0], p.filename)
            have = file_sha256(where)
            if have == answer.sha256:
                out.state = "cached"
                line(f"{p.filename}  already in {os.path.dirname(where)} (sha256 as {answer.db} lists)")
                continue
            url = p.url
            if p.file_path is not None:  # pacman's answer was the wrong file in CacheDir: fetch from the mirror
                if p.repo not in servers:
                    servers[p.repo] = first_server(_run(["pacman-conf", "--config", str(conf), "--repo", p.repo,
                                                         "Server"], f"repository {p.repo}"), p.repo)
                url = f"{servers[p.repo]}/{p.filename}"
            if urllib.parse.urlsplit(url).scheme.lower() == "file":
                out.state = "local"
                line(f"{p.filename}  left to pacman: a file:// repository, nothing to download")
                continue
            jobs.append(Job(out, url, answer, stale=have is not None and os.path.dirname(where) == dirs[0].rstrip("/")))
        except TorfetchError as exc:
            line.failed(out, exc)
    # the largest first: the last download to start is then a small one, not the one that ends the upgrade late
    jobs.sort(key=lambda j: -(j.answer.csize or 0))
    return Plan(result, jobs, conf)


# --- (4): fetch and verify, concurrently --------------------------------------------------------------------------


async def fetch_jobs(ns: argparse.Namespace, jobs: list[Job], outdir: Path, line: Lines) -> None:
    """Each job through the XferCommand path's own pipeline into ``outdir``/<filename>, ``ns.jobs`` downloads at once.

    The options are made here, per package, as the XferCommand makes them (its [[repo]] table applies), by the
    user this runs as: with a DownloadUser, the config and key files must be readable by it, as for pacman 7.
    """
    import trio

    from ..cli import options_from_args, run_wide_options
    from ..report import format_verdict
    from ..workflow import fetch_in_session, open_session, plan_file

    # the config file as the user this runs as reads it (the DownloadUser may not read what root could in
    # parse()): an error there is one line for the run, not one per package
    run_wide_options(ns)
    ready = []
    logs: dict[tuple, object] = {}  # one LogConfig per log: its history checks take turns instead of racing
    for job in jobs:
        one = copy.copy(ns)
        one.url, one.output = job.url, outdir / job.outcome.filename
        try:
            opts = options_from_args(one)
            file_plan = plan_file(opts)
        except TorfetchError as exc:
            line.failed(job.outcome, exc)
            continue
        if file_plan.log is not None:
            log = file_plan.log
            same = (log.url, log.key.log_id, str(log.store.directory), log.upload, log.origin)
            file_plan = dataclasses.replace(file_plan, log=logs.setdefault(same, log))
        ready.append((job, opts, file_plan))
    if not ready:
        return
    # --jobs downloads at once, as pacman's ParallelDownloads; the lookups (signature, log, rebuilders: small
    # requests, latency-bound) of up to LOOKAHEAD times as many packages run meanwhile, so that a download slot
    # never waits for them
    downloads = trio.CapacityLimiter(ns.jobs)
    in_flight = trio.CapacityLimiter(ns.jobs * LOOKAHEAD)
    report = line.report

    async def one_job(session, job: Job, opts, file_plan) -> None:
        out = job.outcome
        try:
            fetched = await fetch_in_session(opts, report, session, file_plan, db_answer=job.answer,
                                             download_slots=downloads)
        except TorfetchError as exc:
            line.failed(out, exc)
            return
        finally:
            in_flight.release_on_behalf_of(out.filename)
        out.state, out.size, out.checks = "placed", fetched.size, tuple(fetched.checks)
        line(format_verdict(out.filename, fetched.size, "verified: " + ", ".join(
            [*fetched.checks, ".PKGINFO", "sync db sha256"]), width=200))

    first = ready[0][1]
    if first.config_note:
        report.info(first.config_note)
    # one session for every package; a Tor that is missing fails the run, not each package
    async with open_session(first, report) as session:
        async with trio.open_nursery() as nursery:
            for job, opts, file_plan in ready:
                await in_flight.acquire_on_behalf_of(job.outcome.filename)  # here, not in the task: in the plan's order
                nursery.start_soon(one_job, session, job, opts, file_plan)


def remove_stale(plan: Plan) -> None:
    """A package that failed leaves no file of its name that the db does not list (pacman would refuse it)."""
    for job in plan.jobs:
        if job.stale and job.outcome.state == "failed":
            path = Path(plan.result.cachedir) / job.outcome.filename
            with contextlib.suppress(OSError):
                if stat.S_ISREG(os.lstat(path).st_mode) and file_sha256(path) != job.answer.sha256:
                    os.unlink(path)


def summary(result: PrefetchResult) -> str:
    failed = result.count("failed")
    parts = [f"{result.count('placed')} placed", f"{result.count('cached')} already there"]
    if result.count("local"):
        parts.append(f"{result.count('local')} local (file://)")
    parts.append(f"{failed} failed")
    return f"torfetch prefetch: {len(result.outcomes)} package(s) in the upgrade: {', '.join(parts)} (CacheDir {result.cachedir})"


def run_prefetch(argv: list[str]) -> tuple[int, PrefetchResult | None]:
    """Parse, plan, fetch (as the DownloadUser where pacman 7 has one), print the summary; (exit code, result)."""
    import trio

    from ..errors import Interrupted
    from ..lifecycle import run_interruptible
    from ..workflow import first_error
    from .prefetch_user import download_user, fetch_as

    verbose = 0
    try:
        ns, pacman_args = parse(build_parser(), argv)
        verbose = ns.verbose
        check_pacman_conf(ns.pacman_conf)
        line = Lines(ns)
        plan = make_plan(ns, pacman_args, line)
        if plan.jobs:
            user = download_user(plan.pacman_conf) if os.geteuid() == 0 else None
            if user is not None:
                fetch_as(user, ns, plan, line)
            elif not os.access(plan.result.cachedir, os.W_OK | os.X_OK):
                # one line for the run, not one per package
                raise LocalStorageError(f"pacman's CacheDir {plan.result.cachedir} is not writable by this user "
                                        f"(uid {os.geteuid()}): run the prefetch as root, as pacman itself runs")
            else:
                trio.run(lambda: run_interruptible(lambda: fetch_jobs(ns, plan.jobs, Path(plan.result.cachedir), line),
                                                   output_name="the prefetch"))
            remove_stale(plan)
    except KeyboardInterrupt:
        _print(Interrupted(2, "the rest of the prefetch").one_line())
        return 130, None
    except TorfetchError as exc:
        _print(exc.diagnostics() if verbose else exc.one_line())
        return exc.exit_code, None
    except BaseExceptionGroup as eg:
        err = first_error(eg)
        if isinstance(err, TorfetchError):
            _print(err.one_line())
            return err.exit_code, None
        if isinstance(err, KeyboardInterrupt):
            _print(Interrupted(2, "the rest of the prefetch").one_line())
            return 130, None
        raise
    code = plan.result.exit_code()
    if code or not ns.quiet:
        _print(summary(plan.result))
    return code, plan.result


def _print(text: str) -> None:
    from ..report import terminal_lines

    # every line may quote what pacman or a server said: no control characters reach the terminal
    try:
        print(terminal_lines(text), file=sys.stderr, flush=True)
    except OSError:
        pass


def main(argv: list[str]) -> int:
    return run_prefetch(list(argv))[0]
