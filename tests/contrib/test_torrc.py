"""contrib/torrc, read by Debian's tor as a user pastes it (and with its optional control-port lines enabled).

The private Tor network's client runs contrib/torrc's SocksPort line (tests/tornet.py; checked in
tests/tor/test_contrib_torrc.py), so the tor tests exercise the shipped isolation setting.
"""

from __future__ import annotations

import re
import subprocess
from pathlib import Path

from tests.tornet import CONTRIB_TORRC, contrib_socks_line


def verify_config(text: str, tmp_path: Path) -> list[str]:
    """tor's own check of a torrc; the warnings it prints (tor accepts unknown SocksPort flags with a warning)."""
    (tmp_path / "torrc").write_text(text)
    data = tmp_path / "data"
    data.mkdir(mode=0o700)
    r = subprocess.run(["tor", "--verify-config", "-f", str(tmp_path / "torrc"), "--defaults-torrc", "/dev/null",
                        "--DataDirectory", str(data)], capture_output=True, text=True, timeout=60)
    assert r.returncode == 0 and "Configuration was valid" in r.stdout, r.stdout + r.stderr
    return [ln for ln in (r.stdout + r.stderr).splitlines()
            if re.search(r"\[(warn|err)\]", ln) and "running Tor as root" not in ln]


def test_tor_accepts_the_snippet_as_shipped(tmp_path: Path) -> None:
    assert verify_config(CONTRIB_TORRC.read_text(), tmp_path) == []


def test_tor_accepts_the_optional_control_port_lines(tmp_path: Path) -> None:
    text = CONTRIB_TORRC.read_text()
    enabled = re.sub(r"^#(?=[A-Z][A-Za-z]+ )", "", text, flags=re.M)
    assert "\nControlPort 127.0.0.1:9051\n" in enabled and "\nCookieAuthentication 1\n" in enabled
    assert verify_config(enabled, tmp_path) == []


def test_socksport_isolates_by_credentials() -> None:
    words = contrib_socks_line(9050).split()
    assert words[:2] == ["SocksPort", "127.0.0.1:9050"]
    assert "IsolateSOCKSAuth" in words[2:] and "NoIsolateSOCKSAuth" not in words
    assert contrib_socks_line(12345).split()[1] == "127.0.0.1:12345"
