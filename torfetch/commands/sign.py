"""`torfetch sign`: flag-compatible with pacman-bintrans-sign; the logic is in operator/signer.py."""

from __future__ import annotations

import argparse
import getpass
import os
import sys
from pathlib import Path
from typing import NoReturn

from ..errors import ConfigError, UsageError

PASSWORD_ENV = "PACMAN_BINTRANS_PASSWORD"


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        raise UsageError(message)


def build_parser() -> argparse.ArgumentParser:
    p = _Parser(prog="torfetch sign", description="sign every package of a repository db (its sha256, from the db) "
                "with the operator's minisign key, write <signature-dir>/<filename>.t, and prove each in the log; "
                "and/or submit each to a Sigsum log and write <signature-dir>/<filename>.proof")
    p.add_argument("-v", "--verbose", action="count", default=0)
    g = p.add_argument_group("pacman-bintrans-sign options")
    g.add_argument("--repo-url", help="the repository's URL (pacman's Server, $repo and $arch are replaced)")
    g.add_argument("--repo-name", help="the repository's name ($repo)")
    g.add_argument("--architecture", help="$arch")
    g.add_argument("--repo-db", metavar="URL|PATH", help="the sync db (default <repo-url>/<repo-name>.db)")
    g.add_argument("--signature-dir", type=Path, required=True,
                   help="where <filename>.t (and, with --sigsum-*, <filename>.proof) files are written")
    g.add_argument("--pubkey-path", type=Path, help="the operator's minisign public key (.pub)")
    g.add_argument("--seckey-path", type=Path,
                   help=f"the minisign secret key (minisign -G; password from ${PASSWORD_ENV} or the terminal)")
    g.add_argument("--skip-upload", action="store_true", help="only write .t files, do not touch the log")
    g.add_argument("--reupload-sigs", action="store_true", help="upload and verify every package again, even those recorded")
    g.add_argument("--dry-run", action="store_true", help="print what would be signed and uploaded; write nothing")
    lg = p.add_argument_group("transparency log and state")
    lg.add_argument("--log-url", help="Rekor v1 log (default https://rekor.sigstore.dev)")
    lg.add_argument("--log-key", help="the log's public key (PEM text or file); required for a non-default --log-url")
    lg.add_argument("--state-dir", type=Path, help="the signer's records (signatures.sqlite) and remembered tree heads "
                    "(default /var/lib/torfetch as root, else $XDG_STATE_HOME/torfetch)")
    lg.add_argument("--proxy", help="SOCKS5 proxy (e.g. Tor); operator tools connect directly by default")
    lg.add_argument("--jobs", type=int, default=4, help="uploads in flight at once (default 4)")
    sg = p.add_argument_group("Sigsum (a .proof beside each package, checked offline by torfetch and sigsum-verify)")
    sg.add_argument("--sigsum-policy", type=Path, metavar="FILE",
                    help="the Sigsum policy: the log(s) to submit to (with URLs) and the witness quorum to wait for")
    sg.add_argument("--sigsum-key-path", type=Path, metavar="SECRET",
                    help="the submitter's OpenSSH Ed25519 private key (sigsum-key generate), unencrypted")
    sg.add_argument("--sigsum-token", metavar="TOKEN|FILE",
                    help="a submit token for a rate-limited log: '<domain> <hex>' as sigsum-token create prints it")
    return p


def _password() -> bytes | None:
    pw = os.environ.get(PASSWORD_ENV)
    if pw is not None:
        return pw.encode("utf-8")
    if sys.stdin.isatty():
        return getpass.getpass("Password for the minisign secret key: ").encode("utf-8")
    raise ConfigError(f"the secret key is encrypted: set {PASSWORD_ENV} or run on a terminal")


def main(argv: list[str]) -> int:
    import trio

    from ..operator.signer import SignOptions, run_sign
    from ..report import Reporter
    from .operator_runner import OperatorExit, run_operator

    parsed: list[argparse.Namespace] = []

    def start():
        ns = build_parser().parse_args(argv)
        parsed.append(ns)
        sigsum = None
        if ns.sigsum_policy is not None or ns.sigsum_key_path is not None:
            if ns.sigsum_policy is None or ns.sigsum_key_path is None:
                raise UsageError("--sigsum-policy and --sigsum-key-path go together")
            from ..operator.sigsum_common import load_token
            from ..operator.sigsum_sign import SigsumSignConfig

            sigsum = SigsumSignConfig(ns.sigsum_policy, ns.sigsum_key_path, token=load_token(ns.sigsum_token))
        elif ns.sigsum_token is not None:
            raise UsageError("--sigsum-token needs --sigsum-policy and --sigsum-key-path")
        opts = SignOptions(
            signature_dir=ns.signature_dir, pubkey_path=ns.pubkey_path, seckey_path=ns.seckey_path, repo_db=ns.repo_db,
            repo_url=ns.repo_url, repo_name=ns.repo_name, architecture=ns.architecture, skip_upload=ns.skip_upload,
            reupload_sigs=ns.reupload_sigs, dry_run=ns.dry_run, verbose=ns.verbose, log_url=ns.log_url,
            log_key=ns.log_key, state_dir=ns.state_dir, proxy=ns.proxy, jobs=ns.jobs, sigsum=sigsum)
        return trio.run(run_sign, opts, Reporter(verbose=ns.verbose), _password)

    try:
        summary = run_operator("sign", "what was recorded stays; rerun to resume",
                               lambda: parsed[0].verbose if parsed else 0, start)
    except OperatorExit as done:
        return done.code
    ns = parsed[0]
    print(summary.line(ns.dry_run))
    if summary.first_error is not None:
        return summary.first_error.exit_code
    return 0
