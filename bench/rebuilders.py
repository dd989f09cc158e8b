"""Rebuilder lookups: torfetch's concurrent confirm_rebuilds vs a sequential baseline, same servers, same run.

The baseline asks the same rebuilders one after another (what pacman-bintrans does).
Each local rebuilderd answers after --latency seconds.

    .venv/bin/python bench/rebuilders.py [--latency 0.5] [--n 3]
"""

from __future__ import annotations

import argparse
import sys
import time
from contextlib import ExitStack
from pathlib import Path

import trio

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from tests.servers.rebuilderd import Pkg, RebuilderdServer  # noqa: E402
from torfetch.config import Limits, Timeouts  # noqa: E402
from torfetch.net.http import Network  # noqa: E402
from torfetch.net.rebuilders import confirm_rebuilds  # noqa: E402
from torfetch.net.rebuilder_url import endpoint  # noqa: E402
from torfetch.verify.rebuilder import RebuilderSpec  # noqa: E402

SHA = "ab" * 32


async def concurrent(urls: list[str]) -> float:
    async def sha() -> str:
        return SHA

    t = time.perf_counter()
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        await confirm_rebuilds(net, [RebuilderSpec(u) for u in urls], filename="foo-1-1-x86_64.pkg.tar.zst",
                               pkgname="foo", version="1-1", get_sha256=sha, required=len(urls), fail_on_bad=False,
                               limits=Limits(), timeouts=Timeouts(), package="", report=lambda s: None)
    return time.perf_counter() - t


async def sequential(urls: list[str]) -> float:
    t = time.perf_counter()
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        for u in urls:
            await net.get_ok("rebuilder", endpoint(u, "api/v0/pkgs/list", {"distro": "archlinux", "name": "foo"}),
                             max_bytes=1 << 20, timeout=30)
    return time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--latency", type=float, default=0.5)
    ap.add_argument("--n", type=int, default=3)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    with ExitStack() as stack:
        srvs = [stack.enter_context(RebuilderdServer()) for _ in range(args.n)]
        for s in srvs:
            s.add(Pkg("foo", "1-1"))
            s.behaviour.slow_seconds = args.latency
        urls = [s.url for s in srvs]
        base = min(trio.run(sequential, urls) for _ in range(args.runs))
        conc = min(trio.run(concurrent, urls) for _ in range(args.runs))
    print(f"{args.n} rebuilders, {args.latency:g} s latency each (best of {args.runs}):")
    print(f"  sequential (pacman-bintrans style) {base:6.2f} s")
    print(f"  torfetch concurrent                {conc:6.2f} s  ({conc / base:.2f}x the sequential time)")


if __name__ == "__main__":
    main()
