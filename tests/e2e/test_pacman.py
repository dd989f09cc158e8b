"""Real pacman (Debian's pacman-package-manager) with torfetch as XferCommand.

Packages are built by the test, signed with Debian's minisign, served on
127.0.0.1 and proven in a local Rekor-API log. For every failure case pacman
must fail, and CacheDir must hold neither the package nor any partial file.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import log_args, needs_pacman
from tests.pacman_sandbox import PacmanSandbox

pytestmark = [needs_pacman, pytest.mark.pacman]


def sandbox(tmp_path: Path, signed_repo, mirror, rekor, *, upload: bool = True, extra=(), siglevel="Never",
            server_path: str = "repo") -> PacmanSandbox:
    args = ["-v", "--direct", "--transparency-url", f"{mirror.url}/sigs", "--pubkey", signed_repo.key.pub_line,
            *log_args(rekor, tmp_path / "state", upload=upload), *extra]
    return PacmanSandbox(tmp_path / "root", f"{mirror.url}/{server_path}", args, siglevel=siglevel).write()


@pytest.mark.parametrize("name", ["hello", "legacy", "withepoch"])
def test_happy_path_installs(tmp_path, signed_repo, mirror, rekor, name) -> None:
    sb = sandbox(tmp_path, signed_repo, mirror, rekor)
    r = sb.run("-Sy", name)
    assert r.returncode == 0, r.stdout + r.stderr
    assert sb.installed(name)
    assert (sb.root / f"usr/share/{name}/hello.txt").read_text() == f"hello from {name}\n"
    assert sb.cached_packages() == [signed_repo.packages[name].name]
    assert "transparency signature of" in r.stderr and "verified" in r.stderr
    assert sb.leftovers() == []


def _assert_refused(sb: PacmanSandbox, r, expect: str, name: str | None = None) -> None:
    out = r.stdout + r.stderr
    assert r.returncode != 0, out
    assert expect in r.stderr, out
    assert "error invoking external downloader" in out or "failed to retrieve" in out, out
    cached = [p for p in sb.cached_packages() if name is None or p.startswith(name + "-")]
    assert cached == [], cached
    assert sb.leftovers() == [], sb.leftovers()
    assert "Traceback" not in out


@pytest.mark.parametrize(
    "name,expect",
    [
        ("flipped", "does not match the downloaded file"),
        ("otherkey", "was made by key"),
        ("nosig", "no transparency signature for"),
        ("bigsig", "over the limit of 1024"),
        ("truncated", "broke the connection"),
        ("replayed", "issued for another package"),
    ],
)
def test_tampered_package_is_refused(tmp_path, signed_repo, mirror, rekor, name, expect) -> None:
    sb = sandbox(tmp_path, signed_repo, mirror, rekor)
    r = sb.run("-Sy", name)
    _assert_refused(sb, r, expect)
    assert not sb.installed(name)


def test_stale_part_is_replaced_not_appended(tmp_path, signed_repo, mirror, rekor) -> None:
    sb = sandbox(tmp_path, signed_repo, mirror, rekor)
    pkg = signed_repo.packages["stalepart"]
    sb.cachedir.mkdir(parents=True, exist_ok=True)
    (sb.cachedir / (pkg.name + ".part")).write_bytes(b"garbage from an earlier interrupted try" * 100)
    r = sb.run("-Sy", "stalepart")
    assert r.returncode == 0, r.stdout + r.stderr
    assert (sb.cachedir / pkg.name).read_bytes() == pkg.read_bytes()
    assert sb.leftovers() == []


def test_stale_part_removed_when_check_fails(tmp_path, signed_repo, mirror, rekor) -> None:
    sb = sandbox(tmp_path, signed_repo, mirror, rekor)
    pkg = signed_repo.packages["flipped"]
    sb.cachedir.mkdir(parents=True, exist_ok=True)
    (sb.cachedir / (pkg.name + ".part")).write_bytes(pkg.read_bytes())  # even a plausible one
    r = sb.run("-Sy", "flipped")
    _assert_refused(sb, r, "does not match the downloaded file")


def test_missing_db_sig_fails_quietly(tmp_path, signed_repo, mirror, rekor) -> None:
    """SigLevel asking for test.db.sig: the 404 is one short line, no traceback."""
    sb = sandbox(tmp_path, signed_repo, mirror, rekor, siglevel="Never DatabaseOptional")
    r = sb.run("-Sy")
    # DatabaseOptional: the missing .db.sig is tolerated by pacman
    assert r.returncode == 0, r.stdout + r.stderr
    assert "Traceback" not in r.stderr


def test_no_upload_requires_existing_entry(tmp_path, signed_repo, mirror, rekor) -> None:
    # First run uploads "hello" (default), a second sandbox with --no-upload then finds it.
    sb1 = sandbox(tmp_path / "a", signed_repo, mirror, rekor)
    assert sb1.run("-Sy", "hello").returncode == 0
    sb2 = sandbox(tmp_path / "b", signed_repo, mirror, rekor, upload=False)
    r = sb2.run("-Sy", "hello")
    assert r.returncode == 0, r.stdout + r.stderr
    assert "log" in r.stderr


@pytest.fixture(scope="module")
def gpg_repo(tmp_path_factory):
    from tests.repo import make_repo
    from tests.servers.files import FileServer

    repo = make_repo(tmp_path_factory.mktemp("gpgrepo"), gpg=True)
    repo.add("signedpkg")
    repo.add("signedflip")
    p = repo.packages["signedflip"]
    data = bytearray(p.read_bytes())
    data[-10] ^= 0x01
    p.write_bytes(bytes(data))
    with FileServer(repo.root) as server:
        yield repo, server


def test_siglevel_required_with_signatures_in_db(tmp_path, gpg_repo, rekor) -> None:
    """As Arch's official repos: package signatures embedded in the db, SigLevel Required."""
    repo, server = gpg_repo
    db = (repo.repo_dir / "test.db.tar.gz").read_bytes()
    import tarfile, io

    with tarfile.open(fileobj=io.BytesIO(db)) as tf:
        desc = next(m for m in tf.getmembers() if m.name.endswith("/desc") and "signedpkg" in m.name)
        assert b"%PGPSIG%" in tf.extractfile(desc).read()
    sb = sandbox(tmp_path, repo, server, rekor, siglevel="Required DatabaseOptional")
    repo.gpg.export_into_pacman_keyring(sb.gpgdir)
    r = sb.run("-Sy", "signedpkg")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sb.installed("signedpkg")
    r = sb.run("-S", "signedflip")
    _assert_refused(sb, r, "does not match the downloaded file", "signedflip")


