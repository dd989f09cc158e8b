"""Command line: pacman-bintrans-compatible bare form plus subcommands.

    torfetch [-v|-q] -O OUTPUT [--transparency-url URL] [--pubkey KEY] [--sigsum-policy FILE --sigsum-key KEY]
             [--proxy URL | --direct]
             [--bypass-proxy-for-pkgs] [--rebuilder URL]... [--required-rebuild-confirms N] [--config FILE] URL
    torfetch log verify-entry|status ...

One error handler: a TorfetchError becomes one line on stderr and its exit code.
"""

from __future__ import annotations

import argparse
import math
import os
import signal
import sys
from pathlib import Path
from typing import TYPE_CHECKING, NoReturn, Sequence

from . import __version__, cliargs
from .config import DEFAULT_TOR_PROXY, Limits, Options, Timeouts
from .configfile import DEFAULT_CONFIG, ConfigFile, ConfigSpec, RepoTable, merge_layers, read_config_file
from .errors import ConfigError, TorfetchError, UsageError
from .localfile import read_local_text

if TYPE_CHECKING:
    from .lifecycle import SignalLatch

SUBCOMMANDS = ("log", "setup", "sign", "monitor", "prefetch", "upgrade")

EXIT_OK = 0
EXIT_VERIFICATION = 1
EXIT_USAGE = 2
EXIT_NETWORK = 3
EXIT_INTERRUPTED = 130


