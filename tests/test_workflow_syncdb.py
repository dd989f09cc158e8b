"""Overlap inside one fetch: a package's sha256 from pacman's sync db starts the log lookup before the download ends.

The mirror serves the package in two halves and holds the second until the log
server has seen a request (bounded wait): with the overlap the log's request
comes while the package is still streaming; without it, only after. Ordering is
recorded on the servers, never timed.
"""

from __future__ import annotations

import shutil
import subprocess
import sys
import threading
import urllib.parse
from pathlib import Path

import pytest

from tests.repo import Repo, make_repo, sha256_file
from tests.servers.base import Handler
from tests.servers.files import FileServer, HoldingMirror
from tests.servers.rekor import RekorServer

TORFETCH = [sys.executable, "-m", "torfetch"]
# bound on the mirror's wait for its gate; below torfetch's low-speed rule (30 s), so a gate that never opens
# shows up as an ordering failure, not as a stalled download
GATE_SECONDS = 20
# what torfetch -v says once its sync-db lookup answered, one way or the other
DB_VERDICTS = ("start from the sync db", "does not exist", "no readable sync db", "is not listed in")


class Events:
    """What the servers saw, in order (the servers run in threads of this process)."""

    def __init__(self) -> None:
        self.seen: list[str] = []
        self.log_asked = threading.Event()
        self.db_answered = threading.Event()  # torfetch said (stderr, -v) that the sync db gave the sha256
        self.warmed_up = threading.Event()  # the log's connection was opened (GET /api/v1/log)
        self._lock = threading.Lock()

    def add(self, what: str) -> None:
        with self._lock:
            self.seen.append(what)


def holding_mirror(root: Path, events: Events, held: str, gate: threading.Event | None = None) -> HoldingMirror:
    """Serves ``held`` in two halves, the second once ``gate`` opens (the log's first request unless told
    otherwise; GATE_SECONDS at most), recording into ``events``."""
    return HoldingMirror(root, held, gate if gate is not None else events.log_asked, hold_seconds=GATE_SECONDS,
                         record=events.add)


class WatchedLog(RekorServer):
    def __init__(self, events: Events, hold_warm_up: threading.Event | None = None) -> None:
        self.events = events
        self.hold_warm_up = hold_warm_up  # if given: the warm-up's answer waits for it (GATE_SECONDS at most)
        self.warm_up_released: bool | None = None
        self.warm_up_answered = threading.Event()
        self.clients: list[tuple[str, str, tuple[str, int]]] = []  # (method, path, the connection's peer)
        super().__init__()

    def _dispatch(self, h: Handler, method: str) -> None:
        path = urllib.parse.urlsplit(h.path).path
        self.clients.append((method, path, h.client_address))
        if (method, path) == ("GET", "/api/v1/log"):
            # torfetch's connection warm-up at t=0 (the log's public tree head): not a lookup
            self.events.add("warm-up of the log")
            self.events.warmed_up.set()
            if self.hold_warm_up is not None:
                self.warm_up_released = self.hold_warm_up.wait(GATE_SECONDS * 3)
                self.warm_up_answered.set()
        else:
            self.events.add(f"log {method} {path}")
            self.events.log_asked.set()
        super()._dispatch(h, method)


@pytest.fixture
def repo(tmp_path: Path) -> Repo:
    r = make_repo(tmp_path / "served")
    # (the mirror holds back the second half of whatever this compresses to)
    r.add("hello", files={"usr/share/hello/data.bin": bytes(range(256)) * 256})
    return r


def pacman_conf(tmp_path: Path, repo: Repo) -> Path:
    """A pacman.conf whose DBPath/sync/test.db is the repository's db."""
    dbpath = tmp_path / "dbpath"
    (dbpath / "sync").mkdir(parents=True)
    shutil.copy(repo.repo_dir / "test.db.tar.gz", dbpath / "sync" / "test.db")
    conf = tmp_path / "pacman.conf"
    conf.write_text(f"[options]\nDBPath = {dbpath}/\nArchitecture = x86_64\n\n[test]\nServer = http://mirror.invalid\n")
    return conf


