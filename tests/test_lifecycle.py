"""Signals end a run as a failed check does: real torfetch processes, a trickling local server, real signals."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import trio

from tests.servers.files import FileServer
from torfetch.errors import Interrupted, SignatureError
from torfetch.lifecycle import INTERRUPT_SIGNALS, SignalLatch, run_interruptible

TORFETCH = [sys.executable, "-m", "torfetch"]
PUBKEY = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
PKG = "slow-1.0-1-any.pkg.tar.zst"


@pytest.fixture
def tmp_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Every output here is a sync db, which pacman writes into its sync directory (only there is a .db metadata)."""
    d = tmp_path_factory.mktemp("lifecycle") / "sync"
    d.mkdir()
    return d


@pytest.fixture
def trickling(tmp_path: Path) -> Iterator[FileServer]:
    """A mirror that takes minutes for each body (a stalled download), 127.0.0.1 only."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "core.db").write_bytes(os.urandom(400_000))
    (www / PKG).write_bytes(os.urandom(400_000))
    (www / f"{PKG}.t").write_bytes(b"untrusted comment: x\nRWQ\ntrusted comment: x\nx\n")
    with FileServer(www) as s:
        s.behaviour.rules.update({"core.db": "trickle", PKG: "trickle"})
        s.behaviour.trickle_bytes = 512
        s.behaviour.trickle_interval = 0.5
        yield s


def _temps(d: Path) -> list[str]:
    return sorted(p.name for p in d.iterdir() if p.name.startswith(".torfetch-"))


def wait_for(cond, what: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    for _ in range(100_000):
        if cond():
            return
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.05)


def _signals(ignored: tuple[int, ...] = ()):
    """For the child: default dispositions (a background shell ignores SIGINT for its jobs), ``ignored`` ignored."""
    def apply() -> None:
        for s in INTERRUPT_SIGNALS:
            signal.signal(s, signal.SIG_IGN if s in ignored else signal.SIG_DFL)
    return apply


def start_mid_download(out: Path, server: FileServer, *args: str, ignored: tuple[int, ...] = ()) -> subprocess.Popen[str]:
    """torfetch under way: its temp file exists and the mirror is trickling the body to it."""
    p = subprocess.Popen([*TORFETCH, "--direct", "-O", str(out), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                         preexec_fn=_signals(ignored))
    wait_for(lambda: _temps(out.parent) and server.requests, "the download to start")
    time.sleep(0.3)  # well inside the body now
    assert p.poll() is None, p.communicate()
    return p


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT], ids=lambda s: s.name)
def test_signal_mid_download_cleans_up_one_line_exit_130(sig: signal.Signals, tmp_path: Path,
                                                         trickling: FileServer) -> None:
    out_dir = tmp_path / "sync"
    out_dir.mkdir()
    out = out_dir / "core.db.part"
    out.write_bytes(b"stale partial from an earlier try")
    p = start_mid_download(out, trickling, f"{trickling.url}/core.db")
    p.send_signal(sig)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err.splitlines() == [f"torfetch: interrupted by {sig.name}: core.db.part was not written"], err
    assert sorted(x.name for x in out_dir.iterdir()) == []  # no -O (stale one included), no temp file


def test_sigterm_cancels_every_task_of_a_package_fetch(tmp_path: Path, trickling: FileServer) -> None:
    """Download, signature and rebuilder tasks side by side: one SIGTERM cancels them all."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    key = tmp_path / "log.pem"
    key.write_bytes(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
    out_dir = tmp_path / "sync"
    out_dir.mkdir()
    out = out_dir / f"{PKG}.part"
    p = start_mid_download(out, trickling, "--pubkey", PUBKEY, "--log-url", trickling.url, "--log-key", str(key),
                           "--state-dir", str(tmp_path / "state"), "--rebuilder", f"{trickling.url}/rb/",
                           f"{trickling.url}/{PKG}")
    wait_for(lambda: any(path.endswith(".t") for _, path in trickling.requests), "the signature lookup")
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err.splitlines() == [f"torfetch: interrupted by SIGTERM: {PKG}.part was not written"], err
    assert sorted(x.name for x in out_dir.iterdir()) == []


def test_signal_before_the_run_is_one_line_too(tmp_path: Path) -> None:
    """A SIGTERM while Python is still starting up (before trio): one line, 130, nothing created."""
    out = tmp_path / "core.db.part"
    # stop the child in its own startup: SIGTERM arrives while it imports, before any network work
    code = ("import os, signal, sys; sys.argv = ['torfetch', '-O', %r, 'http://127.0.0.1:9/core.db'];"
            "import torfetch.cli as c; c.build_parser = (lambda orig: (lambda: (os.kill(os.getpid(), signal.SIGTERM),"
            " orig())[1]))(c.build_parser); sys.exit(c.main())") % str(out)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, preexec_fn=_signals())
    assert r.returncode == 130, r.stderr
    assert r.stderr.splitlines() == ["torfetch: interrupted by SIGTERM: the file was not written"], r.stderr
    assert list(tmp_path.iterdir()) == []


