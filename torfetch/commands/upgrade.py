"""`torfetch upgrade`: ``pacman -Sy``, then ``torfetch prefetch``, then ``pacman -Su``; stops at the first failure.

    torfetch upgrade [--pacman-conf FILE] [--jobs N] [fetch options] [-- pacman args...]

Why: pacman runs XferCommand for one file at a time, so a verified upgrade over Tor pays every package's round
trips one after another. The prefetch verifies them several at once into CacheDir; ``pacman -Su`` then finds
them there and calls XferCommand for none of them (a package the prefetch could not place is refused by the
prefetch, and the upgrade stops before pacman runs). pacman's own exit code is passed through; the prefetch's
is 1 (verification), 2 (usage) or 3 (network/Tor). The pacman arguments (``--noconfirm``, ``--ignore PKG``...)
go to all three steps.
"""

from __future__ import annotations

import signal
import subprocess
import sys

from .prefetch import build_parser as prefetch_parser
from .prefetch import _print, check_pacman_conf, pacman_command, parse, run_prefetch


def build_parser():
    p = prefetch_parser()
    p.prog = "torfetch upgrade"
    p.description = ("pacman -Sy, then torfetch prefetch (every package of the upgrade downloaded and verified, "
                     "several at once, into CacheDir), then pacman -Su; stops at the first step that fails. "
                     "Arguments after '--' go to pacman.")
    p.epilog = "Exit code: the first failing step's (pacman's own, or the prefetch's: 1 verification, 2 usage, 3 network)."
    return p


def _pacman(cmd: list[str]) -> int:
    """Run pacman in the foreground; Ctrl-C is pacman's to handle while it runs (it reaches the whole group)."""
    previous = signal.signal(signal.SIGINT, lambda signum, frame: None)  # a handler, not SIG_IGN: exec resets it
    try:
        return subprocess.run(cmd, check=False).returncode
    except FileNotFoundError:
        print(f"torfetch upgrade: {cmd[0]} is not installed", file=sys.stderr)
        return 2
    finally:
        signal.signal(signal.SIGINT, previous)


def main(argv: list[str]) -> int:
    from ..errors import TorfetchError

    argv = list(argv)
    try:
        ns, pacman_args = parse(build_parser(), argv)
        check_pacman_conf(ns.pacman_conf)  # before pacman -Sy, which would block on a FIFO
    except TorfetchError as exc:
        _print(exc.one_line())  # printable only: the line may quote a config file's key
        return exc.exit_code
    conf = ns.pacman_conf
    code = _pacman(pacman_command(conf, "-Sy", pacman_args=pacman_args))
    if code != 0:
        return code
    code, _ = run_prefetch(argv)
    if code != 0:
        print(f"torfetch upgrade: the prefetch failed (exit {code}): pacman -Su was not run (the packages the "
              "prefetch placed stay in CacheDir; leave a refused one out with -- --ignore PKG)", file=sys.stderr)
        return code
    return _pacman(pacman_command(conf, "-Su", pacman_args=pacman_args))
