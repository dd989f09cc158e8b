"""P6: start-up cost of torfetch (`torfetch --version`) minus the interpreter's own (`python -c pass`).

    .venv/bin/python bench/startup.py [--runs 30]

Both are run alternately in the same loop (so machine load hits both alike); the medians are compared.
pacman starts torfetch once per file, so this is paid per package by XferCommand (goal <= 150 ms).
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import time
from pathlib import Path


def _once(cmd: list[str]) -> float:
    t = time.perf_counter()
    subprocess.run(cmd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=30)
    args = ap.parse_args()
    torfetch = str(Path(sys.executable).with_name("torfetch"))
    bare, tool, full = [], [], []
    # what a real fetch imports before its first byte (trio, httpx, cryptography, the workflow)
    fetch_path = [sys.executable, "-c", "import torfetch.cli, torfetch.workflow"]
    for _ in range(max(1, args.runs)):
        bare.append(_once([sys.executable, "-c", "pass"]))
        tool.append(_once([torfetch, "--version"]))
        full.append(_once(fetch_path))
    b, t, f = statistics.median(bare), statistics.median(tool), statistics.median(full)
    print(f"python -c pass: {b * 1000:.1f} ms; torfetch --version: {t * 1000:.1f} ms (median of {len(tool)}); "
          f"start-up cost {1000 * (t - b):.1f} ms ({t / b:.2f}x the bare interpreter; goal <= 150 ms)")
    print(f"importing the whole fetch path: {f * 1000:.1f} ms, {1000 * (f - b):.1f} ms over the bare interpreter")


if __name__ == "__main__":
    main()