def build_parser(*, single_file: bool = True) -> cliargs.RecordingParser:
    """The fetch flags; ``single_file=False`` leaves out -O and the URL (``torfetch prefetch`` reuses the rest)."""
    p = cliargs.RecordingParser(
        prog="torfetch",
        description="Tor-routed package fetcher for pacman's XferCommand: hands a package over only if its "
        "transparency signature verifies, is proven in the transparency log and, if asked, rebuilders confirm it. "
        f"Options can also be set in {DEFAULT_CONFIG} (long option names, '-' written '_'; [[repo]] tables per "
        "repository); the command line overrides the file.",
        epilog="Subcommands: 'torfetch log verify-entry|status', 'torfetch setup' (pacman 7's state dir), "
        "'torfetch prefetch' and 'torfetch upgrade' (a verified parallel download of an upgrade), "
        "'torfetch sign' and 'torfetch monitor' (repository operators); each has -h. Exit codes: 0 ok, 1 verification failed, "
        "2 usage, 3 network/Tor, 130 interrupted.",
    )
    p.add_argument("-v", "--verbose", action="count", default=0, help="print each check as it passes (-vv: more)")
    p.add_argument("-q", "--quiet", action="store_true", help="print nothing but errors (no progress line)")
    if single_file:
        p.add_argument("-O", "--output", required=True, type=Path, help="where to write the file (pacman's %%o)")
        p.add_argument("url", help="what to fetch (pacman's %%u): http://, https:// or file:// (copied without proof)")
    p.add_argument("--config", type=Path, metavar="FILE", default=None,
                   help=f"read options and [[repo]] tables from FILE (default {DEFAULT_CONFIG}, if it exists; "
                   "/dev/null: none)")
    g = p.add_argument_group("pacman-bintrans options")
    g.add_argument("--transparency-url", type=cliargs.url, help="base URL of the transparency signatures (<url>/<filename>.t); default <URL>.t")
    g.add_argument("--pubkey", help="the repository operator's minisign public key (base64 line)")
    g.add_argument("--pubkey-file", type=Path, help="read the minisign public key from a .pub file")
    g.add_argument("--proxy", type=cliargs.proxy_url, help=f"SOCKS5 proxy for everything (default: Tor at {DEFAULT_TOR_PROXY}; "
                   "socks5:// is treated as socks5h://)")
    g.add_argument("--bypass-proxy-for-pkgs", action="store_true", help="download packages directly; every lookup still goes through Tor")
    g.add_argument("--rebuilder", action="append", default=[], type=cliargs.rebuilder_url, metavar="URL", help="rebuilderd instance to ask (repeatable)")
    g.add_argument("--required-rebuild-confirms", type=cliargs.count, default=0, metavar="N", help="how many rebuilders must confirm the package")
    r = p.add_argument_group("rebuilders")
    r.add_argument("--rebuilder-key", action="append", default=[], metavar="URL=KEY", help="pin a rebuilder's Ed25519 key (64 hex digits, a PEM block or PEM file as rebuilderd serves it, "
                   "or base64 of that key): its confirm counts only with a valid attestation")
    r.add_argument("--fail-on-bad", action="store_true", help="fail if any rebuilder reports BAD for this exact version")
    lg = p.add_argument_group("transparency log")
    lg.add_argument("--log-url", type=cliargs.url, default=None, help="Rekor v1 log (default https://rekor.sigstore.dev)")
    lg.add_argument("--log-key", default=None, help="the log's public key (PEM text or file); required for a non-default --log-url")
    lg.add_argument("--log-origin", default=None, metavar="NAME", help="the log's origin name in its checkpoints (default: rekor.sigstore.dev for its key, else the first name this machine saw)")
    lg.add_argument("--state-dir", type=Path, default=None, help="where remembered log tree heads live (default /var/lib/torfetch for root, pacman 7's DownloadUser, or whenever it exists; else $XDG_STATE_HOME/torfetch)")
    lg.add_argument("--no-upload", action="store_true", help="a signature missing from the log is a failure (default: upload it, then prove it)")
    sg = p.add_argument_group("Sigsum (offline proofs: the log is never asked at install time)")
    sg.add_argument("--sigsum-policy", type=Path, metavar="FILE", default=None,
                    help="Sigsum policy (log, witness, group, quorum lines): the logs and witness quorum a "
                    "<transparency-url>/<filename>.proof must show")
    sg.add_argument("--sigsum-key", metavar="KEY", default=None,
                    help="the repository's Sigsum submitter key: an ssh-ed25519 line, 64 hex digits, or a file "
                    "holding one. With only the Sigsum options the .proof is the transparency check (no .t, no "
                    "Rekor); with --pubkey too, both must pass")
    p.add_argument("--pacman-conf", type=Path, metavar="FILE", default=Path("/etc/pacman.conf"),
                   help="the pacman.conf in use (default /etc/pacman.conf): a package's sha256 in its sync dbs starts "
                   "the signature and log checks before the download ends, and the download must have exactly it "
                   "(prefetch and upgrade: also the pacman.conf whose pacman -Sup/-Sy/-Su they run)")
    t = p.add_argument_group("Tor")
    t.add_argument("--direct", action="store_true", help="fetch without Tor: connect to mirrors, the log and rebuilders directly")
    t.add_argument("--isolate", choices=("purpose", "package"), default="purpose", help="circuit per purpose (default) or per purpose and package")
    t.add_argument("--tor-control", metavar="PORT|SOCKET", help="tor's control port or socket: check bootstrap, find the SocksPort, audit circuits")
    t.add_argument("--tor", choices=("launch",), default=None, help="'launch': start a private tor for this run")
    t.add_argument("--tor-config", type=Path, metavar="TORRC", help="extra torrc lines for --tor launch (e.g. bridges)")
    t.add_argument("--audit-circuits", action="store_true", help="fail if two purposes shared a Tor circuit (needs --tor-control or --tor launch)")
    t.add_argument("--pacman-user-agent", action="store_true", help="send pacman's HTTP_USER_AGENT instead of the generic one")
    lim = p.add_argument_group("limits")
    lim.add_argument("--max-size", type=cliargs.positive_int, default=Limits.package_max_bytes, metavar="BYTES", help="largest package accepted")
    lim.add_argument("--connect-timeout", type=cliargs.seconds, default=Timeouts.connect, metavar="S")
    lim.add_argument("--read-timeout", type=cliargs.seconds, default=Timeouts.idle_read, metavar="S", help="idle time allowed between bytes")
    lim.add_argument("--deadline", type=cliargs.seconds, default=Timeouts.download_total, metavar="S", help="total time allowed for the download")
    lim.add_argument("--rebuilder-timeout", type=cliargs.seconds, default=Timeouts.rebuilder, metavar="S")
    lim.add_argument("--lookup-timeout", type=cliargs.seconds, default=Timeouts.lookup_total, metavar="S", help="time allowed for the signature lookup (the log lookup: twice this)")
    lim.add_argument("--low-speed-limit", type=cliargs.count, default=Timeouts.low_speed_limit, metavar="BYTES", help="abort a transfer slower than BYTES/s over --low-speed-time (0: off)")
    lim.add_argument("--low-speed-time", type=cliargs.seconds, default=Timeouts.low_speed_time, metavar="S")
    p.add_argument("--version", action="version", version=f"torfetch {__version__}")
    return p


