"""A private Tor network on 127.0.0.1 from Debian's tor: 1 authority, 2 exits, 1 client.

Follows the measured recipe in the project notes: keys with tor-gencert and
--list-fingerprint, short voting intervals, exits that may reach 127.0.0.1,
the client started only once the consensus lists every relay. Start-up is
bounded (120 s); stop() kills every process by PID and removes the
directories. Exits resolve no names, so the client maps test names
(``*.test``) to 127.0.0.1 with MapAddress.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

COMMON = """TestingTorNetwork 1
PathsNeededToBuildCircuits 0.67
TestingDirAuthVoteExit *
TestingDirAuthVoteHSDir *
TestingDirAuthVoteGuard *
TestingMinExitFlagThreshold 0
V3AuthNIntervalsValid 2
RunAsDaemon 0
ShutdownWaitLength 0
SafeLogging 0
"""

CONTRIB_TORRC = Path(__file__).resolve().parents[1] / "contrib/torrc"

TEST_NAMES = ("mirror.test", "sigs.test", "rekor.test", "rebuilder1.test", "rebuilder2.test", "leak.test")


def free_ports(n: int) -> list[int]:
    socks = []
    try:
        for _ in range(n):
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            socks.append(s)
        return [s.getsockname()[1] for s in socks]
    finally:
        for s in socks:
            s.close()


def contrib_socks_line(port: int) -> str:
    """contrib/torrc's SocksPort line on ``port`` instead of 9050: the client runs the snippet torfetch ships."""
    lines = [ln for ln in CONTRIB_TORRC.read_text().splitlines() if ln.split()[:1] == ["SocksPort"]]
    if len(lines) != 1 or "127.0.0.1:9050" not in lines[0]:
        raise ValueError(f"{CONTRIB_TORRC}: expected one 'SocksPort 127.0.0.1:9050 ...' line, found {lines}")
    return lines[0].replace("127.0.0.1:9050", f"127.0.0.1:{port}")


def _run(cmd: list[str], **kw) -> subprocess.CompletedProcess[str]:
    return subprocess.run(cmd, capture_output=True, text=True, timeout=60, check=True, **kw)


def fingerprint(datadir: Path, nickname: str) -> str:
    out = _run(["tor", "--ignore-missing-torrc", "-f", "/dev/null", "--defaults-torrc", "/dev/null",
                "--datadirectory", str(datadir), "--orport", "1", "--nickname", nickname, "--list-fingerprint"]).stdout
    line = [ln for ln in out.strip().splitlines() if ln.strip()][-1]
    return "".join(line.split()[1:])


@dataclass
class TorProcess:
    name: str
    datadir: Path
    proc: subprocess.Popen | None = None

    @property
    def log(self) -> Path:
        return self.datadir / "notice.log"

    def start(self) -> None:
        self.proc = subprocess.Popen(["tor", "-f", str(self.datadir / "torrc"), "--defaults-torrc", "/dev/null"],
                                     stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)

    def stop(self) -> None:
        if self.proc and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(5)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)

    def log_text(self) -> str:
        try:
            return self.log.read_text(errors="replace")
        except OSError:
            return ""


