"""Log trees through real pacman: a fork under a new tree id is refused, a genuine shard rotation is followed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.e2e.conftest import LogFixture, needs_pacman
from tests.e2e.test_pacman import _assert_refused, sandbox
from tests.servers.rekor import RekorServer
from torfetch.store.logstate import LogStateStore

pytestmark = [needs_pacman, pytest.mark.pacman]


def _log(tmp_path: Path, server: RekorServer) -> LogFixture:
    key = tmp_path / "log.pem"
    key.write_bytes(server.public_key_pem)
    return LogFixture(server.url, key)


def test_fork_under_new_tree_id_is_refused(tmp_path, signed_repo, mirror) -> None:
    with RekorServer(inactive_shard_size=10) as server:
        sb = sandbox(tmp_path, signed_repo, mirror, _log(tmp_path, server))
        assert sb.run("-Sy", "hello").returncode == 0
        server.lie.present_tree_id = 4242  # another history, under a tree the log never announced
        server.lie.forked = True
        r = sb.run("-S", "legacy")
        _assert_refused(sb, r, "does not announce", "legacy")
        assert "tree 4242" in r.stderr and f"tree {server.tree_id}" in r.stderr


def test_genuine_rotation_is_followed(tmp_path, signed_repo, mirror) -> None:
    with RekorServer(inactive_shard_size=10) as server:
        sb = sandbox(tmp_path, signed_repo, mirror, _log(tmp_path, server))
        assert sb.run("-Sy", "hello").returncode == 0
        old = server.tree_id
        server.add_filler(5)  # the old tree grew after this machine's last view, then froze
        server.rotate(1193050959916656506)
        r = sb.run("-S", "legacy")
        assert r.returncode == 0, r.stdout + r.stderr
        assert sb.installed("legacy")
        trees = LogStateStore(tmp_path / "state").all_logs()[server.log_id].trees
        assert trees[old].frozen and trees[old].head.size == server.shard(old).final_size
        assert not trees[1193050959916656506].frozen
