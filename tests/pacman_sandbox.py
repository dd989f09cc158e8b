"""Debian's real pacman in a sandboxed root, with torfetch as XferCommand."""

from __future__ import annotations

import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

TORFETCH = str(Path(sys.executable).with_name("torfetch"))


@dataclass
class PacmanSandbox:
    root: Path
    server: str  # http://127.0.0.1:PORT/repo
    xfer_args: list[str]
    siglevel: str = "Never"
    repo_name: str = "test"

    @property
    def cachedir(self) -> Path:
        return self.root / "var/cache/pacman/pkg"

    @property
    def dbpath(self) -> Path:
        return self.root / "var/lib/pacman"

    @property
    def gpgdir(self) -> Path:
        return self.root / "etc/pacman.d/gnupg"

    @property
    def conf(self) -> Path:
        return self.root / "etc/pacman.conf"

    def write(self) -> "PacmanSandbox":
        for d in (self.cachedir, self.dbpath, self.gpgdir, self.root / "var/log", self.root / "etc/pacman.d/hooks"):
            d.mkdir(parents=True, exist_ok=True)
        os.chmod(self.gpgdir, 0o700)
        # pacman splits XferCommand on spaces, no shell: no argument may contain one.
        for a in self.xfer_args:
            assert " " not in a, a
        xfer = " ".join([TORFETCH, *self.xfer_args, "-O", "%o", "%u"])
        self.conf.write_text(
            "[options]\n"
            f"RootDir = {self.root}\n"
            f"DBPath = {self.dbpath}/\n"
            f"CacheDir = {self.cachedir}/\n"
            f"LogFile = {self.root}/var/log/pacman.log\n"
            f"GPGDir = {self.gpgdir}/\n"
            f"HookDir = {self.root}/etc/pacman.d/hooks/\n"
            "Architecture = x86_64\n"
            f"SigLevel = {self.siglevel}\n"
            f"XferCommand = {xfer}\n"
            f"[{self.repo_name}]\n"
            f"Server = {self.server}\n"
        )
        return self

    def run(self, *args: str, timeout: float = 120) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["pacman", "--config", str(self.conf), "--noconfirm", *args],
            capture_output=True, text=True, timeout=timeout,
            env={**os.environ, "LC_ALL": "C"},
        )

    def installed(self, name: str) -> bool:
        return any(p.name.startswith(name + "-") for p in (self.dbpath / "local").glob("*")) if (self.dbpath / "local").exists() else False

    def leftovers(self) -> list[str]:
        """Partial or temporary files that must never survive a failed run."""
        out = []
        for d in (self.cachedir, self.dbpath / "sync"):
            if d.exists():
                out += [p.name for p in d.iterdir() if p.name.endswith(".part") or p.name.startswith(".torfetch-")]
        return out

    def cached_packages(self) -> list[str]:
        return sorted(p.name for p in self.cachedir.iterdir() if ".pkg.tar" in p.name) if self.cachedir.exists() else []