@pytest.fixture
def rebuilders(signed_repo):
    from contextlib import ExitStack

    from tests.repo import sha256_file
    from tests.servers.rebuilderd import Pkg, RebuilderdServer

    with ExitStack() as stack:
        honest, slow, liar = (stack.enter_context(RebuilderdServer()), stack.enter_context(RebuilderdServer(prefix="rebuild")),
                              stack.enter_context(RebuilderdServer()))
        pkg = signed_repo.packages["hello"]
        for srv in (honest, slow):
            srv.add(Pkg("hello", "1.0-1", sha256=sha256_file(pkg), filename=pkg.name))
        slow.behaviour.slow_seconds = 1.5
        liar.behaviour.lie_good = True
        yield honest, slow, liar


def _rebuilder_args(honest, slow, liar, timeout: str) -> list[str]:
    return ["--rebuilder", honest.url, "--rebuilder", slow.url, "--rebuilder", liar.url,
            "--rebuilder-key", f"{honest.url}={honest.pinned_key_hex}",
            "--rebuilder-key", f"{liar.url}={liar.pinned_key_hex}",
            "--required-rebuild-confirms", "2", "--rebuilder-timeout", timeout]


def test_two_of_three_rebuilders_one_slow_one_lying(tmp_path, signed_repo, mirror, rekor, rebuilders) -> None:
    honest, slow, liar = rebuilders
    # a second -v (-vv): each rebuilder's answer, not only the summary
    sb = sandbox(tmp_path, signed_repo, mirror, rekor, extra=["-v", *_rebuilder_args(honest, slow, liar, "20")])
    r = sb.run("-Sy", "hello")
    assert r.returncode == 0, r.stdout + r.stderr
    assert sb.installed("hello")
    assert "attestation signed by pinned key" in r.stderr and "not counted" in r.stderr
    assert "2 of 3 rebuilders confirmed hello 1.0-1" in r.stderr


