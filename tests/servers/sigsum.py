"""Debian's real Sigsum log (sigsum-log-primary, ephemeral backend) and witnesses (sigsum-witness) on 127.0.0.1.

The tools come from scripts/sigsum-tools (extracted .debs in a cache; $TORFETCH_SIGSUM_BIN overrides). Everything
runs in a given directory, on free ports, with fresh keys:

    tools = SigsumTools.find()                      # None when not installed
    with SigsumLog(tools, tmp_path, witnesses=1) as log:   # started, and its tree head already cosigned
        submitter = tools.generate_key(tmp_path / "submit.key")
        proof = tools.submit(submitter, log.policy_path, message_file)    # sigsum-submit, ~2 s at --interval 1s
        tools.verify(submitter, log.policy_path, proof, message_bytes)    # sigsum-verify, raises on refusal
        log.stop()                                  # log and witnesses gone: offline checks must still pass

The log rotates (and the witnesses cosign) its tree head every ``interval``; measured: one sigsum-submit of a new
leaf takes ~2 s at 1 s (sequenced at the next rotation, cosigned at the one after), a batch submitted together the
same. Debian's sigsum-log-primary needs GODEBUG=httpmuxgo121=0 or it answers 404 to every path (notes/sigsum.md).
"""

from __future__ import annotations

import hashlib
import importlib.machinery
import importlib.util
import os
import socket
import subprocess
import time
import urllib.error
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType
from typing import Self

SRC = Path(__file__).resolve().parent.parent.parent
START_TIMEOUT = 30.0  # seconds until the first cosigned tree head (measured: ~1-2 intervals)
STOP_TIMEOUT = 10.0


