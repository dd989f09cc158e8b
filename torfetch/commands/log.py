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
    print(f"OK: log index {entry.log_index} (shard index {entry.shard_index}, tree {entry.tree_id or '?'}, "
          f"{entry.checkpoint.describe()}, integrated {entry.integrated_time})")
    return 0


def _status(ns: argparse.Namespace) -> int:
    from ..store.logstate import LogStateStore, default_state_dir

    store = LogStateStore(ns.state_dir or default_state_dir())
    heads = store.all_heads()
    if not heads:
        print(f"no log tree heads remembered in {store.directory}")
        return 0
    for key, head in sorted(heads.items()):
        log_id, _, tree = key.partition("/")
        print(f"log {log_id[:16]}… tree {tree}: {head.describe()}")
    return 0
