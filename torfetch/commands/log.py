"""`torfetch log verify-entry FILE --log-key PEM` and `torfetch log status`."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from ..cliargs import ArgumentParser
from ..errors import ConfigError, TorfetchError


def _parser() -> argparse.ArgumentParser:
    p = ArgumentParser(prog="torfetch log", description="offline tools for the transparency log")
    sub = p.add_subparsers(dest="cmd", required=True)
    v = sub.add_parser("verify-entry", help="verify a LogEntry JSON as the Rekor API returns it ({\"<uuid>\": {...}})")
    v.add_argument("file", type=Path)
    v.add_argument("--log-key", help="the log's PEM public key (file or text); default: rekor.sigstore.dev's")
    s = sub.add_parser("status", help="print the remembered tree heads")
    s.add_argument("--state-dir", type=Path, default=None)
    return p


def main(argv: list[str]) -> int:
    try:
        ns = _parser().parse_args(argv)
        if ns.cmd == "verify-entry":
            return _verify_entry(ns)
        return _status(ns)
    except TorfetchError as exc:
        print(exc.one_line(), file=sys.stderr)
        return exc.exit_code


def _verify_entry(ns: argparse.Namespace) -> int:
    from ..verify.rekor import MAX_ENTRY_BYTES, verify_log_entry

    from ..net.rekor import load_log_key

    key = load_log_key(ns.log_key)
    try:
        with open(ns.file, "rb") as f:
            data = f.read(MAX_ENTRY_BYTES + 1)
    except OSError as exc:
        raise ConfigError(f"cannot read {ns.file}: {exc.strerror}") from exc
    entry = verify_log_entry(data, log_key=key)
    print(f"OK: log index {entry.log_index} (shard index {entry.shard_index}, tree {entry.tree}, "
          f"{entry.checkpoint.describe()}, integrated {entry.integrated_time})")
    return 0


def _status(ns: argparse.Namespace) -> int:
    from ..store.logstate import LogStateStore
    from ..store.statedir import default_state_dir
    from ..verify.checkpoint import safe_text

    store = LogStateStore(ns.state_dir or default_state_dir())
    logs = store.all_logs()
    if not logs:
        print(f"no log tree heads remembered in {safe_text(str(store.directory))}")
        return 0
    # everything printed came from a file: quoted, so no control character or escape reaches the terminal raw
    for log_id, state in sorted(logs.items()):
        print(f"log {safe_text(log_id[:16])}… origin {safe_text(state.origin_name or '(not yet seen)')}")
        for tree, rec in sorted(state.trees.items()):
            print(f"  {rec.describe(tree)}")
    return 0
