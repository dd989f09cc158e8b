"""torfetch prefetch / upgrade: argument handling and the exit-code rule (no network; the runs are in tests/e2e)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
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


# --- hostile environment: what pacman prints, what pacman.conf is ------------------------------------------------

_ESCAPES = "\x1b]0;pwned\x07\x1b[2J\x1b[31m"  # set the terminal's title, clear the screen, red


def _run_cli(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    # a subprocess, so that a pacman that blocks (on a FIFO, say) fails the test in `timeout` s, not after 600 s;
    # its own session, so that a pacman left blocking is killed with it
    proc = subprocess.Popen([sys.executable, "-m", "torfetch", *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, text=True, start_new_session=True,
                            env={**os.environ, "LC_ALL": "C"})
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.communicate()
        raise
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def _conf(tmp_path: Path, body: str) -> Path:
    (tmp_path / "db/sync").mkdir(parents=True, exist_ok=True)
    conf = tmp_path / "pacman.conf"
    conf.write_text(f"[options]\nDBPath = {tmp_path}/db/\n{body}")
    return conf


def test_pacmans_failing_stderr_reaches_the_terminal_without_escapes(tmp_path: Path) -> None:
    # real pacman echoes an Include path as it is in pacman.conf, escapes and all, and exits 1: the usage error that
    # quotes its last line must not pass them to the terminal (upgrade's pacman -Sy writes to the terminal itself,
    # as pacman run by hand does: not torfetch's text)
    conf = _conf(tmp_path, f"[core]\nInclude = /nonexistent{_ESCAPES}\n")
    r = _run_cli("prefetch", "--config", os.devnull, "--direct", "--pacman-conf", str(conf))
    assert r.returncode == 2, r.stderr
    assert "pacman exited 1" in r.stderr and "/nonexistent" in r.stderr, r.stderr
    assert not [c for c in r.stderr if not c.isprintable() and c != "\n"], repr(r.stderr)


def test_pacmans_warnings_and_an_odd_repo_name_reach_the_terminal_without_escapes(tmp_path: Path) -> None:
    # pacman warns (exit 0) about a directive it does not know, quoting it, and torfetch warns about the missing db
    # of a repo whose name has odd characters (a name with escapes never gets that far: torfetch's parser drops it)
    conf = _conf(tmp_path, f"Foo{_ESCAPES} = 1\n[co-re_+.@]\nServer = http://mirror.invalid/\n")
    r = _run_cli("prefetch", "--config", os.devnull, "--direct", "--pacman-conf", str(conf))
    assert "pacman: warning" in r.stderr and "warning: no sync db" in r.stderr, r.stderr
    assert not [c for c in r.stderr if not c.isprintable() and c != "\n"], repr(r.stderr)


def _fifo(tmp_path: Path) -> Path:
    os.mkfifo(tmp_path / "fifo")
    return tmp_path / "fifo"


def _huge(tmp_path: Path) -> Path:
    p = _conf(tmp_path, "")
    with p.open("a") as f:
        f.write("# padding\n" * 200_000)  # 2 MB of comments: over pacman.conf's limit
    return p


def _link_to_fifo(tmp_path: Path) -> Path:
    (tmp_path / "link").symlink_to(_fifo(tmp_path))
    return tmp_path / "link"


@pytest.mark.parametrize("command", ["prefetch", "upgrade"])
@pytest.mark.parametrize("make", [_fifo, lambda _: Path("/dev/zero"), _huge, _link_to_fifo],
                         ids=["fifo", "dev-zero", "huge", "symlink-to-fifo"])
def test_a_pacman_conf_that_is_no_regular_file_is_refused_before_pacman_runs(tmp_path: Path, command: str,
                                                                              make) -> None:
    # pacman --config FIFO blocks until a writer comes (upgrade's pacman -Sy has no timeout at all); /dev/zero is
    # read for ever: one line, exit 2, and pacman never runs
    conf = make(tmp_path)
    r = _run_cli(command, "--config", os.devnull, "--direct", "--pacman-conf", str(conf), timeout=30)
    assert r.returncode == 2, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and "--pacman-conf" in lines[0] and "pacman exited" not in lines[0], r.stderr


@pytest.mark.parametrize("command", ["prefetch", "upgrade"])
def test_a_config_file_key_with_escapes_is_one_printable_line(tmp_path: Path, command: str) -> None:
    # the unknown-key error quotes the key as written: a TOML key can hold any character
    bad = tmp_path / "torfetch.toml"
    bad.write_text('"k\\u001b]0;pwned\\u0007" = 1\n')
    r = _run_cli(command, "--config", str(bad), "--direct")
    assert r.returncode == 2, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "unknown key" in r.stderr, r.stderr
    assert not [c for c in r.stderr if not c.isprintable() and c != "\n"], repr(r.stderr)