def fetch(tmp_path: Path, repo: Repo, mirror: FileServer, log: RekorServer, conf: Path,
          ) -> tuple[subprocess.CompletedProcess[str], Path]:
    key = tmp_path / "rekor.pem"
    key.write_bytes(log.public_key_pem)
    pkg = repo.packages["hello"]
    out = tmp_path / "cache" / (pkg.name + ".part")
    out.parent.mkdir(exist_ok=True)
    cmd = [*TORFETCH, "-v", "--direct", "--transparency-url", f"{mirror.url}/sigs", "--pubkey", repo.key.pub_line,
           "--log-url", log.url, "--log-key", str(key), "--state-dir", str(tmp_path / "state"),
           "--pacman-conf", str(conf), "--config", "/dev/null", "-O", str(out), f"{mirror.url}/repo/{pkg.name}"]
    events = getattr(log, "events", None)  # a WatchedLog's: what the gates of the test's mirror wait on
    lines: list[str] = []
    with subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
        def read_stderr() -> None:
            # torfetch's own -v line orders the test's gates after the db lookup, without timing anything
            for line in proc.stderr:
                lines.append(line)
                if events is not None and any(m in line for m in DB_VERDICTS):
                    events.db_answered.set()

        reader = threading.Thread(target=read_stderr, daemon=True)
        reader.start()
        stdout = proc.stdout.read()  # torfetch writes nothing there; EOF when it exits
        proc.wait(timeout=120)
        reader.join(timeout=30)
    r = subprocess.CompletedProcess(cmd, proc.returncode, stdout, "".join(lines))
    return r, out


def test_log_lookup_starts_from_the_sync_db_while_the_package_streams(tmp_path: Path, repo: Repo) -> None:
    events = Events()
    pkg = repo.packages["hello"]
    with holding_mirror(repo.root, events, pkg.name) as mirror, WatchedLog(events) as log:
        r, out = fetch(tmp_path, repo, mirror, log, pacman_conf(tmp_path, repo))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    first_log = next(i for i, e in enumerate(events.seen) if e.startswith("log "))
    assert events.seen.index("package start") < first_log < events.seen.index("package end"), events.seen
    assert f"sync db test.db lists sha256 {sha256_file(pkg)}" in r.stderr
    assert "start from the sync db" in r.stderr
    assert "as the sync db test.db lists" in r.stderr


def test_db_listing_another_sha256_is_refused(tmp_path: Path, repo: Repo) -> None:
    conf = pacman_conf(tmp_path, repo)  # the db keeps the original hash
    pkg = repo.packages["hello"]
    listed = sha256_file(pkg)
    data = bytearray(pkg.read_bytes())
    data[-1] ^= 0x01
    pkg.write_bytes(bytes(data))
    # the operator's signature is over the bytes served: only the db disagrees
    repo.key.sign_hex(sha256_file(pkg), pkg.name, repo.sig_path("hello"))
    events = Events()
    # the check fails on the signature (made over other bytes than the db lists), so the log is never asked:
    # the mirror lets the rest go once torfetch said the sync db answered (so the db's hash is the one held)
    with holding_mirror(repo.root, events, pkg.name, gate=events.db_answered) as mirror, \
            WatchedLog(events) as log:
        r, out = fetch(tmp_path, repo, mirror, log, conf)
    assert r.returncode == 1, r.stderr
    line = r.stderr.strip().splitlines()[-1]
    assert f"the downloaded file's sha256 {sha256_file(pkg)} is not the sha256 {listed} the sync db test.db " \
           f"lists for {pkg.name}" in line, r.stderr
    assert "Traceback" not in r.stderr
    assert not out.exists()
    assert [p.name for p in out.parent.iterdir()] == []


