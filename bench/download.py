"""Speed and memory of torfetch's streaming download, as ratios to a baseline in the same run.

Baseline: curl downloading the same file from the same 127.0.0.1 server. Memory:
peak RSS of torfetch for a small and a large file (flat memory → ratio ≈ 1).

    .venv/bin/python bench/download.py [--mib 256]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.servers.files import FileServer  # noqa: E402

MEASURE = (
    "import resource, subprocess, sys, time\n"
    "t = time.perf_counter(); r = subprocess.run(sys.argv[1:]); d = time.perf_counter() - t\n"
    "print(r.returncode, d, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)\n"
)


def measure(cmd: list[str]) -> tuple[float, int]:
    out = subprocess.run([sys.executable, "-c", MEASURE, *cmd], capture_output=True, text=True, timeout=600, check=True)
    rc, secs, rss = out.stdout.split()
    if rc != "0":
        raise SystemExit(f"failed: {cmd}")
    return float(secs), int(rss)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mib", type=int, default=256)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="torfetch-bench-"))
    www = tmp / "www"
    www.mkdir()
    with open(www / "big.db", "wb") as f:
        for _ in range(args.mib):
            f.write(os.urandom(1 << 20))
    (www / "small.db").write_bytes(os.urandom(1 << 20))
    torfetch = [sys.executable, "-m", "torfetch"]
    sync = tmp / "sync"  # a db is fetched without proof only where pacman writes it: <DBPath>/sync/<name>.part
    sync.mkdir()
    with FileServer(www) as s:
        rows = []
        for name, cmd in (
            ("curl", ["curl", "-sf", "-o", str(tmp / "o1"), f"{s.url}/big.db"]),
            ("torfetch", [*torfetch, "--direct", "-O", str(sync / "big.db.part"), f"{s.url}/big.db"]),
        ):
            if name == "curl" and not shutil.which("curl"):
                continue
            best = min(measure(cmd)[0] for _ in range(args.runs))
            rows.append((name, best))
        _, rss_small = measure([*torfetch, "--direct", "-O", str(sync / "small.db.part"), f"{s.url}/small.db"])
        _, rss_big = measure([*torfetch, "--direct", "-O", str(sync / "big.db.part"), f"{s.url}/big.db"])
    base = dict(rows).get("curl")
    print(f"download of {args.mib} MiB over 127.0.0.1 (best of {args.runs}):")
    for name, secs in rows:
        ratio = f"  ({secs / base:.2f}x curl)" if base else ""
        print(f"  {name:9s} {secs:6.2f} s  {args.mib / secs:7.1f} MiB/s{ratio}")
    print(f"peak RSS torfetch: 1 MiB file {rss_small / 1024:.1f} MiB, {args.mib} MiB file {rss_big / 1024:.1f} MiB "
          f"(ratio {rss_big / rss_small:.2f}; flat memory means ~1)")
    shutil.rmtree(tmp, ignore_errors=True)


if __name__ == "__main__":
    main()