def options_from_args(ns: argparse.Namespace) -> Options:
    """The command line, over the config file, over the defaults → validated Options. Usage errors only.

    Nothing here touches the network or changes a file: a usage error leaves -O as it was.
    """
    parser, cfg, explicit = _layers(ns)
    repo = cfg.repo_for(ns.url) if cfg is not None else None
    layers = [cfg.values if cfg else {}, repo.values if repo else {}, explicit]
    merged = merge_layers(parser.defaults(), layers)
    merged.update({k: getattr(ns, k) for k in ("output", "url", "config")})
    merged_ns = argparse.Namespace(**merged)
    _check_numbers(parser, merged_ns)
    if "sigsum_policy" in explicit and not merged_ns.sigsum_key:
        raise UsageError("--sigsum-policy needs --sigsum-key (the repository's Sigsum submitter key), "
                         "on the command line or in the matching [[repo]]")
    return _options(merged_ns, cfg, repo)


def run_wide_options(ns: argparse.Namespace) -> argparse.Namespace:
    """The command line over the config file's top level, no [[repo]] (no URL is known yet): what a command
    for many files (prefetch, upgrade) needs before it starts. The config file is read and checked here."""
    parser, cfg, explicit = _layers(ns)
    return argparse.Namespace(**merge_layers(parser.defaults(), [cfg.values if cfg else {}, explicit]))


def _layers(ns: argparse.Namespace) -> tuple[argparse.ArgumentParser, ConfigFile | None, dict[str, object]]:
    """(the parser, the config file or None, the options given on the command line); usage errors only."""
    parser = build_parser()
    given = cliargs.given(ns)
    _check_command_line(ns, given)
    spec = ConfigSpec.from_parser(parser)
    cfg = read_config_file(ns.config, spec=spec)
    option_dests = {o.dest for o in spec.top.values()} | {o.dest for o in spec.repo.values()}
    return parser, cfg, {k: getattr(ns, k) for k in given if k in option_dests}


def _check_command_line(ns: argparse.Namespace, given: frozenset[str]) -> None:
    """Conflicts within the command line itself (across layers, the later layer replaces the earlier)."""
    if "direct" in given and ns.direct:
        for dest, flag in (("proxy", "--proxy"), ("tor", "--tor launch")):
            if dest in given:
                raise UsageError(f"--direct fetches without Tor: do not also give {flag}")
    if "quiet" in given and ns.quiet and ns.verbose:
        raise UsageError("give -q or -v, not both")


def _check_numbers(parser: argparse.ArgumentParser, m: argparse.Namespace) -> None:
    # float options added with a plain type=float get the same rule as cliargs.seconds
    for a in parser._actions:
        if a.type is float and isinstance(getattr(m, a.dest, None), float):
            v = getattr(m, a.dest)
            if not math.isfinite(v) or v <= 0:
                raise UsageError(f"{a.option_strings[-1]} must be a positive, finite number, not {v}")


