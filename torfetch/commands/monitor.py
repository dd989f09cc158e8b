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
                "(Rekor, --pubkey) and/or every Sigsum leaf made with the operator's Sigsum key (--sigsum-*), and "
                "report those that match no package in the given repository dbs")
    p.add_argument("-v", "--verbose", action="count", default=0)
    p.add_argument("--pubkey", help="the operator's minisign public key (base64 line or .pub file): monitor Rekor")
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
    sg = p.add_argument_group("Sigsum (every leaf of the log is read; no index search involved)")
    sg.add_argument("--sigsum-policy", type=Path, metavar="FILE", help="the Sigsum policy: the log(s) to read "
                    "(with URLs) and the witness quorum their tree heads must meet")
    sg.add_argument("--sigsum-key", metavar="KEY", help="the operator's Sigsum submitter key: an ssh-ed25519 line, "
                    "64 hex digits, or a file holding one")
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
        if (ns.sigsum_policy is None) != (ns.sigsum_key is None):
            raise UsageError("--sigsum-policy and --sigsum-key go together")
        if ns.pubkey is None and ns.sigsum_policy is None:
            raise UsageError("give --pubkey (Rekor), --sigsum-policy and --sigsum-key (Sigsum), or both")
        return trio.run(_both, ns)

    async def _both(ns):
        report = Reporter(verbose=ns.verbose)
        rekor = sig = None
        if ns.pubkey is not None:
            opts = MonitorOptions(pubkey=ns.pubkey, repo_dbs=tuple(ns.repo_db), log_url=ns.log_url,
                                  log_key=ns.log_key, state_dir=ns.state_dir, signer_state=ns.signer_state,
                                  proxy=ns.proxy, jobs=ns.jobs, verbose=ns.verbose)
            rekor = await run_monitor(opts, report)
        if ns.sigsum_policy is not None:
            from ..operator.sigsum_monitor import SigsumMonitorConfig, monitor_sigsum

            sig = await monitor_sigsum(SigsumMonitorConfig(ns.sigsum_policy, ns.sigsum_key,
                                                           signer_state=ns.signer_state),
                                       repo_dbs=tuple(ns.repo_db), state_dir=ns.state_dir, proxy=ns.proxy,
                                       timeouts=MonitorOptions(pubkey="", repo_dbs=()).timeouts, report=report)
        return rekor, sig

    try:
        rekor, sig = run_operator("monitor", "what was checked is remembered; rerun to resume",
                                  lambda: parsed[0].verbose if parsed else 0, start)
    except OperatorExit as done:
        return done.code
    ns = parsed[0]
    alerts = (len(rekor.alerts) + len(rekor.problems) if rekor else 0) + (len(sig.alerts) + len(sig.problems) if sig else 0)
    if ns.json:
        doc = rekor.as_dict() if rekor else {"alerts": [], "problems": []}
        if sig:
            doc["alerts"] = doc["alerts"] + [a.as_dict() for a in sig.alerts]
            doc["problems"] = doc["problems"] + sig.problems
            doc["sigsum"] = sig.as_dict()
        print(json.dumps(doc, indent=1, sort_keys=True))
        return 1 if alerts else 0
    if rekor:
        for a in rekor.alerts:
            print(a.line())
        for p in rekor.problems:
            print(f"torfetch monitor: PROBLEM: {p}")
        c = rekor.counts
        print(f"torfetch monitor: {len(rekor.alerts)} alert(s); checked {rekor.checked} new entries "
              f"({rekor.search_listed} listed by the index search, {rekor.signer_listed} by the signer's records); "
              f"known: {c.get('ok', 0)} ok, {c.get('alert', 0)} alert, {c.get('foreign', 0)} not the operator's, "
              f"{c.get('pending', 0)} pending; {rekor.db_packages} packages in the dbs")
        print(f"torfetch monitor: note: {SEARCH_NOTE}")
    if sig:
        for a in sig.alerts:
            print(a.line())
        for p in sig.problems:
            print(f"torfetch monitor: PROBLEM: {p}")
        c = sig.counts
        sizes = ", ".join(f"{u} {n}" for u, n in sig.tree_sizes.items()) or "none"
        print(f"torfetch monitor: Sigsum: {len(sig.alerts)} alert(s); read {sig.leaves_read} new leaves "
              f"({sig.operator_leaves} by the operator's key, {sig.foreign_leaves} by other submitters); "
              f"verified tree sizes: {sizes}; operator's leaves known: {c.get('ok', 0)} ok, {c.get('alert', 0)} alert")
    return 1 if alerts else 0
