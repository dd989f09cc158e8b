"""`torfetch log verify-entry` and `torfetch log status` as a user runs them."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

VECTOR = Path(__file__).parent.parent / "vectors" / "rekor" / "bundle_v3_github-79605083.json"


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([sys.executable, "-m", "torfetch", "log", *args], capture_output=True, text=True, timeout=60)


def test_verify_real_entry_prints_global_index() -> None:
    r = run("verify-entry", str(VECTOR))
    assert r.returncode == 0, r.stderr
    assert "log index 79605083" in r.stdout


def test_verify_tampered_entry_fails_with_one_line(tmp_path: Path) -> None:
    doc = json.loads(VECTOR.read_text())
    (entry,) = doc.values()
    entry["logIndex"] += 1
    f = tmp_path / "e.json"
    f.write_text(json.dumps(doc))
    r = run("verify-entry", str(f))
    assert r.returncode == 1
    assert len(r.stderr.strip().splitlines()) == 1 and "signed entry timestamp" in r.stderr


def test_verify_with_other_key_fails(tmp_path: Path) -> None:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    pem = ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
    (tmp_path / "k.pem").write_bytes(pem)
    r = run("verify-entry", str(VECTOR), "--log-key", str(tmp_path / "k.pem"))
    assert r.returncode == 1 and "pinned key" in r.stderr


def test_status_lists_trees(tmp_path: Path) -> None:
    r = run("status", "--state-dir", str(tmp_path))
    assert r.returncode == 0 and "no log tree heads" in r.stdout
    from torfetch.store.logstate import LogStateStore
    from torfetch.verify.logstate import LogState, TreeHead, TreeRecord

    with LogStateStore(tmp_path).locked() as st:
        st.put("ab" * 32, LogState("rekor.test", {42: TreeRecord(TreeHead(7, b"\x11" * 32), frozen=True),
                                                  43: TreeRecord(TreeHead(2, b"\x22" * 32))}))
    r = run("status", "--state-dir", str(tmp_path))
    assert r.returncode == 0, r.stderr
    assert "origin 'rekor.test'" in r.stdout
    assert "tree 42 frozen at size 7 root " + "11" * 32 in r.stdout
    assert "tree 43 at size 2 root " + "22" * 32 in r.stdout


def test_status_reads_a_version_1_file(tmp_path: Path) -> None:
    (tmp_path / "log-heads.json").write_text(json.dumps({"version": 1, "heads": {
        "ab" * 32 + "/42": {"size": 7, "root": "11" * 32, "origin": "rekor.test - 42"}}}))
    r = run("status", "--state-dir", str(tmp_path))
    assert r.returncode == 0 and "tree 42 at size 7" in r.stdout and "'rekor.test'" in r.stdout


def test_status_never_prints_state_text_raw(tmp_path: Path) -> None:
    evil = "\x1b]0;owned\x07\x1b[2J"
    (tmp_path / "log-heads.json").write_text(json.dumps({"version": 2, "logs": {"ab" * 32: {
        "origin": "rekor.test", "trees": {evil: {"size": 1, "root": "00" * 32, "frozen": False}}}}}))
    r = run("status", "--state-dir", str(tmp_path))
    assert r.returncode == 1
    assert "\x1b" not in r.stdout + r.stderr and "\x07" not in r.stdout + r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "corrupt" in r.stderr and "\\x1b" in r.stderr


def test_status_on_deeply_nested_state_is_a_state_error(tmp_path: Path) -> None:
    (tmp_path / "log-heads.json").write_bytes(b'{"version": 2, "logs": ' + b"[" * 200_000 + b"]" * 200_000 + b"}")
    r = run("status", "--state-dir", str(tmp_path))
    assert r.returncode == 1 and "RecursionError" not in r.stderr and "Traceback" not in r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and "state" in r.stderr and "corrupt" in r.stderr