def _options(ns: argparse.Namespace, cfg: ConfigFile | None, repo: RepoTable | None) -> Options:
    if ns.direct:
        for flag, on in (("--proxy", ns.proxy), ("--tor launch", ns.tor), ("--tor-control", ns.tor_control),
                         ("--bypass-proxy-for-pkgs", ns.bypass_proxy_for_pkgs), ("--audit-circuits", ns.audit_circuits)):
            if on:
                raise UsageError(f"--direct fetches without Tor: do not also give {flag}")
    if ns.quiet and ns.verbose:
        raise UsageError("give -q or -v, not both")
    pubkey = ns.pubkey
    if ns.pubkey_file is not None:
        if pubkey:
            raise UsageError("give --pubkey or --pubkey-file, not both")
        pubkey = read_local_text(ns.pubkey_file, what="--pubkey-file").strip()
    from .keyfiles import parse_rebuilder_key

    rebuilders = tuple(ns.rebuilder)  # already normalised by cliargs.rebuilder_url: one spelling per rebuilder
    dup = next((u for i, u in enumerate(rebuilders) if u in rebuilders[:i]), None)
    if dup is not None:
        raise UsageError(f"--rebuilder {dup} is given twice: each rebuilder counts once")
    keys: list[tuple[str, str]] = []
    for item in ns.rebuilder_key:
        url, key = parse_rebuilder_key(_key_file_contents(item))
        if url in dict(keys):
            raise UsageError(f"--rebuilder-key for {url} is given twice")
        keys.append((url, key))
    log_key = ns.log_key
    if log_key and "BEGIN PUBLIC KEY" not in log_key:
        log_key = read_local_text(log_key, what="--log-key")
        if "BEGIN PUBLIC KEY" not in log_key:
            raise ConfigError(f"--log-key {ns.log_key} does not hold a PEM public key (-----BEGIN PUBLIC KEY-----)")
    sigsum_key = sigsum_policy = None
    if ns.sigsum_key:
        from .keyfiles import load_sigsum_key, load_sigsum_policy

        if ns.sigsum_policy is None:
            raise ConfigError("--sigsum-key needs --sigsum-policy (which logs and witnesses a proof must show)")
        sigsum_key = load_sigsum_key(ns.sigsum_key)
        sigsum_policy = load_sigsum_policy(ns.sigsum_policy)
    if ns.audit_circuits and not (ns.tor_control or ns.tor):
        raise UsageError("--audit-circuits needs --tor-control or --tor launch")
    if ns.tor_config and not ns.tor:
        raise UsageError("--tor-config goes with --tor launch")
    if ns.tor_config:
        read_local_text(ns.tor_config, what="--tor-config")  # a regular, small text file, checked before tor starts
    if ns.tor and ns.proxy:
        raise UsageError("--tor launch starts its own proxy: do not also give --proxy")
    limits = Limits(package_max_bytes=ns.max_size)
    timeouts = Timeouts(connect=ns.connect_timeout, idle_read=ns.read_timeout, download_total=ns.deadline,
                        rebuilder=ns.rebuilder_timeout, lookup_total=ns.lookup_timeout,
                        low_speed_limit=ns.low_speed_limit, low_speed_time=ns.low_speed_time)
    ua = os.environ.get("HTTP_USER_AGENT") if ns.pacman_user_agent else None
    if repo is not None:
        hint = f"the [[repo]] in {cfg.source if cfg else '?'} that matches it has no pubkey: add one"
    elif cfg is not None and cfg.repos:
        hint = f"no [[repo]] in {cfg.source} matches {ns.url}: add one with its pubkey, or give --pubkey"
    else:
        hint = "give --pubkey or --sigsum-key with --sigsum-policy (or a [[repo]] table with them in the config)"
    return Options(
        url=ns.url, output=ns.output, verbose=ns.verbose, quiet=ns.quiet, transparency_url=ns.transparency_url,
        pubkey=pubkey, proxy=ns.proxy, direct=ns.direct, bypass_proxy_for_pkgs=ns.bypass_proxy_for_pkgs,
        rebuilders=rebuilders, required_rebuild_confirms=ns.required_rebuild_confirms, rebuilder_keys=tuple(keys),
        fail_on_bad=ns.fail_on_bad, log_url=ns.log_url, log_key=log_key, log_origin=ns.log_origin, state_dir=ns.state_dir,
        no_upload=ns.no_upload, isolate=ns.isolate, tor_control=ns.tor_control, tor_launch=ns.tor == "launch",
        tor_config=ns.tor_config, audit_circuits=ns.audit_circuits, pacman_conf=ns.pacman_conf, user_agent=ua, limits=limits, timeouts=timeouts,
        sigsum_key=sigsum_key, sigsum_policy=sigsum_policy,
        sigsum_policy_file=str(ns.sigsum_policy) if sigsum_policy is not None else None,
        config_file=cfg.source if cfg else None, missing_pubkey_hint=hint, config_note=_config_note(cfg, repo, ns.url),
    )


