"""torfetch prefetch / upgrade: argument handling and the exit-code rule (no network; the runs are in tests/e2e)."""

from __future__ import annotations

from pathlib import Path

import pytest

from torfetch import cli
from torfetch.commands import prefetch, upgrade
from torfetch.errors import NetworkError, NotFoundError, SignatureError, TorfetchError, UsageError


def test_pacman_arguments_go_after_the_separator() -> None:
    ns, pacman_args = prefetch.parse(prefetch.build_parser(), ["--jobs", "2", "--direct", "--", "--ignore", "linux",
                                                               "-v"])
    assert (ns.jobs, ns.direct, ns.verbose) == (2, True, 0)  # pacman's -v is not torfetch's
    assert pacman_args == ["--ignore", "linux", "-v"]
    ns, pacman_args = prefetch.parse(prefetch.build_parser(), ["--pacman-conf", "/x/pacman.conf"])
    assert (ns.pacman_conf, ns.jobs, pacman_args) == (Path("/x/pacman.conf"), prefetch.DEFAULT_JOBS, [])


@pytest.mark.parametrize("argv", [["--noconfirm"], ["linux"], ["--jobs", "2", "--needed", "--", "x"]])
def test_a_word_torfetch_does_not_know_is_a_usage_error_naming_the_fix(argv: list[str]) -> None:
    with pytest.raises(UsageError, match="pacman's arguments go after '--'"):
        prefetch.parse(prefetch.build_parser(), argv)


@pytest.mark.parametrize("bad", [["--jobs", "0"], ["--jobs", "x"], ["-O", "out"]])
def test_bad_own_options(bad: list[str]) -> None:
    with pytest.raises(UsageError):
        prefetch.parse(prefetch.build_parser(), bad)


def test_the_fetch_options_are_the_xfercommand_ones_without_output_and_url() -> None:
    fetch = {s for a in cli.build_parser()._actions for s in a.option_strings}
    for parser in (prefetch.build_parser(), upgrade.build_parser()):
        own = {s for a in parser._actions for s in a.option_strings}
        assert own == (fetch - {"-O", "--output"}) | {"--jobs"}


def _result(*errors: TorfetchError | None) -> prefetch.PrefetchResult:
    r = prefetch.PrefetchResult(cachedir="/c")
    for i, e in enumerate(errors):
        r.outcomes.append(prefetch.Outcome(f"p{i}", state="failed" if e else "placed", error=e))
    return r


def test_exit_code_verification_over_network_over_usage() -> None:
    assert _result(None, None).exit_code() == 0
    assert _result().exit_code() == 0
    assert _result(None, NotFoundError("x")).exit_code() == 3
    assert _result(UsageError("u"), NotFoundError("x"), SignatureError("s")).exit_code() == 1
    assert _result(UsageError("u")).exit_code() == 2
    assert _result(NetworkError("n"), UsageError("u")).exit_code() == 3


def test_summary_counts_every_state() -> None:
    r = _result(None, SignatureError("s"))
    r.outcomes.append(prefetch.Outcome("c", state="cached"))
    r.outcomes.append(prefetch.Outcome("l", state="local"))
    assert prefetch.summary(r) == ("torfetch prefetch: 4 package(s) in the upgrade: 1 placed, 1 already there, "
                                   "1 local (file://), 1 failed (CacheDir /c)")


def test_upgrade_usage_error_runs_nothing(capsys) -> None:
    assert upgrade.main(["--no-such-option"]) == 2
    assert "pacman's arguments go after '--'" in capsys.readouterr().err


def test_subcommands_are_dispatched() -> None:
    assert {"prefetch", "upgrade"} <= set(cli.SUBCOMMANDS)