def load_tools_script() -> ModuleType:
    """scripts/sigsum-tools (no .py suffix) as a module: one definition of where the cache is."""
    path = SRC / "scripts" / "sigsum-tools"
    loader = importlib.machinery.SourceFileLoader("torfetch_scripts_sigsum_tools", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port: int = s.getsockname()[1]
        return port


@dataclass(frozen=True)
class SigsumKey:
    private: Path  # OpenSSH private key, as `sigsum-key generate` writes it
    public: Path  # the `ssh-ed25519 ...` line beside it (.pub)
    pub_hex: str  # the raw 32-byte key in hex (what a policy file holds)

    @property
    def raw(self) -> bytes:
        return bytes.fromhex(self.pub_hex)

    @property
    def keyhash(self) -> bytes:
        return hashlib.sha256(self.raw).digest()


@dataclass(frozen=True)
class SigsumTools:
    bin: Path

    @classmethod
    def find(cls) -> "SigsumTools | None":
        env = os.environ.get("TORFETCH_SIGSUM_BIN")
        if env:
            return cls(Path(env))
        found = load_tools_script().installed()
        return cls(found) if found else None

    def path(self, tool: str) -> str:
        return str(self.bin / tool)

    def run(self, tool: str, *args: str, input: bytes | None = None, timeout: float = 60,
            env: dict[str, str] | None = None, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        r = subprocess.run([self.path(tool), *args], input=input, capture_output=True, timeout=timeout,
                           env={**os.environ, **(env or {})})
        if check and r.returncode != 0:
            raise AssertionError(f"{tool} {' '.join(args)} failed ({r.returncode}):\n{r.stderr.decode(errors='replace')}")
        return r

    def generate_key(self, private: Path) -> SigsumKey:
        self.run("sigsum-key", "generate", "-o", str(private))
        public = private.with_name(private.name + ".pub")
        hex_ = self.run("sigsum-key", "to-hex", "-k", str(public)).stdout.decode().strip()
        return SigsumKey(private, public, hex_)

    def submit(self, key: SigsumKey, policy: Path, message_file: Path, *, out: Path | None = None,
               raw_hash: bool = False, timeout: float = 60) -> Path:
        """sigsum-submit one file (message = its sha256, or with raw_hash the file holds the message); the proof."""
        proof = out or message_file.with_name(message_file.name + ".proof")
        args = ["-k", str(key.private), "-p", str(policy), "-o", str(proof)]
        self.run("sigsum-submit", *args, *(["--raw-hash"] if raw_hash else []), str(message_file), timeout=timeout)
        return proof

    def verify(self, key: SigsumKey | Path, policy: Path, proof: Path, message: bytes, *,
               raw_hash: bool = False) -> subprocess.CompletedProcess[bytes]:
        """sigsum-verify PROOF < message (it hashes the message itself unless raw_hash); check=False: see returncode."""
        pub = key.public if isinstance(key, SigsumKey) else key
        args = ["-k", str(pub), "-p", str(policy), *(["--raw-hash"] if raw_hash else []), str(proof)]
        return self.run("sigsum-verify", *args, input=message, check=False)


@dataclass
class _Proc:
    name: str
    argv: list[str]
    log: Path
    env: dict[str, str] = field(default_factory=dict)
    proc: subprocess.Popen[bytes] | None = None

    def start(self) -> None:
        with open(self.log, "ab") as out:
            self.proc = subprocess.Popen(self.argv, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                         env={**os.environ, **self.env})

    def stop(self) -> None:
        p, self.proc = self.proc, None
        if p is None or p.poll() is not None:
            return
        p.terminate()
        try:
            p.wait(timeout=STOP_TIMEOUT)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait(timeout=STOP_TIMEOUT)

    def check_alive(self) -> None:
        if self.proc is None or self.proc.poll() is not None:
            tail = self.log.read_text(errors="replace")[-2000:] if self.log.exists() else ""
            raise AssertionError(f"{self.name} is not running:\n{tail}")


@dataclass
class Witness:
    name: str
    key: SigsumKey
    url: str
    proc: _Proc


class SigsumLog:
    """One real log and ``witnesses`` real witnesses, a policy file naming them (``quorum`` as a policy line:
    default every witness), all in ``directory``."""

    def __init__(self, tools: SigsumTools, directory: Path, *, witnesses: int = 1, interval: str = "1s",
                 quorum: str | None = None, rate_limit_file: Path | None = None) -> None:
        self.tools = tools
        self.dir = directory
        self.dir.mkdir(parents=True, exist_ok=True)
        self.interval = interval
        self.log_key = tools.generate_key(self.dir / "log.key")
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self.witnesses: list[Witness] = []
        for i in range(witnesses):
            name = f"W{i + 1}"
            key = tools.generate_key(self.dir / f"witness{i + 1}.key")
            wport = free_port()
            argv = [tools.path("sigsum-witness"), "-k", str(key.private), "--log-key", str(self.log_key.public),
                    "--state-file", str(self.dir / f"{name}.state"), f"127.0.0.1:{wport}"]
            self.witnesses.append(Witness(name, key, f"http://127.0.0.1:{wport}",
                                          _Proc(name, argv, self.dir / f"{name}.log")))
        self.policy_path = self.dir / "policy"
        self.policy_path.write_text(self.policy_text(quorum))
        self.sth = self.dir / "sth"
        argv = [tools.path("sigsum-log-primary"), "--backend", "ephemeral", "--key-file", str(self.log_key.private),
                "--policy-file", str(self.policy_path), "--sth-file", str(self.sth), "--interval", interval,
                "--external-endpoint", f"127.0.0.1:{port}", "--internal-endpoint", f"127.0.0.1:{free_port()}"]
        if rate_limit_file:
            argv += ["--rate-limit-file", str(rate_limit_file)]
        self.log = _Proc("sigsum-log-primary", argv, self.dir / "log.log", env={"GODEBUG": "httpmuxgo121=0"})

    def policy_text(self, quorum: str | None = None) -> str:
        lines = [f"log {self.log_key.pub_hex} {self.url}"]
        lines += [f"witness {w.name} {w.key.pub_hex} {w.url}" for w in self.witnesses]
        if quorum is None:
            if self.witnesses:
                lines.append(f"group all-witnesses all {' '.join(w.name for w in self.witnesses)}")
                quorum = "all-witnesses"
            else:
                quorum = "none"
        lines.append(f"quorum {quorum}")
        return "\n".join(lines) + "\n"

    @property
    def keyhash(self) -> bytes:
        return self.log_key.keyhash

    # -- lifecycle

    def start(self, timeout: float = START_TIMEOUT) -> Self:
        try:
            for w in self.witnesses:
                w.proc.start()
            for w in self.witnesses:
                self._wait_listening(w.url, w.proc, timeout)
            self.tools.run("sigsum-mktree", "--mode", "empty", "--sth-file", str(self.sth))
            self.log.start()
            self.wait_cosigned(0, timeout)
        except BaseException:
            self.stop()
            raise
        return self

    def stop_log(self) -> None:
        self.log.stop()

    def restart_log_empty(self, timeout: float = START_TIMEOUT) -> None:
        """The same log key with a fresh, empty tree (the ephemeral backend forgets) and witnesses that forgot
        too (a witness refuses to cosign a smaller tree): a log, and its witnesses, gone back in time."""
        self.stop()
        for w in self.witnesses:
            (self.dir / f"{w.name}.state").unlink(missing_ok=True)
            w.proc.start()
        for w in self.witnesses:
            self._wait_listening(w.url, w.proc, timeout)
        self.sth.unlink(missing_ok=True)  # mktree refuses to overwrite a saved tree head
        self.tools.run("sigsum-mktree", "--mode", "empty", "--sth-file", str(self.sth))
        self.log.start()
        self.wait_cosigned(0, timeout)

    def stop_witnesses(self) -> None:
        for w in self.witnesses:
            w.proc.stop()

    def stop(self) -> None:
        self.stop_log()
        self.stop_witnesses()

    def __enter__(self) -> Self:
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- the log's API, for the tests' own checks

    def get(self, path: str, timeout: float = 10) -> tuple[int, bytes]:
        try:
            # 127.0.0.1 only, never through a proxy from the environment
            with urllib.request.build_opener(urllib.request.ProxyHandler({})).open(f"{self.url}/{path}",
                                                                                 timeout=timeout) as r:
                return r.status, r.read(1 << 22)
        except urllib.error.HTTPError as e:
            return e.code, e.read(1 << 16)

    def tree_head(self) -> dict[str, list[str]]:
        status, body = self.get("get-tree-head")
        if status != 200:
            raise AssertionError(f"get-tree-head: {status} {body[:200]!r}")
        out: dict[str, list[str]] = {}
        for line in body.decode().splitlines():
            k, _, v = line.partition("=")
            out.setdefault(k, []).append(v)
        return out

    def wait_cosigned(self, min_size: int, timeout: float = START_TIMEOUT) -> dict[str, list[str]]:
        """The log's tree head once it has >= min_size leaves and a cosignature from every witness."""
        want = {w.key.keyhash.hex() for w in self.witnesses}
        deadline = time.monotonic() + timeout
        last: object = None
        while time.monotonic() < deadline:
            self.log.check_alive()
            try:
                th = self.tree_head()
                cosigners = {c.split()[0] for c in th.get("cosignature", [])}
                if int(th["size"][0]) >= min_size and want <= cosigners:
                    return th
                last = th
            except (OSError, AssertionError) as e:
                last = e
            time.sleep(0.2)
        raise AssertionError(f"no cosigned tree head of size >= {min_size} within {timeout} s: {last}")

    @staticmethod
    def _wait_listening(url: str, proc: _Proc, timeout: float) -> None:
        host, port = url.removeprefix("http://").split(":")
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            proc.check_alive()
            try:
                socket.create_connection((host, int(port)), timeout=1).close()
                return
            except OSError:
                time.sleep(0.1)
        raise AssertionError(f"{proc.name} did not listen on {url} within {timeout} s")
