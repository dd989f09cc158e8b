"""The network-layer flags reach Timeouts, and bad values are usage errors (exit 2) before any network work."""

from __future__ import annotations

import pytest

from torfetch.cli import build_parser, main, options_from_args
from torfetch.config import Timeouts


def test_flags_reach_timeouts() -> None:
    ns = build_parser().parse_args(["-O", "/tmp/x", "--lookup-timeout", "7.5", "--low-speed-limit", "10",
                                    "--low-speed-time", "4", "http://m.test/core.db"])
    t = options_from_args(ns).timeouts
    assert (t.lookup_total, t.low_speed_limit, t.low_speed_time) == (7.5, 10, 4.0)
    d = options_from_args(build_parser().parse_args(["-O", "/tmp/x", "http://m.test/core.db"])).timeouts
    assert (d.lookup_total, d.low_speed_limit, d.low_speed_time) == (Timeouts.lookup_total, 1024, 30.0)
    off = options_from_args(build_parser().parse_args(["-O", "/tmp/x", "--low-speed-limit", "0", "http://m.test/x"]))
    assert off.timeouts.low_speed_limit == 0


@pytest.mark.parametrize("args", [["--lookup-timeout", "0"], ["--lookup-timeout", "nan"], ["--low-speed-time", "-1"],
                                  ["--low-speed-limit", "-1"], ["--low-speed-limit", "1.5"]])
def test_bad_values_are_usage_errors(args: list[str], tmp_path, capsys) -> None:
    out = tmp_path / "core.db.part"
    assert main(["-O", str(out), *args, "http://m.test/core.db"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("torfetch: usage: ") and args[0] in err[0], err
    assert not out.exists()