def test_too_few_rebuilders_refuses(tmp_path, signed_repo, mirror, rekor, rebuilders) -> None:
    honest, slow, liar = rebuilders
    sb = sandbox(tmp_path, signed_repo, mirror, rekor, extra=_rebuilder_args(honest, slow, liar, "0.5"))
    r = sb.run("-Sy", "hello")
    _assert_refused(sb, r, "only 1 of 3 rebuilders confirmed hello 1.0-1 (need 2)")


def test_pkginfo_that_lies_about_its_name_is_refused(tmp_path, signed_repo, mirror, rekor) -> None:
    """A correctly signed file whose .PKGINFO names another package."""
    from tests.pkgbuild import build_package
    from tests.repo import sha256_file

    name = "liar-1.0-1-x86_64.pkg.tar.zst"
    if "liar" not in signed_repo.packages:
        signed_repo.add("liar")
        p = build_package(tmp_path / "b", "other", "1.0-1", filename=name)
        (signed_repo.repo_dir / name).write_bytes(p.read_bytes())
        signed_repo.key.sign_hex(sha256_file(p), name, signed_repo.sig_dir / (name + ".t"))
    sb = sandbox(tmp_path, signed_repo, mirror, rekor)
    r = sb.run("-Sy", "liar")
    _assert_refused(sb, r, "says it is other 1.0-1")


def test_forked_log_between_two_runs_is_caught(tmp_path, signed_repo, mirror) -> None:
    """The log shows this user another history on the second run: pacman gets nothing."""
    from tests.e2e.conftest import LogFixture
    from tests.servers.rekor import RekorServer

    with RekorServer() as server:
        key = tmp_path / "log.pem"
        key.write_bytes(server.public_key_pem)
        log = LogFixture(server.url, key)
        sb = sandbox(tmp_path, signed_repo, mirror, log)  # state in tmp_path/state, shared by both runs
        assert sb.run("-Sy", "hello").returncode == 0
        server.add_filler(3)
        server.lie.forked = True
        r = sb.run("-S", "legacy")
        _assert_refused(sb, r, "inconsistent history", "legacy")
        assert "report" in r.stderr or "inconsistent" in r.stderr


def test_sync_db_sha256_starts_the_log_check_before_the_download_ends(tmp_path, signed_repo, mirror, rekor) -> None:
    """--pacman-conf: the sandbox's own pacman.conf, whose sync db pacman has just fetched."""
    conf = tmp_path / "root" / "etc" / "pacman.conf"
    sb = sandbox(tmp_path, signed_repo, mirror, rekor, extra=["--pacman-conf", str(conf)])
    assert sb.conf == conf
    # a 1 KiB package on loopback can finish before the db lookup answers (then there is nothing to overlap):
    # the mirror trickles these two packages, as a Tor circuit would, so the lookup always wins the race
    b = mirror.behaviour
    saved = (dict(b.rules), b.trickle_bytes, b.trickle_interval)
    for name in ("hello", "flipped"):
        b.rules[signed_repo.packages[name].name] = "trickle"
    b.trickle_bytes, b.trickle_interval = 128, 0.1
    try:
        r = sb.run("-Sy", "hello")
        assert r.returncode == 0, r.stdout + r.stderr
        assert sb.installed("hello")
        assert "sync db test.db lists sha256" in r.stderr and "start from the sync db" in r.stderr, r.stderr
        assert sb.leftovers() == []
        # a mirror serving other bytes than the db lists: refused by the db's hash
        r = sb.run("-S", "flipped")
        _assert_refused(sb, r, "is not the sha256", "flipped")
        assert "the sync db test.db lists for" in r.stderr
    finally:
        b.rules.clear()
        b.rules.update(saved[0])
        b.trickle_bytes, b.trickle_interval = saved[1], saved[2]
