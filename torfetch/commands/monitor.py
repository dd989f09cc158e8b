"""`torfetch monitor`: alert on log entries made with the operator's key that no given db explains.

Exit 0: clean; 1: alerts (or the log misbehaved); 2: usage; 3: network. The logic is in operator/monitor.py.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import NoReturn

from ..errors import UsageError


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="torfetch monitor", description="find every log entry made with the operator's minisign key "
                "and report those whose artifact matches no package in the given repository dbs")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--pubkey", required=True, help="the operator's minisign public key (base64 line or .pub file)")
    p.add_argument("--repo-db", action="append", default=[], required=True, metavar="URL|PATH",
                   help="a repository db with the released packages (repeatable)")
    p.add_argument("--log-url", help="Rekor v1 log (default https://rekor.sigstore.dev)")
    p.add_argument("--log-key", help="the log's public key (PEM text or file); required for a non-default --log-url")
    p.add_argument("--state-dir", type=Path, help="what was checked (monitor.sqlite) and remembered tree heads "
                   "(default /var/lib/torfetch as root, else $XDG_STATE_HOME/torfetch)")
    p.add_argument("--signer-state", type=Path, help="the signer's --state-dir, whose records name entries "
                   "(default: --state-dir)")
    p.add_argument("--json", action="store_true", help="print one JSON document with an 'alerts' list")
    p.add_argument("--proxy", help="SOCKS5 proxy (e.g. Tor); operator tools connect directly by default")
    p.add_argument("--jobs", type=int, default=4, help="log requests in flight at once (default 4)")
    return p


def main(argv: list[str]) -> int:
    import trio

    from ..operator.monitor import SEARCH_NOTE, MonitorOptions, run_monitor
    from ..report import Reporter
    from .operator_runner import OperatorExit, run_operator

    parsed: list[argparse.Namespace] = []

    def start():
        ns = build_parser().parse_args(argv)
        parsed.append(ns)
        opts = MonitorOptions(pubkey=ns.pubkey, repo_dbs=tuple(ns.repo_db), log_url=ns.log_url, log_key=ns.log_key,
                              state_dir=ns.state_dir, signer_state=ns.signer_state, proxy=ns.proxy, jobs=ns.jobs,
                              verbose=ns.verbose)
        return trio.run(run_monitor, opts, Reporter(verbose=ns.verbose))

    try:
        result = run_operator("monitor", "what was checked is remembered; rerun to resume",
                              lambda: parsed[0].verbose if parsed else 0, start)
    except OperatorExit as done:
        return done.code
    ns = parsed[0]
    if ns.json:
        print(json.dumps(result.as_dict(), indent=1, sort_keys=True))
    else:
        for a in result.alerts:
            print(a.line())
        for p in result.problems:
            print(f"torfetch monitor: PROBLEM: {p}")
        c = result.counts
        print(f"torfetch monitor: {len(result.alerts)} alert(s); checked {result.checked} new entries "
              f"({result.search_listed} listed by the index search, {result.signer_listed} by the signer's records); "
              f"known: {c.get('ok', 0)} ok, {c.get('alert', 0)} alert, {c.get('foreign', 0)} not the operator's, "
              f"{c.get('pending', 0)} pending; {result.db_packages} packages in the dbs")
        print(f"torfetch monitor: note: {SEARCH_NOTE}")
    return 1 if result.alerts or result.problems else 0
