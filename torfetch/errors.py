"""The one exception tree of torfetch.

Two branches, as in python-tuf: ``VerificationError`` means the data is wrong
(never retried, never downgraded); ``NetworkError`` means transport failed.
Every message is written for the user: it names the check, the file and why.
"""

from __future__ import annotations

import signal


class TorfetchError(Exception):
    """Base of every error torfetch raises on purpose."""

    #: process exit status used by the CLI
    exit_code: int = 1
    #: short label of the failed check, printed before the message
    check: str = "error"

    def __init__(self, message: str, *, hint: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint

    def one_line(self) -> str:
        return f"torfetch: {self.check}: {self.message}"

    def diagnostics(self) -> str:
        """Longer text for ``-v``: message, advice and the chain of causes."""
        lines = [self.one_line()]
        if self.hint:
            lines.append(f"  hint: {self.hint}")
        cause = self.__cause__
        depth = 0
        while cause is not None and depth < 5:
            lines.append(f"  caused by: {type(cause).__name__}: {cause}")
            cause = cause.__cause__
            depth += 1
        return "\n".join(lines)


# --- usage / configuration -------------------------------------------------


class UsageError(TorfetchError):
    exit_code = 2
    check = "usage"


class ConfigError(UsageError):
    check = "configuration"


class OutputPathError(UsageError):
    """``-O`` names something torfetch must not replace (a device, a FIFO, a directory)."""

    check = "output"


# --- the data is wrong -------------------------------------------------------


class VerificationError(TorfetchError):
    """A check on the content failed. Never retried on another circuit."""

    exit_code = 1
    check = "verification"


class MalformedInputError(VerificationError):
    """Untrusted bytes (signature, JSON, proof, archive) could not be parsed."""

    check = "malformed input"


class SignatureError(VerificationError):
    check = "transparency signature"


class TransparencyLogError(VerificationError):
    check = "transparency log"


class InclusionProofError(TransparencyLogError):
    check = "inclusion proof"


class ConsistencyProofError(TransparencyLogError):
    check = "log consistency"


class CheckpointError(TransparencyLogError):
    check = "log checkpoint"


class SplitViewError(TransparencyLogError):
    """The log showed this user a history inconsistent with what it showed before."""

    check = "split view"


class EntryNotFoundError(TransparencyLogError):
    check = "transparency log"


# --- Sigsum (offline proofs beside each package) -------------------------------


class SigsumError(TransparencyLogError):
    """A Sigsum proof did not verify. Messages start with "proof for <file>:" where a file is known."""

    check = "sigsum"


class SigsumMalformedError(SigsumError, MalformedInputError):
    """A proof file or a log's ASCII answer is not in the Sigsum format (or too large)."""

    check = "sigsum proof"


class SigsumSignatureError(SigsumError):
    """The leaf is not the submitter's, or a leaf or tree-head signature does not verify."""

    check = "sigsum signature"


class SigsumQuorumError(SigsumError):
    """The log is not in the policy, or the policy's witnesses did not cosign enough."""

    check = "sigsum witnesses"


class SigsumInclusionError(SigsumError, InclusionProofError):
    check = "sigsum inclusion proof"


class SigsumSplitViewError(SigsumError, SplitViewError):
    """A cosigned tree head of a size seen before, with another root: the log forked its history."""

    check = "sigsum split view"


class SigsumPolicyError(ConfigError):
    """The Sigsum policy file given by --sigsum-policy is not valid (a usage error: exit 2)."""

    check = "sigsum policy"


class RebuilderError(VerificationError):
    check = "rebuilders"


class AttestationError(RebuilderError):
    check = "rebuild attestation"


class PackageContentError(VerificationError):
    """The package archive itself (.PKGINFO) is wrong, too large or a bomb."""

    check = "package content"


class NotAPackageError(VerificationError):
    """Neither repository metadata nor a package file name: refused, never fetched without proof."""

    check = "file name"


class LocalStorageError(TorfetchError):
    """This machine could not store the file (disk full, quota, I/O error): not the network, not the data.

    Exit code 1, as any other failure pacman cannot retry around; the message names the directory.
    """

    exit_code = 1
    check = "local storage"


class RepoDbError(MalformedInputError):
    """A repository database (<repo>.db) is malformed, too large or a bomb (operator tools)."""

    check = "repository database"


class StateError(TorfetchError):
    """Persisted trust state is corrupt or unwritable. Never silently reset."""

    exit_code = 1
    check = "state"


# --- transport failed ---------------------------------------------------------


class NetworkError(TorfetchError):
    exit_code = 3
    check = "network"


class NotFoundError(NetworkError):
    """HTTP 404 (or a missing file://). For optional files such as core.db.sig."""

    check = "not found"


class HTTPStatusError(NetworkError):
    check = "http"

    def __init__(self, message: str, *, status: int, hint: str | None = None) -> None:
        super().__init__(message, hint=hint)
        self.status = status


class FetchTimeout(NetworkError):
    check = "timeout"


class DownloadTooLarge(NetworkError):
    check = "size limit"


class TorUnavailable(NetworkError):
    check = "tor"


class CircuitFailed(NetworkError):
    check = "tor circuit"


class IsolationError(TorfetchError):
    """Two purposes shared a circuit (seen with --audit-circuits)."""

    exit_code = 1
    check = "circuit isolation"


class Interrupted(TorfetchError):
    """SIGINT, SIGTERM or SIGHUP stopped the run; it was cancelled and cleaned up. Always exit 130."""

    exit_code = 130
    check = "interrupted"

    def __init__(self, signum: int, output_name: str) -> None:
        super().__init__(f"{output_name} was not written")
        self.signum = signum
        try:
            name = signal.Signals(signum).name
        except ValueError:
            name = f"signal {signum}"
        self.check = f"interrupted by {name}"
