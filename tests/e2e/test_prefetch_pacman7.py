"""`torfetch prefetch` run as root for real pacman 7.1 (Debian sid chroot) with ``DownloadUser = alpm``.

The prefetch must fetch as alpm (so /var/lib/torfetch's state stays alpm's, as every later XferCommand run
needs it), place root-owned 0644 files in CacheDir, leave no staging directory, and pacman 7 must then
install from them without calling its XferCommand for any.
"""

from __future__ import annotations

import shutil
from typing import Iterator

import pytest

from tests.chroot import Chroot, can_run
from tests.e2e.conftest import LogFixture, needs_pacman
from tests.e2e.test_pacman7 import LOG_KEY, Names, Pacman7, torfetch_toml
from tests.e2e.test_prefetch import GOOD, OverlapMirror, upgrade_repo  # noqa: F401 - upgrade_repo is a fixture
from tests.servers.socks import SocksProxy

pytestmark = [needs_pacman, pytest.mark.pacman, pytest.mark.slow,
              pytest.mark.skipif(can_run() is not None, reason=str(can_run()))]


@pytest.fixture(scope="module")
def sid(rekor: LogFixture) -> Iterator[Chroot]:
    c = Chroot.open("sid")
    try:
        key = c.path(LOG_KEY)
        key.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy(rekor.key_pem_path, key)
        key.chmod(0o644)
        c.run(["torfetch", "setup"], check=True)
        yield c
    finally:
        c.close()


def test_root_prefetch_fetches_as_the_download_user_and_pacman7_uses_the_files(sid, upgrade_repo, rekor) -> None:
    repo, old = upgrade_repo
    with SocksProxy() as socks, OverlapMirror(repo.root) as mirror:
        n = Names.of(mirror, rekor)
        config = torfetch_toml(match=f"{n.mirror}/repo/", transparency_url=f"{n.sigs}/sigs",
                               pubkey=repo.key.pub_line, log_url=n.log, proxy=socks.url)
        pm = Pacman7(sid, "prefetch", f"{n.mirror}/repo", config, socks).write()
        olddir = sid.path(f"{pm.base}/old")
        olddir.mkdir(parents=True, exist_ok=True)
        for name in GOOD:
            shutil.copy(old[name], olddir / old[name].name)
        r = pm.run("-U", *(f"{pm.base}/old/{old[name].name}" for name in GOOD))
        assert r.returncode == 0, r.stdout + r.stderr
        assert pm.run("-Sy").returncode == 0
        state = sid.path("/var/lib/torfetch/log-heads.json")
        state.unlink(missing_ok=True)  # whatever earlier runs left: this run's prefetch writes it afresh

        r = sid.run(["torfetch", "prefetch", "--pacman-conf", f"{pm.base}/pacman.conf"], timeout=300)
        assert r.returncode == 0, r.stdout + r.stderr
        alpm = int(sid.run(["id", "-u", "alpm"], check=True).stdout)
        assert state.stat().st_uid == alpm  # the log state was written by alpm, not by root
        names = sorted(repo.packages[name].name for name in GOOD)
        # and no torfetch-prefetch-XXXXXX directory is left (an empty download-XXXXXX is pacman 7.1's own)
        assert [e for e in pm.cache_entries() if not e.startswith("download-")] == names, pm.cache_entries()
        assert pm.leftovers() == [], pm.leftovers()
        for name in GOOD:
            placed = pm.cachedir / repo.packages[name].name
            st = placed.stat()
            assert (st.st_uid, st.st_mode & 0o777) == (0, 0o644)
            assert placed.read_bytes() == repo.packages[name].read_bytes()
        assert {c.username for c in socks.connects} >= {"torfetch-package", "torfetch-signature", "torfetch-log"}

        with mirror._lock:
            mirror.requests.clear()
        r = pm.run("-Su")
        assert r.returncode == 0, r.stdout + r.stderr
        assert mirror.package_gets() == [], mirror.requests  # pacman 7 called XferCommand for none of them
        for name in GOOD:
            assert sid.path(f"{pm.base}/root/usr/share/{name}/v").read_text() == "2\n"
