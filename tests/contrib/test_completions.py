"""contrib/completions: bash and zsh completions that cover every option of every torfetch command.

The option lists are compared with torfetch's own argparse parsers (a new option without completion fails,
and so does a completed option that torfetch no longer has); the bash completion is run for real in bash, the zsh
one is parsed by zsh and loaded through compinit.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

import pytest

from torfetch import cli

from .parsers import Command, commands, log_subcommands

ROOT = Path(__file__).resolve().parents[2]
BASH = ROOT / "contrib/completions/torfetch.bash"
ZSH = ROOT / "contrib/completions/_torfetch"
COMMANDS = commands()
IDS = [c.key for c in COMMANDS]

# options that read or write a path, and the kind of completion they must get
FILE_OPTIONS = {"fetch": {"-O": "file", "--output": "file", "--config": "file", "--pubkey-file": "file",
                          "--log-key": "file", "--tor-config": "file", "--state-dir": "dir"},
                "log_verify_entry": {"--log-key": "file"}, "log_status": {"--state-dir": "dir"},
                "setup": {"--state-dir": "dir", "--pacman-conf": "file"},
                "sign": {"--signature-dir": "dir", "--pubkey-path": "file", "--seckey-path": "file",
                         "--log-key": "file", "--state-dir": "dir", "--repo-db": "file"},
                "monitor": {"--pubkey": "file", "--repo-db": "file", "--log-key": "file", "--state-dir": "dir",
                            "--signer-state": "dir"},
                **{cmd: {"--config": "file", "--pubkey-file": "file", "--log-key": "file", "--tor-config": "file",
                         "--state-dir": "dir", "--pacman-conf": "file"} for cmd in ("prefetch", "upgrade")}}


def test_every_subcommand_has_a_completion() -> None:
    assert {c.words[1] for c in COMMANDS if len(c.words) > 1} == set(cli.SUBCOMMANDS)
    assert set(FILE_OPTIONS) == set(IDS)


# --- bash: the lists, then the function itself -------------------------------------------------------------------


def _bash_list(name: str) -> set[str]:
    m = re.search(rf"^{name}='([^']*)'", BASH.read_text(), re.M)
    assert m, f"{BASH} has no {name}"
    return set(m.group(1).split())


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_bash_lists_match_the_parser(cmd: Command) -> None:
    assert _bash_list(f"_torfetch_opts_{cmd.key}") == cmd.options()
    assert _bash_list(f"_torfetch_args_{cmd.key}") == cmd.value_options()


def complete_bash(*words: str, cwd: Path | None = None) -> list[str]:
    """Run the completion function as bash does on TAB with the cursor at the end of the last word."""
    script = f'source {BASH}; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); _torfetch; printf "%s\\n" "${{COMPREPLY[@]}}"'
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", script, "bash", *words], capture_output=True,
                         text=True, timeout=30, check=True, cwd=cwd)
    assert out.stderr == ""
    return [w for w in out.stdout.split("\n") if w]


def test_bash_offers_an_option_from_its_prefix() -> None:
    assert complete_bash("torfetch", "--iso") == ["--isolate"]
    assert complete_bash("torfetch", "sign", "--seck") == ["--seckey-path"]


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_bash_offers_every_long_option(cmd: Command) -> None:
    assert set(complete_bash(*cmd.words, "--")) == {o for o in cmd.options() if o.startswith("--")}


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.choices()], ids=[c.key for c in COMMANDS if c.choices()])
def test_bash_offers_the_choices(cmd: Command) -> None:
    for option, choices in cmd.choices().items():
        assert sorted(complete_bash(*cmd.words, option, "")) == sorted(choices)
        # --opt=value: bash splits it into "--opt" "=" "value"
        assert sorted(complete_bash(*cmd.words, option, "=", "")) == sorted(choices)
        assert complete_bash(*cmd.words, option, choices[0][:-1]) == [choices[0]]


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_bash_completes_paths(cmd: Command, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    for option, kind in FILE_OPTIONS[cmd.key].items():
        got = sorted(complete_bash(*cmd.words, option, "a", cwd=tmp_path))
        assert got == (["adir", "afile"] if kind == "file" else ["adir"]), option


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_bash_never_offers_an_option_as_a_value(cmd: Command, tmp_path: Path) -> None:
    # the word after an option that takes a value is that value (argparse reads "--proxy -x" so): no options
    for option in cmd.value_options():
        assert [w for w in complete_bash(*cmd.words, option, "-", cwd=tmp_path) if w.startswith("-")] == [], option


def test_bash_offers_the_subcommands() -> None:
    assert set(complete_bash("torfetch", "")) == set(cli.SUBCOMMANDS)
    assert complete_bash("torfetch", "mo") == ["monitor"]
    assert set(complete_bash("torfetch", "log", "")) >= set(log_subcommands())
    # torfetch runs a subcommand only when it is the first argument: later, "lo" is the URL
    assert complete_bash("torfetch", "-O", "x", "lo") == []


def test_bash_registers_the_function() -> None:
    out = subprocess.run(["bash", "--norc", "--noprofile", "-c", f"source {BASH}; complete -p torfetch"],
                         capture_output=True, text=True, timeout=30, check=True)
    assert out.stdout.strip() == "complete -F _torfetch torfetch"


# --- zsh ---------------------------------------------------------------------------------------------------------

_SPEC = re.compile(r"""^\s*'(?:\([^)]*\))?\*?(?:'\{(?P<pair>[^}]*)\}'|(?P<one>-[^\[=+']+))""")


def _zsh_function(name: str) -> str:
    m = re.search(rf"^{name}\(\) {{\n(.*?)^}}", ZSH.read_text(), re.M | re.S)
    assert m, f"{ZSH} has no function {name}"
    return m.group(1)


def _zsh_specs(name: str) -> dict[str, str]:
    """option → its _arguments spec line, for each option the function defines."""
    specs: dict[str, str] = {}
    for line in _zsh_function(name).splitlines():
        m = _SPEC.match(line)
        if not m:
            continue
        names = m.group("pair").split(",") if m.group("pair") else [m.group("one")]
        for n in names:
            specs[n.rstrip("=+")] = line
    return specs


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_zsh_specs_match_the_parser(cmd: Command) -> None:
    specs = _zsh_specs(f"_torfetch_{cmd.key}")
    assert set(specs) == cmd.options()
    # an option that takes a value has an argument spec ("]:description:action"), the others have none
    assert {o for o, line in specs.items() if re.search(r"\]:", line)} == cmd.value_options()
    for option, choices in cmd.choices().items():
        assert f":({' '.join(choices)})'" in specs[option], option
    for option, kind in FILE_OPTIONS[cmd.key].items():
        assert (":_files" if kind == "file" else ":_directories") in specs[option], option


def test_zsh_dispatches_every_subcommand() -> None:
    top = _zsh_function("_torfetch")
    for sub in cli.SUBCOMMANDS:
        assert re.search(rf"\b{sub}\b", top.split("\n")[1]), sub  # the dispatch pattern
        assert f"'{sub}:" in top  # described when the first word is completed
    log_fn = _zsh_function("_torfetch_log")
    for sub in log_subcommands():
        assert f"{sub}\\:" in log_fn and f"({sub}) _torfetch_log_{sub.replace('-', '_')}" in log_fn


def test_zsh_parses_and_compinit_binds_it(tmp_path: Path) -> None:
    subprocess.run(["zsh", "-n", str(ZSH)], check=True, timeout=30)
    script = (f"fpath=({ZSH.parent} $fpath); autoload -U compinit; compinit -u -d {tmp_path}/zcompdump; "
              "print -r -- $_comps[torfetch]; autoload +X _torfetch && print loaded")
    out = subprocess.run(["zsh", "-f", "-c", script], capture_output=True, text=True, timeout=60, check=True,
                         env={"PATH": "/usr/bin:/bin", "HOME": str(tmp_path)})
    assert out.stdout.split() == ["_torfetch", "loaded"], out.stderr


# --- zsh, for real: the completion system in an interactive zsh on a pseudo-terminal (tests/contrib/zsh_capture.zsh)

CAPTURE = Path(__file__).with_name("zsh_capture.zsh")


def complete_zsh(line: str, cwd: Path) -> set[str]:
    """What zsh offers on TAB at the end of ``line`` (compinit with contrib/completions first in $fpath)."""
    out = subprocess.run(["zsh", "-f", str(CAPTURE), str(ZSH.parent), str(cwd), line], capture_output=True,
                         text=True, timeout=60, env={"PATH": "/usr/bin:/bin", "HOME": str(cwd), "TERM": "dumb"})
    assert out.returncode == 0, out.stderr
    return {w.strip() for w in out.stdout.splitlines() if w.strip()}


def test_zsh_offers_an_option_from_its_prefix(tmp_path: Path) -> None:
    assert complete_zsh("torfetch --iso", tmp_path) == {"--isolate"}
    assert complete_zsh("torfetch sign --seck", tmp_path) == {"--seckey-path"}


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_zsh_offers_every_long_option(cmd: Command, tmp_path: Path) -> None:
    assert complete_zsh(" ".join(cmd.words) + " --", tmp_path) == {o for o in cmd.options() if o.startswith("--")}


@pytest.mark.parametrize("cmd", [c for c in COMMANDS if c.choices()], ids=[c.key for c in COMMANDS if c.choices()])
def test_zsh_offers_the_choices(cmd: Command, tmp_path: Path) -> None:
    for option, choices in cmd.choices().items():
        if option.startswith("--"):
            assert complete_zsh(" ".join((*cmd.words, option, "")), tmp_path) == set(choices)
            assert complete_zsh(" ".join(cmd.words) + f" {option}=", tmp_path) == set(choices)


@pytest.mark.parametrize("cmd", COMMANDS, ids=IDS)
def test_zsh_completes_paths(cmd: Command, tmp_path: Path) -> None:
    (tmp_path / "afile").write_text("")
    (tmp_path / "adir").mkdir()
    for option, kind in FILE_OPTIONS[cmd.key].items():
        got = complete_zsh(" ".join((*cmd.words, option, "a")), tmp_path)
        assert got == ({"adir", "afile"} if kind == "file" else {"adir"}), option


def test_zsh_offers_the_subcommands(tmp_path: Path) -> None:
    assert complete_zsh("torfetch ", tmp_path) >= set(cli.SUBCOMMANDS)
    assert complete_zsh("torfetch mon", tmp_path) == {"monitor"}
    assert complete_zsh("torfetch log ", tmp_path) == set(log_subcommands())
    assert complete_zsh("torfetch -O x lo", tmp_path) == set()  # a subcommand only as the first argument
