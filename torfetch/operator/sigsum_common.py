"""What ``sign`` and ``monitor`` share on the Sigsum path: reading the policy, the submitter's keys, a token."""

from __future__ import annotations

import copy
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from ..errors import ConfigError, SigsumPolicyError, TorfetchError
from ..localfile import read_local_file
from ..verify.sigsum_policy import MAX_POLICY_BYTES, Policy, parse_policy

MAX_SECRET_KEY_BYTES = 16 * 1024  # an OpenSSH Ed25519 private key is ~400 bytes


def load_policy(path: Path) -> Policy:
    """--sigsum-policy FILE, parsed; the operator tools need a URL for every log they talk to."""
    data = read_local_file(path, what="--sigsum-policy", max_bytes=MAX_POLICY_BYTES).data
    try:
        return parse_policy(data)
    except SigsumPolicyError as exc:
        raise SigsumPolicyError(f"--sigsum-policy {path}: {exc.message}") from exc


def logs_with_url(policy: Policy, path: Path) -> list[tuple[bytes, str]]:
    """(log keyhash, URL) of every policy log that names a URL, in the policy's order."""
    out = [(kh, log.url.rstrip("/")) for kh, log in policy.logs.items() if log.url]
    if not out:
        raise ConfigError(f"--sigsum-policy {path}: no log line gives a URL (log <hex key> <url>): nothing to talk to")
    return out


def at_log(exc: TorfetchError, url: str, policy_path: Path) -> TorfetchError:
    """``exc`` (same type, status and cause) naming the log's URL and the policy file whose log line gave it."""
    msg = exc.message if url in exc.message else f"Sigsum log {url}: {exc.message}"
    out = copy.copy(exc)  # keeps HTTPStatusError.status, the hint and the exit code
    out.message = f"{msg} (the log named in --sigsum-policy {policy_path})"
    out.args = (out.message,)
    return out


def load_secret_key(path: Path) -> Ed25519PrivateKey:
    """--sigsum-key-path: an unencrypted OpenSSH Ed25519 private key, as ``sigsum-key generate`` writes it."""
    data = read_local_file(path, what="--sigsum-key-path", max_bytes=MAX_SECRET_KEY_BYTES).data
    try:
        key = serialization.load_ssh_private_key(data, password=None)
    except TypeError as exc:  # encrypted: cryptography asks for a password
        raise ConfigError(f"--sigsum-key-path {path} is encrypted: give an unencrypted key "
                          "(as sigsum-key generate writes it)") from exc
    except (ValueError, Exception) as exc:  # cryptography raises ValueError (and UnsupportedAlgorithm) on bad input
        raise ConfigError(f"--sigsum-key-path {path} is not an OpenSSH private key: {str(exc)[:120]}") from exc
    if not isinstance(key, Ed25519PrivateKey):
        raise ConfigError(f"--sigsum-key-path {path} is not an Ed25519 key (Sigsum signs with Ed25519 only)")
    return key


def raw_public(key: Ed25519PrivateKey) -> bytes:
    return key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)


def load_public_key(text: str) -> bytes:
    """--sigsum-key: an ``ssh-ed25519`` line, 64 hex digits, or a file holding one → 32 raw bytes."""
    from ..keyfiles import load_sigsum_key  # one loader for fetch and monitor (same messages)

    return load_sigsum_key(text)


def load_token(text: str | None) -> str | None:
    """--sigsum-token: "[sigsum-token:] <domain> <hex>" inline, or a file holding that line."""
    from ..net.sigsum_log import parse_token

    if text is None:
        return None
    if " " in text.strip():
        return parse_token(text)
    return parse_token(read_local_file(text, what="--sigsum-token", max_bytes=4096).data.decode("ascii", "replace"))