@dataclass
class TorNetwork:
    base: Path = field(default_factory=lambda: Path(tempfile.mkdtemp(prefix="torfetch-tornet-")))
    nodes: list[TorProcess] = field(default_factory=list)
    client: TorProcess | None = None
    socks_port: int = 0
    control_port: int = 0
    dir_port: int = 0
    dir_authority_line: str = ""
    middles: int = 2  # onion services need more distinct relays than 1 authority + 2 exits

    @property
    def proxy(self) -> str:
        return f"socks5h://127.0.0.1:{self.socks_port}"

    @property
    def cookie_path(self) -> Path:
        assert self.client is not None
        return self.client.datadir / "control_auth_cookie"

    def _dir(self, name: str) -> Path:
        d = self.base / name
        d.mkdir(mode=0o700, parents=True, exist_ok=True)
        os.chmod(d, 0o700)
        return d

    def start(self, timeout: float = 120.0) -> "TorNetwork":
        deadline = time.monotonic() + timeout
        try:
            self._start(deadline)
        except BaseException:
            self.stop()
            raise
        return self

    def _start(self, deadline: float) -> None:
        auth_or, auth_dir, e1, e2, self.socks_port, self.control_port, *mids = free_ports(6 + self.middles)
        self.dir_port = auth_dir
        # (1) authority keys
        ad = self._dir("auth")
        (ad / "keys").mkdir(mode=0o700, exist_ok=True)
        _run(["tor-gencert", "--create-identity-key", "--passphrase-fd", "0", "-i", str(ad / "keys/authority_identity_key"),
              "-s", str(ad / "keys/authority_signing_key"), "-c", str(ad / "keys/authority_certificate"),
              "-m", "12", "-a", f"127.0.0.1:{auth_dir}"], input="\n")
        v3ident = next(ln.split()[1] for ln in (ad / "keys/authority_certificate").read_text().splitlines()
                       if ln.startswith("fingerprint "))
        fpr = fingerprint(ad, "auth")
        self.dir_authority_line = f"DirAuthority auth orport={auth_or} no-v2 v3ident={v3ident} 127.0.0.1:{auth_dir} {fpr}\n"
        common = COMMON + self.dir_authority_line
        (ad / "torrc").write_text(common + f"""DataDirectory {ad}
Log notice file {ad}/notice.log
Nickname auth
Address 127.0.0.1
ORPort 127.0.0.1:{auth_or}
DirPort 127.0.0.1:{auth_dir}
AuthoritativeDirectory 1
V3AuthoritativeDirectory 1
ContactInfo tests@example.invalid
AssumeReachable 1
SocksPort 0
ExitRelay 0
TestingV3AuthInitialVotingInterval 10
TestingV3AuthInitialVoteDelay 2
TestingV3AuthInitialDistDelay 2
V3AuthVotingInterval 10
V3AuthVoteDelay 2
V3AuthDistDelay 2
""")
        self.nodes.append(TorProcess("auth", ad))
        # (2) exits, then middle relays (onion services need enough distinct relays)
        exit_lines = ("ExitRelay 1\nRefuseUnknownExits 0\nExitPolicyRejectPrivate 0\n"
                      "ExitPolicy accept 127.0.0.0/8:*\nExitPolicy accept *:*\n"
                      "ServerDNSDetectHijacking 0\nServerDNSResolvConfFile /dev/null\n")
        relays = [("exit1", e1, exit_lines), ("exit2", e2, exit_lines)]
        relays += [(f"middle{i + 1}", port, "ExitRelay 0\n") for i, port in enumerate(mids)]
        for name, port, role in relays:
            d = self._dir(name)
            fingerprint(d, name)
            (d / "torrc").write_text(common + f"""DataDirectory {d}
Log notice file {d}/notice.log
Nickname {name}
Address 127.0.0.1
ORPort 127.0.0.1:{port}
AssumeReachable 1
SocksPort 0
DirCache 0
""" + role)
            self.nodes.append(TorProcess(name, d))
        for n in self.nodes:
            n.start()
        # (3) wait for a consensus that lists every relay with an exit
        url = f"http://127.0.0.1:{auth_dir}/tor/status-vote/current/consensus-microdesc"
        for _ in range(10000):
            if time.monotonic() > deadline:
                raise TimeoutError("private Tor network: no complete consensus in time\n" + self.nodes[0].log_text()[-2000:])
            try:
                text = urllib.request.urlopen(url, timeout=2).read().decode(errors="replace")
            except OSError:
                text = ""
            relays = text.count("\nr ")
            exits = sum(1 for ln in text.splitlines() if ln.startswith("s ") and "Exit" in ln and "Running" in ln)
            if relays >= 3 + self.middles and exits >= 1:
                break
            time.sleep(0.5)
        # (4) the client
        self.client = self.start_client("client", self.socks_port, self.control_port)
        self.wait_bootstrapped(self.client, deadline)

    def start_client(self, name: str, socks_port: int, control_port: int, *, extra: str = "",
                     authority_line: str | None = None) -> TorProcess:
        d = self._dir(name)
        maps = "".join(f"MapAddress {n} 127.0.0.1\n" for n in TEST_NAMES)
        (d / "torrc").write_text(COMMON + (authority_line or self.dir_authority_line) + f"""DataDirectory {d}
Log notice file {d}/notice.log
{contrib_socks_line(socks_port)}
ControlPort 127.0.0.1:{control_port}
CookieAuthentication 1
ConfluxEnabled 0
{maps}{extra}""")
        client = TorProcess(name, d)
        client.start()
        self.nodes.append(client)
        return client

    def wait_bootstrapped(self, node: TorProcess, deadline: float) -> None:
        for _ in range(100000):
            if "Bootstrapped 100%" in node.log_text():
                return
            if node.proc and node.proc.poll() is not None:
                raise RuntimeError(f"tor {node.name} exited:\n" + node.log_text()[-2000:])
            if time.monotonic() > deadline:
                raise TimeoutError(f"tor {node.name} did not bootstrap in time:\n" + node.log_text()[-2000:])
            time.sleep(0.2)

    def stop(self) -> None:
        for n in reversed(self.nodes):
            n.stop()
        shutil.rmtree(self.base, ignore_errors=True)


def demo_network(stack, base: Path) -> str:
    net = TorNetwork(base=base)
    stack.callback(net.stop)
    net.start()
    return net.proxy
