"""torfetch's argument parsers by command, as the completions and the contrib docs name them."""

from __future__ import annotations

import argparse
from dataclasses import dataclass

from torfetch import cli
from torfetch.commands import log, monitor, prefetch, setup, sign, upgrade


@dataclass(frozen=True)
class Command:
    key: str  # the completion files' name for it: _torfetch_<key>
    words: tuple[str, ...]  # what the user types before the options
    parser: argparse.ArgumentParser

    def options(self) -> set[str]:
        return {s for a in self.parser._actions for s in a.option_strings}

    def value_options(self) -> set[str]:
        """Options that take a value (the next word is not an option)."""
        return {s for a in self.parser._actions if a.option_strings and a.nargs != 0 for s in a.option_strings}

    def choices(self) -> dict[str, tuple[str, ...]]:
        return {s: tuple(a.choices) for a in self.parser._actions if a.option_strings and a.choices
                for s in a.option_strings}

    def action(self, option: str) -> argparse.Action:
        return next(a for a in self.parser._actions if option in a.option_strings)


def _subparsers(p: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    return next(a.choices for a in p._actions if isinstance(a, argparse._SubParsersAction))


def log_subcommands() -> tuple[str, ...]:
    return tuple(_subparsers(log._parser()))


def commands() -> list[Command]:
    # log and setup keep their parser private (_parser); sign and monitor export build_parser
    logs = _subparsers(log._parser())
    return [
        Command("fetch", ("torfetch",), cli.build_parser()),
        *(Command(f"log_{name.replace('-', '_')}", ("torfetch", "log", name), p) for name, p in logs.items()),
        Command("setup", ("torfetch", "setup"), setup._parser()),
        Command("sign", ("torfetch", "sign"), sign.build_parser()),
        Command("monitor", ("torfetch", "monitor"), monitor.build_parser()),
        Command("prefetch", ("torfetch", "prefetch"), prefetch.build_parser()),
        Command("upgrade", ("torfetch", "upgrade"), upgrade.build_parser()),
    ]
