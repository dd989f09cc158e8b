"""What the Sigsum operator tools print: one program prefix per line, the log and the policy that named it."""

from __future__ import annotations

from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from tests.operator.helpers import closed_port, handmade_db, run
from tests.operator.test_sigsum_monitor import HandMadeLog, raw


def test_a_log_that_is_down_is_one_problem_line_naming_the_log_without_a_second_prefix(tmp_path: Path) -> None:
    op = Ed25519PrivateKey.generate()
    db = handmade_db(tmp_path / "r.db.tar.gz", [("p", "1-1", "p-1-1-any.pkg.tar.zst", "ab" * 32)])
    with HandMadeLog() as log:
        policy = log.policy(tmp_path / "policy")
    down = f"http://127.0.0.1:{closed_port()}"
    policy.write_text(policy.read_text().replace(log.base_url, down))
    r = run("monitor", "--repo-db", str(db), "--state-dir", str(tmp_path / "st"), "--sigsum-policy", str(policy),
            "--sigsum-key", raw(op).hex())
    assert r.returncode == 1, r.stdout + r.stderr  # a PROBLEM, as every log misbehaviour of the monitor
    (line,) = [ln for ln in r.stdout.splitlines() if "PROBLEM" in ln]
    assert line.startswith(f"torfetch monitor: PROBLEM: Sigsum log {down}: "), line
    assert line.count("torfetch") == 1 and "network:" not in line, line
    assert "get-tree-head" in line, line
