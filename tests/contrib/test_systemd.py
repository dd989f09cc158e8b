"""contrib/systemd: the monitor's service and timer, checked by the host's systemd-analyze, and their state
directory against contrib/tmpfiles.d (the fetch path's) and torfetch's defaults."""

from __future__ import annotations

import re
import shlex
import subprocess
import sys
import tomllib
from pathlib import Path

from torfetch.commands import monitor
from torfetch.store.statedir import SYSTEM_STATE_DIR

ROOT = Path(__file__).resolve().parents[2]
UNITS = ROOT / "contrib/systemd"
SERVICE = UNITS / "torfetch-monitor.service"
TIMER = UNITS / "torfetch-monitor.timer"
TMPFILES = ROOT / "contrib/tmpfiles.d/torfetch.conf"
VENV_TORFETCH = Path(sys.executable).parent / "torfetch"


def _settings(path: Path) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for line in path.read_text().splitlines():
        if line and not line.startswith(("#", ";", "[")):
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
    return out


def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path) -> None:
    # the units as shipped, but with ExecStart at the torfetch this test runs (no /usr/bin/torfetch here)
    assert "ExecStart=/usr/bin/torfetch " in SERVICE.read_text()
    (tmp_path / SERVICE.name).write_text(SERVICE.read_text().replace("/usr/bin/torfetch", str(VENV_TORFETCH)))
    (tmp_path / TIMER.name).write_text(TIMER.read_text())
    r = subprocess.run(["systemd-analyze", "verify", str(tmp_path / SERVICE.name), str(tmp_path / TIMER.name)],
                       capture_output=True, text=True, timeout=120)
    # an unknown key or a bad value is only a warning to systemd: any output counts as a failure here
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")


def test_timer_starts_the_service() -> None:
    timer = _settings(TIMER)
    assert timer["OnCalendar"] and timer["WantedBy"] == ["timers.target"]
    assert "Unit" not in timer  # so it starts the service of the same name
    assert _settings(SERVICE)["Type"] == ["oneshot"]


def test_exec_start_is_a_monitor_command_line() -> None:
    svc = _settings(SERVICE)
    [exec_start] = svc["ExecStart"]
    words = shlex.split(exec_start)
    assert words[:2] == ["/usr/bin/torfetch", "monitor"]
    # the example monitor.env in the unit's comment, with what systemd substitutes, parses as torfetch monitor's
    [example] = re.findall(r"^#\s+TORFETCH_MONITOR_ARGS=(.*)$", SERVICE.read_text(), re.M)
    argv = [w for w in words[2:] if w != "$TORFETCH_MONITOR_ARGS"] + shlex.split(example)
    argv = [w.replace("${STATE_DIRECTORY}", "/var/lib/torfetch-monitor") for w in argv]
    ns = monitor.build_parser().parse_args(argv)
    assert ns.state_dir == Path("/var/lib/torfetch-monitor") and ns.pubkey and ns.repo_db
    for flag in re.findall(r"(?<![\w-])--[a-z][a-z-]*", SERVICE.read_text()):
        assert flag in monitor.build_parser()._option_string_actions, flag


def test_state_directories_agree() -> None:
    # the fetch path's directory: the tmpfiles line, torfetch's default, setup's default and the example config
    [line] = [ln for ln in TMPFILES.read_text().splitlines() if ln and not ln.startswith("#")]
    kind, path, mode, user, group, _age = line.split()
    assert (kind, Path(path), mode, user, group) == ("d", SYSTEM_STATE_DIR, "0700", "alpm", "alpm")
    assert tomllib.loads((ROOT / "contrib/torfetch.toml").read_text())["state_dir"] == str(SYSTEM_STATE_DIR)
    # the monitor keeps its own: DynamicUser= owns what StateDirectory= names, and that is never the fetch path's
    svc = _settings(SERVICE)
    assert svc["DynamicUser"] == ["yes"]
    [state] = svc["StateDirectory"]
    assert Path("/var/lib") / state != SYSTEM_STATE_DIR
    assert "--state-dir ${STATE_DIRECTORY}" in svc["ExecStart"][0]  # not monitor's own default
