"""Limits, timeouts and options: one frozen dataclass, no globals."""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .verify.sigsum_policy import Policy

MiB = 1024 * 1024

#: Tor's usual SocksPort: used whenever neither --proxy, --direct, --tor launch nor --tor-control says otherwise
DEFAULT_TOR_PROXY = "socks5h://127.0.0.1:9050"


@dataclass(frozen=True)
class Limits:
    # The largest Arch packages are a few GiB; default leaves room, configurable.
    package_max_bytes: int = 8 * 1024 * MiB
    # Database files (*.db, *.files) can be tens of MiB.
    other_max_bytes: int = 1024 * MiB
    # pacman-bintrans caps the .t body at 1 KiB.
    signature_max_bytes: int = 1024
    # a Sigsum .proof: 63 node hashes and 256 cosignatures fit (verify/sigsum_proof.py MAX_PROOF_BYTES)
    sigsum_proof_max_bytes: int = 64 * 1024
    rekor_max_bytes: int = 256 * 1024
    rebuilder_max_bytes: int = 4 * MiB
    attestation_max_bytes: int = 1 * MiB
    # .PKGINFO must show up within this many compressed/decompressed bytes. A hostile package makes the
    # decompressor touch about as much memory as it decompresses (up to its frame's window) before any check:
    # 64 MiB bounds that; real packages have .PKGINFO within a few hundred KiB (.BUILDINFO and .MTREE first).
    pkginfo_max_compressed: int = 16 * MiB
    pkginfo_max_decompressed: int = 64 * MiB
    pkginfo_max_member: int = 1 * MiB


@dataclass(frozen=True)
class Timeouts:
    connect: float = 60.0  # Tor circuits can take tens of seconds
    idle_read: float = 60.0
    download_total: float = 3600.0
    lookup_total: float = 120.0  # signature / log lookups
    rebuilder: float = 30.0
    # pacman's curl aborts below 1 byte/s over 10 s; over Tor a stalled circuit
    # trickles more than that, so: below 1 KiB/s averaged over 30 s. 0 disables.
    low_speed_limit: int = 1024  # bytes per second
    low_speed_time: float = 30.0  # seconds


@dataclass(frozen=True)
class Options:
    """Everything the CLI decided, handed to the workflow."""

    url: str
    output: Path
    verbose: int = 0
    quiet: bool = False  # -q: nothing but warnings and errors on stderr
    transparency_url: str | None = None
    pubkey: str | None = None
    proxy: str | None = None  # None: Tor's SocksPort (from --tor-control, else DEFAULT_TOR_PROXY), unless direct
    direct: bool = False  # --direct: no Tor at all, the explicit opt-out
    bypass_proxy_for_pkgs: bool = False
    rebuilders: tuple[str, ...] = ()
    required_rebuild_confirms: int = 0
    rebuilder_keys: tuple[tuple[str, str], ...] = ()
    fail_on_bad: bool = False
    log_url: str | None = None
    log_key: str | None = None
    log_origin: str | None = None  # the log's pinned origin name (checkpoints: '<name> - <tree id>')
    state_dir: Path | None = None
    no_upload: bool = False
    isolate: str = "purpose"
    tor_control: str | None = None
    tor_launch: bool = False
    tor_config: Path | None = None  # torrc lines for --tor launch (bridges, a test network)
    audit_circuits: bool = False
    pacman_conf: Path | None = None  # its sync dbs give a package's sha256 before the download ends; None: not read
    user_agent: str | None = None
    config_file: str | None = None  # the config file that was read, for messages
    config_note: str | None = None  # which config and [[repo]] applied (-v)
    sigsum_policy: Policy | None = None  # --sigsum-policy, parsed: the logs, witnesses and quorum a proof needs
    sigsum_policy_file: str | None = None  # where it was read, for messages
    sigsum_key: bytes | None = None  # --sigsum-key: the repository's Sigsum submitter key, 32 raw bytes
    missing_pubkey_hint: str = "give --pubkey"  # what to do when a package has no operator key
    limits: Limits = field(default_factory=Limits)
    timeouts: Timeouts = field(default_factory=Timeouts)
