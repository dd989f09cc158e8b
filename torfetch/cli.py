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
from typing import NoReturn, Sequence

from . import __version__
from .config import Limits, Options, Timeouts
from .errors import ConfigError, NotSupportedError, TorfetchError, UsageError

SUBCOMMANDS = ("log", "sign", "monitor")

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
    from .verify.rebuilder import normalise_rebuilder_url, parse_rebuilder_key

    # one spelling per rebuilder, so a key's URL matches its --rebuilder however it was written
    rebuilders = tuple(normalise_rebuilder_url(u) for u in ns.rebuilder)
    keys = [parse_rebuilder_key(item) for item in ns.rebuilder_key]
    for name, val in (("--max-size", ns.max_size), ("--connect-timeout", ns.connect_timeout),
                      ("--read-timeout", ns.read_timeout), ("--deadline", ns.deadline),
                      ("--rebuilder-timeout", ns.rebuilder_timeout)):
        if val <= 0:
            raise UsageError(f"{name} must be positive")
    if ns.audit_circuits and not (ns.tor_control or ns.tor):
        raise UsageError("--audit-circuits needs --tor-control or --tor launch")
    if ns.tor_config and not ns.tor:
        raise UsageError("--tor-config goes with --tor launch")
    if ns.tor and ns.proxy:
        raise UsageError("--tor launch starts its own proxy: do not also give --proxy")
    limits = Limits(package_max_bytes=ns.max_size)
    timeouts = Timeouts(connect=ns.connect_timeout, idle_read=ns.read_timeout, download_total=ns.deadline,
                        rebuilder=ns.rebuilder_timeout)
    ua = os.environ.get("HTTP_USER_AGENT") if ns.pacman_user_agent else None
    return Options(
        url=ns.url, output=ns.output, verbose=ns.verbose, transparency_url=ns.transparency_url, pubkey=pubkey,
        proxy=ns.proxy, bypass_proxy_for_pkgs=ns.bypass_proxy_for_pkgs, rebuilders=rebuilders,
        required_rebuild_confirms=ns.required_rebuild_confirms, rebuilder_keys=tuple(keys),
        fail_on_bad=ns.fail_on_bad, log_url=ns.log_url, log_key=ns.log_key, state_dir=ns.state_dir,
        no_upload=ns.no_upload, isolate=ns.isolate, tor_control=ns.tor_control, tor_launch=ns.tor == "launch", tor_config=ns.tor_config,
        audit_circuits=ns.audit_circuits, user_agent=ua, limits=limits, timeouts=timeouts,
    )


def _raise_keyboard_interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _fail(exc: TorfetchError, verbose: int) -> int:
    print(exc.diagnostics() if verbose else exc.one_line(), file=sys.stderr, flush=True)
    return exc.exit_code


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        from .commands import log as log_cmd
        if args[0] in ("sign", "monitor"):  # operator tools
            return __import__(f"torfetch.commands.{args[0]}", fromlist=["main"]).main(args[1:])

        return {"log": log_cmd.main}[args[0]](args[1:])
    verbose = sum(a.count("v") for a in args if a.startswith("-v") and set(a[1:]) <= {"v"}) + args.count("--verbose")
    try:
        opts = options_from_args(build_parser().parse_args(args))
    except TorfetchError as exc:
        return _fail(exc, verbose)

    import trio

    from . import workflow
    from .report import Reporter
    from .store.output import remove_leftovers

    # pacman forwards Ctrl-C to us; treat SIGTERM the same: leave nothing behind.
    signal.signal(signal.SIGTERM, _raise_keyboard_interrupt)
    ok = False
    try:
        trio.run(workflow.run, opts, Reporter(verbose=opts.verbose))
        ok = True
        return EXIT_OK
    except TorfetchError as exc:
        return _fail(exc, opts.verbose)
    except KeyboardInterrupt:
        print(f"torfetch: interrupted: {opts.output.name} was not written", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BaseExceptionGroup as eg:
        err = workflow.first_error(eg)
        if isinstance(err, TorfetchError):
            return _fail(err, opts.verbose)
        if isinstance(err, KeyboardInterrupt):
            print(f"torfetch: interrupted: {opts.output.name} was not written", file=sys.stderr)
            return EXIT_INTERRUPTED
        print(f"torfetch: internal error: {type(err).__name__}: {err}", file=sys.stderr)
        if opts.verbose:
            raise
        return EXIT_VERIFICATION
    except Exception as exc:  # a bug: still fail closed, one line
        print(f"torfetch: internal error: {type(exc).__name__}: {exc}", file=sys.stderr)
        if opts.verbose >= 2:
            raise
        return EXIT_VERIFICATION
    finally:
        if not ok:
            remove_leftovers(opts.output)