# --- run_interruptible itself, in this process (one real signal to ourselves each) -----------


async def test_first_signal_cancels_and_cleanup_runs() -> None:
    cleaned: list[str] = []

    async def work() -> None:
        try:
            os.kill(os.getpid(), signal.SIGTERM)
            await trio.sleep(60)
        finally:
            with trio.CancelScope(shield=True):
                # a second signal while cleaning up is absorbed, not redelivered to the latch
                os.kill(os.getpid(), signal.SIGINT)
                await trio.sleep(0.2)
                cleaned.append("temp file removed")

    saved = {s: signal.getsignal(s) for s in INTERRUPT_SIGNALS}
    with SignalLatch() as latch, trio.fail_after(30):
        with pytest.raises(Interrupted) as info:
            await run_interruptible(work, output_name="x.part", latch=latch)
    assert {s: signal.getsignal(s) for s in INTERRUPT_SIGNALS} == saved  # handed back
    assert info.value.signum == signal.SIGTERM and info.value.exit_code == 130
    assert info.value.one_line() == "torfetch: interrupted by SIGTERM: x.part was not written"
    assert cleaned == ["temp file removed"]
    assert latch.signum is None


async def test_errors_come_out_unwrapped_and_results_through() -> None:
    err = SignatureError("bad signature for x")

    async def failing() -> None:
        await trio.sleep(0)
        raise err

    async def ok() -> int:
        await trio.sleep(0)
        return 42

    with pytest.raises(SignatureError) as info:
        await run_interruptible(failing, output_name="x")
    assert info.value is err
    assert await run_interruptible(ok, output_name="x") == 42


# --- SIGKILL cannot be handled: the next run sweeps what it left ---------------------------------


def test_sigkilled_runs_temp_file_is_swept_by_the_next_run(tmp_path: Path, trickling: FileServer) -> None:
    out_dir = tmp_path / "sync"
    out_dir.mkdir()
    killed = subprocess.Popen([*TORFETCH, "--direct", "-O", str(out_dir / "core.db.part"), f"{trickling.url}/core.db"],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, preexec_fn=_signals())
    wait_for(lambda: _temps(out_dir) and trickling.requests, "the download to start")
    litter = _temps(out_dir)
    killed.send_signal(signal.SIGKILL)
    killed.wait(timeout=30)
    assert _temps(out_dir) == litter and litter[0].startswith(f".torfetch-core.db.part.{killed.pid}.")
    # a live torfetch's temp file (this test's parent process stands in for it) is left alone
    live = out_dir / f".torfetch-other.db.part.{os.getppid()}.abcdefgh.tmp"
    live.write_bytes(b"in progress")
    (trickling.root / "extra.db").write_bytes(b"quick")
    r = subprocess.run([*TORFETCH, "--direct", "-O", str(out_dir / "extra.db.part"), f"{trickling.url}/extra.db"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 0, r.stderr
    assert _temps(out_dir) == [live.name]
    assert (out_dir / "extra.db.part").read_bytes() == b"quick"


async def test_a_signal_after_the_work_finished_does_not_undo_it() -> None:
    async def finish_then_signal() -> int:
        await trio.sleep(0)
        os.kill(os.getpid(), signal.SIGTERM)  # delivered to trio; no checkpoint before we return
        return 42

    with SignalLatch() as latch:
        assert await run_interruptible(finish_then_signal, output_name="x", latch=latch) == 42


def test_a_run_that_fails_before_writing_still_sweeps(tmp_path: Path) -> None:
    """Tor's control port is down, so the run fails before it writes; the dead run's temp file goes all the same."""
    from tests.tornet import free_ports

    p = subprocess.Popen([sys.executable, "-c", "pass"])
    p.wait(timeout=30)
    litter = tmp_path / f".torfetch-core.db.part.{p.pid}.abcdefgh.tmp"
    litter.write_bytes(b"x" * 1000)
    (dead,) = free_ports(1)
    r = subprocess.run([*TORFETCH, "-O", str(tmp_path / "core.db.part"), "--tor-control", f"127.0.0.1:{dead}",
                        "http://mirror.test/core.db"], capture_output=True, text=True, timeout=60)
    assert "control port" in r.stderr, r.stderr
    assert r.returncode == 3, r.stderr
    assert list(tmp_path.iterdir()) == []


def test_a_signal_ignored_by_the_parent_stays_ignored(tmp_path: Path, trickling: FileServer) -> None:
    """Under nohup (SIGHUP ignored) a hangup does not stop the download; the SIGTERM after it does."""
    out = tmp_path / "core.db.part"
    p = start_mid_download(out, trickling, f"{trickling.url}/core.db", ignored=(signal.SIGHUP,))
    p.send_signal(signal.SIGHUP)
    p.send_signal(signal.SIGTERM)
    _, err = p.communicate(timeout=30)
    assert p.returncode == 130, err
    assert err.splitlines() == ["torfetch: interrupted by SIGTERM: core.db.part was not written"], err
    assert _temps(tmp_path) == [] and not out.exists()