def _config_note(cfg: ConfigFile | None, repo: RepoTable | None, url: str) -> str | None:
    if cfg is None or cfg.source == os.devnull:
        return None
    if repo is None:
        return f"config {cfg.source}: no [[repo]] matches this URL"
    best = max((m for m in repo.matches if m.covers(url)), key=lambda m: m.specificity)
    return f"config {cfg.source}: [[repo]] {best.text} applies"


def _key_file_contents(item: str) -> str:
    """``URL=KEY`` where KEY names a file → ``URL=<its text>``, read capped (a FIFO or /dev/zero costs a line)."""
    url, sep, key = item.partition("=")
    k = key.strip()
    inline = (len(k) == 64 and all(c in "0123456789abcdefABCDEF" for c in k)) or "BEGIN PUBLIC KEY" in k \
        or k.startswith("MC")
    if not sep or not k or inline:
        return item
    return f"{url}={read_local_text(k, what='--rebuilder-key file').strip()}"



def _fail(exc: TorfetchError, verbose: int) -> int:
    if sys.stderr is None:
        return exc.exit_code  # fd 2 closed at start: print(file=None) would put the line on stdout
    from .report import terminal_lines

    # a message may quote what a file or server said (a config file's TOML key, say): no terminal escapes
    text = terminal_lines(exc.diagnostics() if verbose else exc.one_line())
    try:
        print(text, file=sys.stderr, flush=True)
    except OSError:
        pass  # stderr is gone (SIGHUP from a closed terminal): the exit code still tells
    return exc.exit_code


def entry() -> NoReturn:
    """The console script (``torfetch``, ``python -m torfetch``): main(), then out without tearing the
    interpreter down. With trio, httpx and cryptography loaded that teardown costs ~80 ms here, and pacman
    runs torfetch once per file. By then every file torfetch wrote is closed (the output fsynced and renamed,
    state files written atomically) and every child process reaped; only stdout and stderr need flushing.
    Subcommands (prefetch, sign, monitor, ...) exit normally: once per run, the saving is not worth it."""
    args = sys.argv[1:]
    code = main()
    if args and args[0] in SUBCOMMANDS:
        sys.exit(code)
    for stream in (sys.stdout, sys.stderr):
        if stream is None:
            continue  # the fd was closed when we started (Python sets None): nothing was written there
        try:
            stream.flush()
        except (OSError, ValueError):
            pass  # a closed pipe: the exit code still tells
    os._exit(code)


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args and args[0] in SUBCOMMANDS:
        import importlib

        # log, setup, and the operator tools sign and monitor: each its own parser and runner
        return importlib.import_module(f"torfetch.commands.{args[0]}").main(args[1:])
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

        report = Reporter(verbose=opts.verbose, quiet=opts.quiet)
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
            if sys.stderr is not None:  # (None: print would write to stdout)
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
