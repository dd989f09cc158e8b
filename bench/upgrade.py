"""P5: a 30-package upgrade through real pacman over a simulated Tor path, as ratios measured in the same run.

Three ways to run ``pacman -Su`` for the same upgrade (30 installed packages at 1.0-1, the repository has 1.0-2
of each; the db is synced first, untimed), every byte through the same simulated-Tor SOCKS proxy
(bench/torsim.py: 300 ms per connect and per request burst, 2 MB/s per connection):

  builtin   pacman's own downloader, ParallelDownloads = 5, no checks at all (libcurl via ALL_PROXY)
  xfer      XferCommand = torfetch (signature + log per package; pacman runs it one file at a time)
  prefetch  torfetch prefetch --jobs N (each N of --jobs), then pacman -Su with the same XferCommand

Each package has a transparency signature (minisign) and a local Rekor-API log entry (uploaded in an untimed
warm-up, so every timed run only looks them up). A fresh pacman root per run; best of --runs.

    .venv/bin/python bench/upgrade.py [--packages 30] [--runs 1] [--jobs 5 8]
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from tests.pkgbuild import build_package  # noqa: E402
from tests.repo import ARCH, make_repo  # noqa: E402
from tests.servers.files import FileServer  # noqa: E402
from tests.servers.rekor import RekorServer  # noqa: E402
from torsim import TorSim  # noqa: E402

TORFETCH = str(Path(sys.executable).with_name("torfetch"))


def pacman_conf(root: Path, server: str, xfer: str | None) -> Path:
    for d in ("var/cache/pacman/pkg", "var/lib/pacman", "var/log", "gnupg", "hooks"):
        (root / d).mkdir(parents=True, exist_ok=True)
    conf = root / "pacman.conf"
    conf.write_text(
        "[options]\n"
        f"RootDir = {root}\nDBPath = {root}/var/lib/pacman/\nCacheDir = {root}/var/cache/pacman/pkg/\n"
        f"LogFile = {root}/var/log/pacman.log\nGPGDir = {root}/gnupg/\nHookDir = {root}/hooks/\n"
        "Architecture = x86_64\nSigLevel = Never\nParallelDownloads = 5\n"
        + (f"XferCommand = {xfer}\n" if xfer else "")
        + f"[test]\nServer = {server}\n")
    return conf


def pacman(conf: Path, *args: str, env: dict[str, str] | None = None) -> None:
    r = subprocess.run(["pacman", "--config", str(conf), "--noconfirm", *args], capture_output=True, text=True,
                       timeout=1800, env={**os.environ, "LC_ALL": "C", **(env or {})})
    if r.returncode != 0:
        raise SystemExit(f"pacman {' '.join(args)} failed:\n{r.stdout}\n{r.stderr}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--packages", type=int, default=30)
    ap.add_argument("--runs", type=int, default=1)
    ap.add_argument("--jobs", type=int, nargs="+", default=[5], help="prefetch --jobs values to measure (default 5, its default)")
    ap.add_argument("--connect-delay", type=float, default=0.3)
    ap.add_argument("--request-delay", type=float, default=0.3)
    ap.add_argument("--rate", type=float, default=2_000_000)
    a = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="torfetch-bench-upgrade-"))
    rng = random.Random(5)
    repo = make_repo(tmp / "repo")
    old = []
    sizes = [rng.choice((64, 128, 256, 512, 1024)) * 1024 for _ in range(a.packages)]
    for i, size in enumerate(sizes):
        name = f"pkg{i:02d}"
        old.append(build_package(tmp / "old", name, "1.0-1", ARCH, files={f"usr/share/{name}/v": b"1\n"}))
        repo.add(name, "1.0-2", files={f"usr/share/{name}/v": b"2\n", f"usr/share/{name}/blob": rng.randbytes(size)})
    total = sum(p.stat().st_size for p in repo.packages.values())
    with FileServer(repo.root) as mirror, RekorServer() as log, \
            TorSim(connect_delay=a.connect_delay, request_delay=a.request_delay, rate=a.rate) as sim:
        key = tmp / "rekor.pem"
        key.write_bytes(log.public_key_pem)
        mport, lport = mirror.url.rsplit(":", 1)[1], log.url.rsplit(":", 1)[1]
        server = f"http://mirror.test:{mport}/repo"

        def fetch_args(state: Path) -> list[str]:
            return ["--proxy", sim.url, "--transparency-url", f"http://sigs.test:{mport}/sigs",
                    "--pubkey", repo.key.pub_line, "--log-url", f"http://log.test:{lport}", "--log-key", str(key),
                    "--state-dir", str(state), "--config", "/dev/null"]

        def sandbox(name: str, xfer: bool) -> tuple[Path, list[str]]:
            root = tmp / name
            shutil.rmtree(root, ignore_errors=True)
            args = fetch_args(root / "state")
            conf = root / "pacman.conf"
            args += ["--pacman-conf", str(conf)]
            pacman_conf(root, server, " ".join([TORFETCH, *args, "-O", "%o", "%u"]) if xfer else None)
            pacman(conf, "-U", *map(str, old))
            pacman(conf, "-Sy", env={"ALL_PROXY": sim.url, "http_proxy": sim.url})
            return conf, args

        # warm-up (untimed): every signature uploaded to the log once
        conf, args = sandbox("warmup", True)
        r = subprocess.run([TORFETCH, "prefetch", *args, "--jobs", "8"], capture_output=True, text=True, timeout=1800)
        if r.returncode != 0:
            raise SystemExit(f"warm-up prefetch failed:\n{r.stderr}")

        def builtin() -> float:
            conf, _ = sandbox("builtin", False)
            before = sim.connects
            t = time.perf_counter()
            pacman(conf, "-Su", env={"ALL_PROXY": sim.url, "http_proxy": sim.url})
            d = time.perf_counter() - t
            assert sim.connects > before, "pacman's downloader did not use the proxy"
            return d

        def xfer() -> float:
            conf, _ = sandbox("xfer", True)
            t = time.perf_counter()
            pacman(conf, "-Su")
            return time.perf_counter() - t

        def prefetch(jobs: int) -> float:
            conf, args = sandbox("prefetch", True)
            t = time.perf_counter()
            r = subprocess.run([TORFETCH, "prefetch", *args, "--jobs", str(jobs)], capture_output=True, text=True,
                               timeout=1800)
            if r.returncode != 0:
                raise SystemExit(f"prefetch failed:\n{r.stderr}")
            pacman(conf, "-Su")
            return time.perf_counter() - t

        runs = [("builtin", builtin), ("xfer", xfer)]
        runs += [(f"prefetch{j}", lambda j=j: prefetch(j)) for j in a.jobs]
        rows = {name: min(fn() for _ in range(a.runs)) for name, fn in runs}
    base = rows["builtin"]
    print(f"P5: {a.packages}-package upgrade ({total / 1e6:.1f} MB), real pacman, simulated Tor "
          f"({a.connect_delay * 1000:.0f} ms per connect and per request burst, {a.rate / 1e6:g} MB/s per "
          f"connection), best of {a.runs}:")
    labels = {"builtin": "pacman's downloader, ParallelDownloads = 5, no checks",
              "xfer": "XferCommand = torfetch alone (serial)",
              **{f"prefetch{j}": f"torfetch prefetch --jobs {j} + XferCommand" for j in a.jobs}}
    for name, secs in rows.items():
        vs_xfer = f"  {secs / rows['xfer']:5.2f}x XferCommand alone" if name.startswith("prefetch") else ""
        print(f"  {labels[name]:52s} {secs:7.2f} s  {secs / base:6.2f}x builtin{vs_xfer}")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
