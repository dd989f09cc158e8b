"""The embedded default: a signed repo on 127.0.0.1 fetched by real pacman via torfetch.

Everything lives in a temporary directory and only talks to 127.0.0.1.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from contextlib import ExitStack
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from tests.pacman_sandbox import PacmanSandbox  # noqa: E402
from tests.repo import make_repo  # noqa: E402
from tests.servers.files import FileServer  # noqa: E402


def banner(text: str) -> None:
    print(f"\n=== {text}", flush=True)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--tor", action="store_true", help="route everything through a private Tor network")
    ap.add_argument("--keep", action="store_true", help="keep the temporary directory")
    args = ap.parse_args()
    tmp = Path(tempfile.mkdtemp(prefix="torfetch-demo-"))
    with ExitStack() as stack:
        banner("building a signed repository (packages by the demo, .t signatures by Debian's minisign)")
        repo = make_repo(tmp / "repo")
        for name in ("hello", "world"):
            pkg = repo.add(name)
            print(f"  {pkg.name}  signed -> sigs/{pkg.name}.t")
        repo.add("evil")
        evil = repo.packages["evil"]
        data = bytearray(evil.read_bytes())
        data[len(data) // 2] ^= 1
        evil.write_bytes(bytes(data))
        print(f"  {evil.name}  (one byte flipped after signing: must be refused)")

        mirror = stack.enter_context(FileServer(repo.root))
        print(f"  mirror + signature server: {mirror.url}")

        from tests.servers.rekor import RekorServer

        rekor = stack.enter_context(RekorServer())
        key = tmp / "rekor.pem"
        key.write_bytes(rekor.public_key_pem)
        print(f"  transparency log (Rekor v1 API, ECDSA-signed checkpoints): {rekor.url}")

        extra: list[str] = []
        rebuilder_args: list[str] = []
        try:
            from tests.servers.rebuilderd import demo_rebuilders

            rebuilder_args = demo_rebuilders(stack, repo)
            print(f"  rebuilders: {' '.join(a for a in rebuilder_args if a.startswith('http'))}")
        except ImportError:
            pass

        if args.tor:
            from tests.tornet import demo_network

            proxy = demo_network(stack, tmp / "tor")
            extra += ["--proxy", proxy]
            print(f"  private Tor network up, client SocksPort {proxy}")

        # Configured the way a user configures torfetch: a config file with a [[repo]] table, and an
        # XferCommand that names it. The demo's servers live on 127.0.0.1, so without --tor it runs with
        # `direct = true` (the explicit opt-out; torfetch otherwise insists on Tor at 127.0.0.1:9050).
        config = tmp / "torfetch.toml"
        config.write_text(
            f'state_dir = "{tmp / "state"}"\n'
            # the sandbox's pacman.conf (written below): its sync db gives each package's sha256 early
            f'pacman_conf = "{tmp / "root" / "etc" / "pacman.conf"}"\n'
            + ("" if args.tor else "direct = true\n")
            + "\n[[repo]]\n"
            f'match = "{mirror.url}/repo/"\n'
            f'transparency_url = "{mirror.url}/sigs"\n'
            f'pubkey = "{repo.key.pub_line}"\n'
            f'log_url = "{rekor.url}"\n'
            f'log_key = "{key}"\n'
        )
        os.chmod(config, 0o644)
        xfer = ["-v", "--config", str(config), *rebuilder_args, *extra]
        sb = PacmanSandbox(tmp / "root", f"{mirror.url}/repo", xfer).write()
        banner("torfetch.toml")
        print(config.read_text())
        banner("pacman.conf (sandboxed root)")
        print(sb.conf.read_text())

        banner("pacman -Sy hello world   (torfetch prints each check as it passes)")
        r = subprocess.run(["pacman", "--config", str(sb.conf), "--noconfirm", "-Sy", "hello", "world"], timeout=300)
        if r.returncode != 0:
            print("demo: pacman failed where it should have succeeded", file=sys.stderr)
            return 1
        for name in ("hello", "world"):
            f = sb.root / f"usr/share/{name}/hello.txt"
            print(f"  installed: {f.relative_to(sb.root)} -> {f.read_text().strip()!r}")

        banner("pacman -S evil   (tampered package: torfetch must refuse, pacman must fail)")
        r = subprocess.run(["pacman", "--config", str(sb.conf), "--noconfirm", "-S", "evil"], timeout=300)
        leftovers = sb.leftovers() + [p for p in sb.cached_packages() if p.startswith("evil")]
        if r.returncode == 0 or leftovers:
            print(f"demo: the tampered package was not refused cleanly ({leftovers})", file=sys.stderr)
            return 1
        print("  refused; nothing of it in CacheDir")

        banner("torfetch log status")
        subprocess.run([sys.executable, "-m", "torfetch", "log", "status", "--state-dir", str(tmp / "state")])
        banner("demo OK")
        if args.keep:
            print(f"  kept {tmp}")
    if not args.keep:
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
