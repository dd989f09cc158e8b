"""Debian chroots with real pacman 7 (trixie 7.0, sid 7.1 + rebuilderd 0.28), for end-to-end tests.

The chroots are built once and cached by ``scripts/chroots`` (CI runs it first; here it is a cache hit). A test
session never writes into the cache: it mounts an overlay (cached root below, a per-session upper dir above),
mounts /proc and binds /dev into it, installs this worktree's torfetch into the chroot's venv (dependencies are
already there), and on close unmounts everything, checked, before deleting the upper dir. The chroot shares the
host's network namespace, so the servers on the host's 127.0.0.1 are reachable from inside.
"""

from __future__ import annotations

import importlib.machinery
import importlib.util
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from types import ModuleType

SRC = Path(__file__).resolve().parent.parent
VENV = "/opt/torfetch"


def _load_chroots() -> ModuleType:
    """scripts/chroots (no .py suffix) as a module: one implementation of the mount/unmount safety rules."""
    path = SRC / "scripts" / "chroots"
    loader = importlib.machinery.SourceFileLoader("torfetch_scripts_chroots", str(path))
    spec = importlib.util.spec_from_loader(loader.name, loader)
    assert spec is not None
    mod = importlib.util.module_from_spec(spec)
    loader.exec_module(mod)
    return mod


chroots = _load_chroots()


def can_run() -> str | None:
    """Why chroot tests cannot run here, or None."""
    if os.geteuid() != 0:
        return "needs root (chroot, mount)"
    if not shutil.which("debootstrap"):
        return "needs Debian's debootstrap (scripts/apt-packages)"
    return None


@dataclass
class Chroot:
    suite: str
    run_dir: Path
    root: Path  # the merged overlay: what the chroot sees as /
    mounted: bool = False
    installed: bool = False
    _log: list[str] = field(default_factory=list)

    @classmethod
    def open(cls, suite: str) -> "Chroot":
        lower = chroots.build(suite)  # a cache hit unless the recipe or the dependencies changed
        runs = chroots.CACHE / "runs"
        runs.mkdir(parents=True, exist_ok=True)
        run_dir = runs / f"{suite}-{os.getpid()}-{secrets.token_hex(4)}"
        run_dir.mkdir()
        # lets `scripts/chroots clean` tell stale runs apart and keep the cached root a live run stands on
        (run_dir / "pid").write_text(str(os.getpid()))
        (run_dir / "lower").write_text(lower.name)
        for d in ("upper", "work", "root"):
            (run_dir / d).mkdir()
        self = cls(suite, run_dir, run_dir / "root")
        try:
            subprocess.run(["mount", "-t", "overlay", "overlay", "-o",
                            f"lowerdir={lower},upperdir={run_dir / 'upper'},workdir={run_dir / 'work'}",
                            str(self.root)], check=True, timeout=60)
            subprocess.run(["mount", "-t", "proc", "proc", str(self.root / "proc")], check=True, timeout=60)
            subprocess.run(["mount", "--bind", "/dev", str(self.root / "dev")], check=True, timeout=60)
            self.mounted = True
            self._install_torfetch()
        except BaseException:
            self.close()
            raise
        return self

    def _install_torfetch(self) -> None:
        dst = self.root / "opt/torfetch-src"
        shutil.copytree(SRC / "torfetch", dst / "torfetch", ignore=shutil.ignore_patterns("__pycache__"))
        for name in ("pyproject.toml", "README.md"):
            shutil.copy(SRC / name, dst / name)
        self.run([f"{VENV}/bin/pip", "install", "-q", "--no-deps", "--no-build-isolation", "--no-index",
                  "/opt/torfetch-src"], timeout=300, check=True)
        bin_ = self.root / "usr/bin/torfetch"
        bin_.unlink(missing_ok=True)
        bin_.symlink_to(f"{VENV}/bin/torfetch")
        self.installed = True

    def path(self, inside: str) -> Path:
        """Host path of a path inside the chroot."""
        return self.root / inside.lstrip("/")

    def run(self, argv: list[str], *, timeout: float = 120, check: bool = False, user: str | None = None,
            env: dict[str, str] | None = None, input: str | None = None,
            wrap: list[str] | None = None) -> subprocess.CompletedProcess[str]:
        """argv inside the chroot with a clean environment (env -i), as root unless ``user``; ``wrap`` is a
        host command put in front of chroot (e.g. the host's strace)."""
        base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                "LC_ALL": "C.UTF-8"}
        base.update(env or {})
        pre = ["setpriv", f"--reuid={user}", f"--regid={user}", "--init-groups"] if user else []
        cmd = ["env", "-i", *[f"{k}={v}" for k, v in base.items()], *(wrap or []), "chroot", str(self.root), *pre, *argv]
        r = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, input=input)
        if check and r.returncode != 0:
            raise AssertionError(f"{argv} failed in the {self.suite} chroot:\n{r.stdout}\n{r.stderr}")
        return r

    def popen(self, argv: list[str], *, log: Path, env: dict[str, str] | None = None) -> subprocess.Popen[bytes]:
        """A long-running argv inside the chroot (a daemon), output to the host file ``log``; the caller stops it
        (and must, before close(): a process still inside keeps the mounts busy)."""
        base = {"PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin", "HOME": "/root",
                "LC_ALL": "C.UTF-8"}
        base.update(env or {})
        cmd = ["env", "-i", *[f"{k}={v}" for k, v in base.items()], "chroot", str(self.root), *argv]
        with open(log, "wb") as out:
            return subprocess.Popen(cmd, stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)

    def close(self) -> None:
        # Unmount (dev, proc, then the overlay), verified, before anything is deleted: deleting through a
        # bind-mounted /dev would delete the host's device nodes.
        chroots.unmount_all(self.run_dir)
        self.mounted = False
        chroots.safe_rmtree(self.run_dir)