@pytest.mark.parametrize("case", ["no pacman.conf", "no db", "not listed"])
def test_without_a_sync_db_the_lookups_wait_for_the_download(tmp_path: Path, repo: Repo, case: str) -> None:
    conf = pacman_conf(tmp_path, repo)
    if case == "no pacman.conf":
        conf = tmp_path / "missing.conf"
    elif case == "no db":
        (tmp_path / "dbpath" / "sync" / "test.db").unlink()
    else:
        conf.write_text(conf.read_text().replace("[test]", "[other]"))
        shutil.move(tmp_path / "dbpath" / "sync" / "test.db", tmp_path / "dbpath" / "sync" / "other.db")
        _relist(repo, tmp_path / "dbpath" / "sync" / "other.db")
    events = Events()
    pkg = repo.packages["hello"]
    # the rest goes once torfetch said what the db lookup found, so that verdict is always in its output
    with holding_mirror(repo.root, events, pkg.name, gate=events.db_answered) as mirror, WatchedLog(events) as log:
        r, out = fetch(tmp_path, repo, mirror, log, conf)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    first_log = next(i for i, e in enumerate(events.seen) if e.startswith("log "))
    assert events.seen.index("package end") < first_log, events.seen  # as before: after the download
    assert "start from the sync db" not in r.stderr
    expect = {"no pacman.conf": "does not exist", "no db": "no readable sync db",
              "not listed": "is not listed in 1 sync db(s)"}[case]
    assert expect in r.stderr, r.stderr


def _relist(repo: Repo, db: Path) -> None:
    """A db that lists only another package."""
    other = make_repo(db.parent.parent / "other")
    other.add("unrelated")
    shutil.copy(other.repo_dir / "test.db.tar.gz", db)


def test_the_log_connection_opens_before_the_signature_arrives_and_the_lookup_reuses_it(
        tmp_path: Path, repo: Repo) -> None:
    # The .t is held half-sent until the log saw torfetch's warm-up: the log's connection opens while the
    # signature its lookup needs is still on its way, and the lookup then rides that same connection.
    events = Events()
    pkg = repo.packages["hello"]
    with holding_mirror(repo.root, events, pkg.name + ".t", gate=events.warmed_up) as mirror, \
            WatchedLog(events) as log:
        r, out = fetch(tmp_path, repo, mirror, log, pacman_conf(tmp_path, repo))
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    assert events.seen.index("warm-up of the log") < events.seen.index("package end"), events.seen  # (the .t's end)
    (warm,) = [peer for m, p, peer in log.clients if (m, p) == ("GET", "/api/v1/log")]
    lookups = [peer for m, p, peer in log.clients if p.startswith("/api/v1/log/entries")]
    assert lookups and set(lookups) == {warm}, log.clients  # one connection (one circuit) for both


def test_a_log_slow_to_answer_the_warm_up_does_not_hold_the_lookup(tmp_path: Path, repo: Repo) -> None:
    # The warm-up's answer is held until torfetch has exited (60 s at most): the lookup waits for it only
    # LOG_WARM_UP_WAIT seconds, then goes on a connection of its own and the fetch completes.
    from torfetch.workflow import LOG_WARM_UP_WAIT

    assert LOG_WARM_UP_WAIT < GATE_SECONDS * 3
    events, release = Events(), threading.Event()
    pkg = repo.packages["hello"]
    with FileServer(repo.root) as mirror, WatchedLog(events, hold_warm_up=release) as log:
        try:
            r, out = fetch(tmp_path, repo, mirror, log, pacman_conf(tmp_path, repo))
        finally:
            release.set()
        assert log.warm_up_answered.wait(GATE_SECONDS)
    assert r.returncode == 0, r.stderr
    assert out.read_bytes() == pkg.read_bytes()
    assert log.warm_up_released is True  # released by the test after torfetch exited, not timed out
    (warm,) = [peer for m, p, peer in log.clients if (m, p) == ("GET", "/api/v1/log")]
    lookups = [peer for m, p, peer in log.clients if p.startswith("/api/v1/log/entries")]
    assert lookups and warm not in lookups, log.clients
