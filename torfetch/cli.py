"""Command line: pacman-bintrans-compatible bare form plus subcommands.

    torfetch [-v] -O OUTPUT [--transparency-url URL] [--pubkey KEY] [--proxy URL]
             [--bypass-proxy-for-pkgs] [--rebuilder URL]... [--required-rebuild-confirms N] URL
    torfetch log verify-entry|status ...

One error handler: a TorfetchError becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Sequence

from . import __version__
from .config import Limits, Options, Timeouts
from .errors import ConfigError, NotSupportedError, TorfetchError, UsageError

if TYPE_CHECKING:
    from .lifecycle import SignalLatch

SUBCOMMANDS = ("log", "setup")

EXIT_OK = 0
EXIT_VERIFICATION = 1
EXIT_USAGE = 2
EXIT_NETWORK = 3
EXIT_INTERRUPTED = 130


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:  # one line, exit 2
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="torfetch",
        description="Tor-routed package fetcher for pacman's XferCommand: hands a package over only if its "
        "transparency signature verifies, is proven in the transparency log and, if asked, rebuilders confirm it.",
        epilog="Subcommands: 'torfetch log verify-entry|status'. Exit codes: 0 ok, 1 verification failed, "
        "2 usage, 3 network/Tor, 130 interrupted.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="print each check as it passes (-vv: more)")
    p.add_argument("-O", "--output", required=True, type=Path, help="where to write the file (pacman's %%o)")
    p.add_argument("url", help="what to fetch (pacman's %%u): http://, https:// or file://")
    g = p.add_argument_group("pacman-bintrans options")
    g.add_argument("--transparency-url", help="base URL of the transparency signatures (<url>/<filename>.t); default <URL>.t")
    g.add_argument("--pubkey", help="the repository operator's minisign public key (base64 line)")
    g.add_argument("--pubkey-file", type=Path, help="read the minisign public key from a .pub file")
    g.add_argument("--proxy", help="SOCKS5 proxy for everything, e.g. socks5h://127.0.0.1:9050 (socks5:// is treated as socks5h://)")
    g.add_argument("--bypass-proxy-for-pkgs", action="store_true", help="download packages directly; every lookup still goes through --proxy")
    g.add_argument("--rebuilder", action="append", default=[], metavar="URL", help="rebuilderd instance to ask (repeatable)")
    g.add_argument("--required-rebuild-confirms", type=int, default=0, metavar="N", help="how many rebuilders must confirm the package")
    r = p.add_argument_group("rebuilders")
    r.add_argument("--rebuilder-key", action="append", default=[], metavar="URL=KEY", help="pin a rebuilder's Ed25519 key (64 hex digits, a PEM block or PEM file as rebuilderd serves it, "
                   "or base64 of that key): its confirm counts only with a valid attestation")
    r.add_argument("--fail-on-bad", action="store_true", help="fail if any rebuilder reports BAD for this exact version")
    lg = p.add_argument_group("transparency log")
    lg.add_argument("--log-url", default=None, help="Rekor v1 log (default https://rekor.sigstore.dev)")
    lg.add_argument("--log-key", default=None, help="the log's public key (PEM text or file); required for a non-default --log-url")
    lg.add_argument("--log-origin", default=None, metavar="NAME", help="the log's origin name in its checkpoints (default: rekor.sigstore.dev for its key, else the first name this machine saw)")
    lg.add_argument("--state-dir", type=Path, default=None, help="where remembered log tree heads live (default /var/lib/torfetch as root, else $XDG_STATE_HOME/torfetch)")
    lg.add_argument("--no-upload", action="store_true", help="a signature missing from the log is a failure (default: upload it, then prove it)")
    t = p.add_argument_group("Tor")
    t.add_argument("--isolate", choices=("purpose", "package"), default="purpose", help="circuit per purpose (default) or per purpose and package")
    t.add_argument("--tor-control", metavar="PORT|SOCKET", help="tor's control port or socket: check bootstrap, audit circuits")
    t.add_argument("--tor", choices=("launch",), default=None, help="'launch': start a private tor for this run")
    t.add_argument("--tor-config", type=Path, metavar="TORRC", help="extra torrc lines for --tor launch (e.g. bridges)")
    t.add_argument("--audit-circuits", action="store_true", help="fail if two purposes shared a Tor circuit (needs --tor-control or --tor launch)")
    t.add_argument("--pacman-user-agent", action="store_true", help="send pacman's HTTP_USER_AGENT instead of the generic one")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-size", type=int, default=Limits.package_max_bytes, metavar="BYTES", help="largest package accepted")
    lim.add_argument("--connect-timeout", type=float, default=Timeouts.connect, metavar="S")
    lim.add_argument("--read-timeout", type=float, default=Timeouts.idle_read, metavar="S", help="idle time allowed between bytes")
    lim.add_argument("--deadline", type=float, default=Timeouts.download_total, metavar="S", help="total time allowed for the download")
    lim.add_argument("--rebuilder-timeout", type=float, default=Timeouts.rebuilder, metavar="S")
    lim.add_argument("--lookup-timeout", type=float, default=Timeouts.lookup_total, metavar="S", help="time allowed for the signature lookup (the log lookup: twice this)")
    lim.add_argument("--low-speed-limit", type=int, default=Timeouts.low_speed_limit, metavar="BYTES", help="abort a transfer slower than BYTES/s over --low-speed-time (0: off)")
    lim.add_argument("--low-speed-time", type=float, default=Timeouts.low_speed_time, metavar="S")
    p.add_argument("--version", action="version", version=f"torfetch {__version__}")
    return p


def options_from_args(ns: argparse.Namespace) -> Options:
    pubkey = ns.pubkey
    if ns.pubkey_file is not None:
        if pubkey:
            raise UsageError("give --pubkey or --pubkey-file, not both")
        try:
            pubkey = ns.pubkey_file.read_text("utf-8")[:4096]
        except OSError as exc:
            raise ConfigError(f"cannot read --pubkey-file {ns.pubkey_file}: {exc.strerror}") from exc
    if ns.required_rebuild_confirms < 0:
        raise UsageError("--required-rebuild-confirms must be 0 or more")
    from .keyfiles import parse_rebuilder_key
    from .net.rebuilder_url import normalise_rebuilder_url

    # one spelling per rebuilder, so a key's URL matches its --rebuilder however it was written
    rebuilders = tuple(normalise_rebuilder_url(u) for u in ns.rebuilder)
    keys = [parse_rebuilder_key(item) for item in ns.rebuilder_key]
    for name, val in (("--max-size", ns.max_size), ("--connect-timeout", ns.connect_timeout),
                      ("--read-timeout", ns.read_timeout), ("--deadline", ns.deadline),
                      ("--rebuilder-timeout", ns.rebuilder_timeout), ("--lookup-timeout", ns.lookup_timeout),
                      ("--low-speed-time", ns.low_speed_time)):
        if not val > 0:  # also refuses nan
            raise UsageError(f"{name} must be positive")
    if ns.low_speed_limit < 0:
        raise UsageError("--low-speed-limit must be 0 (off) or more")
    if ns.audit_circuits and not (ns.tor_control or ns.tor):
        raise UsageError("--audit-circuits needs --tor-control or --tor launch")
    if ns.tor_config and not ns.tor:
        raise UsageError("--tor-config goes with --tor launch")
    if ns.tor and ns.proxy:
        raise UsageError("--tor launch starts its own proxy: do not also give --proxy")
    limits = Limits(package_max_bytes=ns.max_size)
    timeouts = Timeouts(connect=ns.connect_timeout, idle_read=ns.read_timeout, download_total=ns.deadline,
                        rebuilder=ns.rebuilder_timeout, lookup_total=ns.lookup_timeout,
                        low_speed_limit=ns.low_speed_limit, low_speed_time=ns.low_speed_time)
    ua = os.environ.get("HTTP_USER_AGENT") if ns.pacman_user_agent else None
    return Options(
        url=ns.url, output=ns.output, verbose=ns.verbose, transparency_url=ns.transparency_url, pubkey=pubkey,
        proxy=ns.proxy, bypass_proxy_for_pkgs=ns.bypass_proxy_for_pkgs, rebuilders=rebuilders,
        required_rebuild_confirms=ns.required_rebuild_confirms, rebuilder_keys=tuple(keys),
        fail_on_bad=ns.fail_on_bad, log_url=ns.log_url, log_key=ns.log_key, log_origin=ns.log_origin, state_dir=ns.state_dir,
        no_upload=ns.no_upload, isolate=ns.isolate, tor_control=ns.tor_control, tor_launch=ns.tor == "launch", tor_config=ns.tor_config,
        audit_circuits=ns.audit_circuits, user_agent=ua, limits=limits, timeouts=timeouts,
    )


def _fail(exc: TorfetchError, verbose: int) -> int:
    try:
        print(exc.diagnostics() if verbose else exc.one_line(), file=sys.stderr, flush=True)
    except OSError:
        pass  # stderr is gone (SIGHUP from a closed terminal): the exit code still tells
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        from .commands import log as log_cmd, setup as setup_cmd

        return {"log": log_cmd.main, "setup": setup_cmd.main}[args[0]](args[1:])
    from .errors import Interrupted
    from .lifecycle import EarlySignal, SignalLatch

    verbose = sum(a.count("v") for a in args if a.startswith("-v") and set(a[1:]) <= {"v"}) + args.count("--verbose")
    # Until trio's signal watcher takes over nothing exists to clean up: a signal just ends the run.
    with SignalLatch() as latch:
        try:
            opts = options_from_args(build_parser().parse_args(args))
            # (1) -O must be replaceable: never /dev/null, a FIFO or a directory. Usage errors touch nothing.
            from .store.output import check_output_path

            check_output_path(opts.output)
        except TorfetchError as exc:
            return _fail(exc, verbose)
        except EarlySignal as sig:
            return _fail(Interrupted(sig.signum, "the file"), verbose)
        return _run(opts, latch)


def _run(opts: Options, latch: "SignalLatch") -> int:
    """(2) The workflow under trio with a signal watcher; one line and the exit code for any failure.

    A usage or configuration error (exit 2) leaves everything as it was, a stale
    -O included; any other failure (a signal too) leaves nothing at -O.
    """
    from .errors import Interrupted
    from .lifecycle import EarlySignal

    failure: BaseException | None = None
    try:
        import trio

        from . import workflow
        from .lifecycle import run_interruptible
        from .report import Reporter

        report = Reporter(verbose=opts.verbose)
        trio.run(lambda: run_interruptible(lambda: workflow.run(opts, report), output_name=opts.output.name,
                                           latch=latch))
        return EXIT_OK
    except BaseException as exc:  # KeyboardInterrupt and SystemExit too: fail closed, one line
        failure = _first_error(exc)
        if isinstance(failure, EarlySignal):
            failure = Interrupted(failure.signum, opts.output.name)
        elif isinstance(failure, KeyboardInterrupt):
            failure = Interrupted(signal.SIGINT, opts.output.name)
        elif not isinstance(failure, TorfetchError) and latch.signum is not None:
            failure = Interrupted(latch.signum, opts.output.name)  # e.g. trio hit while starting up
        if isinstance(failure, TorfetchError):
            return _fail(failure, opts.verbose)
        try:
            print(f"torfetch: internal error: {type(failure).__name__}: {failure}", file=sys.stderr)
        except OSError:
            pass
        if opts.verbose >= 2:
            raise
        return EXIT_VERIFICATION
    finally:
        if failure is not None and not isinstance(failure, UsageError):
            from .store.output import remove_leftovers

            remove_leftovers(opts.output)


def _first_error(exc: BaseException) -> BaseException:
    if isinstance(exc, BaseExceptionGroup):
        from .workflow import first_error

        return first_error(exc)
    return exc
