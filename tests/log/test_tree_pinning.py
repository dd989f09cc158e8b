"""Log trees are pinned: a fork under a new tree id or origin is refused, a real shard rotation is followed."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.log.test_prove_in_log import Signed, make_signed
from tests.servers.rekor import RekorServer
from torfetch.config import Limits, Timeouts
from torfetch.errors import CheckpointError, SplitViewError, TransparencyLogError
from torfetch.net.http import Network
from torfetch.net.rekor import LogConfig, prove_in_log
from torfetch.store.logstate import LogStateStore
from torfetch.verify import merkle
from torfetch.verify.checkpoint import LogKey
from torfetch.verify.logstate import TreeRecord

NEW_TREE = 1193050959916656506


@pytest.fixture
def log():
    with RekorServer(inactive_shard_size=20) as s:
        yield s


async def prove(server: RekorServer, state: Path, signed: Signed, *, upload: bool = False, origin: str | None = None):
    lines: list[str] = []
    cfg = LogConfig(server.url, LogKey.from_pem(server.public_key_pem), LogStateStore(state), upload, origin)
    async with Network(proxy=None, timeouts=Timeouts()) as net:
        entry = await prove_in_log(net, cfg, **signed.kwargs(), limits=Limits(), timeouts=Timeouts(), package="",
                                   subject="foo", report=lines.append)
    return entry, lines


def trees(server: RekorServer, state: Path) -> dict[int, TreeRecord]:
    return LogStateStore(state).all_logs()[server.log_id].trees


def info_requests(server: RekorServer) -> int:
    return server.requests.count(("GET", "/api/v1/log"))


async def test_same_tree_needs_no_log_info(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    await prove(log, tmp_path, s, upload=True)
    log.add_filler(3)
    await prove(log, tmp_path, s)
    assert info_requests(log) == 0  # first use is trust on first use; a known tree is held to its head


async def test_fork_under_new_unannounced_tree_is_refused_with_both_heads(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    await prove(log, tmp_path, s, upload=True)
    before = LogStateStore(tmp_path).all_logs()
    (mine,) = before[log.log_id].trees.values()
    log.lie.present_tree_id = 42  # "rekor.test - 42": a forked history under a tree the log never announced
    log.lie.forked = True
    with pytest.raises(SplitViewError, match="does not announce") as ei:
        await prove(log, tmp_path, s)
    msg = ei.value.message
    forked_root = merkle.root_of(log._leaves()).hex()
    assert mine.head.root_hash.hex() in msg and f"tree {log.tree_id}" in msg  # what this machine saw...
    assert forked_root in msg and "tree 42" in msg  # ...and the forked tree's head: both printed
    assert info_requests(log) == 1
    assert LogStateStore(tmp_path).all_logs() == before


async def test_new_tree_announced_with_old_tree_frozen_inconsistently_is_refused(log: RekorServer, tmp_path: Path) -> None:
    await prove(log, tmp_path, make_signed(), upload=True)
    before = LogStateStore(tmp_path).all_logs()
    old = log.tree_id
    log.add_filler(4)
    log.rotate(NEW_TREE)
    log.lie.frozen_forked = True  # the old tree's final head rewrites what this machine saw
    with pytest.raises(SplitViewError, match=f"in tree {old}"):
        await prove(log, tmp_path, make_signed(), upload=True)
    assert LogStateStore(tmp_path).all_logs() == before  # nothing frozen, nothing new remembered


async def test_new_tree_announced_with_old_tree_frozen_at_same_size_other_root_is_refused(log: RekorServer,
                                                                                        tmp_path: Path) -> None:
    await prove(log, tmp_path, make_signed(), upload=True)
    log.rotate(NEW_TREE)
    log.lie.frozen_forked = True
    with pytest.raises(SplitViewError, match="same size had root"):
        await prove(log, tmp_path, make_signed(), upload=True)


async def test_new_tree_whose_log_info_hides_the_old_tree_is_refused(log: RekorServer, tmp_path: Path) -> None:
    await prove(log, tmp_path, make_signed(), upload=True)
    log.rotate(NEW_TREE)
    log.lie.hide_inactive = True
    with pytest.raises(SplitViewError, match="no longer lists"):
        await prove(log, tmp_path, make_signed(), upload=True)


async def test_real_rotation_after_growth_is_accepted_and_old_tree_frozen(log: RekorServer, tmp_path: Path) -> None:
    s1 = make_signed()
    await prove(log, tmp_path, s1, upload=True)
    old = log.tree_id
    seen_size = trees(log, tmp_path)[old].head.size
    log.add_filler(6)  # the old tree grew after this machine's last view...
    frozen = log.rotate(NEW_TREE)  # ...then froze
    entry, lines = await prove(log, tmp_path, make_signed(), upload=True)
    assert entry.tree == NEW_TREE
    got = trees(log, tmp_path)
    assert got[old].frozen and got[old].head.size == frozen.final_size == seen_size + 6
    assert not got[NEW_TREE].frozen and got[NEW_TREE].head.size == len(log.bodies)
    assert ("GET", "/api/v1/log/proof") in log.requests  # the growth of the old tree was proven
    assert any(f"new log tree {NEW_TREE}" in ln for ln in lines)
    # the old entry, in the frozen tree at its final size, still verifies
    again, _ = await prove(log, tmp_path, s1)
    assert again.tree == old


async def test_entry_in_frozen_tree_beyond_final_size_is_refused(log: RekorServer, tmp_path: Path) -> None:
    await prove(log, tmp_path, make_signed(), upload=True)
    old = log.tree_id
    log.rotate(NEW_TREE)
    await prove(log, tmp_path, make_signed(), upload=True)
    assert trees(log, tmp_path)[old].frozen
    before = LogStateStore(tmp_path).all_logs()
    log.lie.upload_into = old  # the log appends to a tree it said was frozen
    with pytest.raises(SplitViewError, match="beyond the final head"):
        await prove(log, tmp_path, make_signed(), upload=True)
    assert LogStateStore(tmp_path).all_logs() == before


async def test_never_seen_tree_that_is_not_active_is_refused(log: RekorServer, tmp_path: Path) -> None:
    """A tree this machine never saw is accepted only as the log's active tree (issue 13). An inactive one,
    even announced under inactiveShards, could be a fork shown to this user alone that no later view would
    contradict, so it is refused (the price: a package logged before a rotation, first fetched after it)."""
    s_old = make_signed()
    await prove(log, tmp_path / "elsewhere", s_old, upload=True)  # logged (by someone) before the rotation
    old = log.tree_id
    log.rotate(NEW_TREE)
    await prove(log, tmp_path, make_signed(), upload=True)  # this machine's first view: the new tree
    before = LogStateStore(tmp_path).all_logs()
    with pytest.raises(SplitViewError, match=f"tree {old}.*never saw and which is not the log's active tree"):
        await prove(log, tmp_path, s_old)
    assert LogStateStore(tmp_path).all_logs() == before
    assert old not in trees(log, tmp_path)


@pytest.mark.parametrize("origin", ["rekor.test", "anything at all", "rekor.test - ", "rekor.test - 0x2a",
                                    "rekor.test - \uff14\uff12", "rekor.test - \u0664\u0662", " - 42"])
async def test_free_form_origin_is_refused(log: RekorServer, tmp_path: Path, origin: str) -> None:
    log.lie.origin = origin
    with pytest.raises(CheckpointError, match="is not '<log name> - <decimal tree id>'"):
        await prove(log, tmp_path, make_signed(), upload=True)
    assert not (tmp_path / "log-heads.json").exists()  # not even a first view is remembered


async def test_origin_tree_id_must_be_the_uuid_prefix(log: RekorServer, tmp_path: Path) -> None:
    log.lie.origin = f"rekor.test - {log.tree_id + 1}"
    with pytest.raises(TransparencyLogError, match="UUID names tree"):
        await prove(log, tmp_path, make_signed(), upload=True)


async def test_origin_name_is_pinned_to_the_first_seen(log: RekorServer, tmp_path: Path) -> None:
    s = make_signed()
    await prove(log, tmp_path, s, upload=True)
    log.lie.origin = f"other.test - {log.tree_id}"
    with pytest.raises(CheckpointError, match="pinned to 'rekor.test'"):
        await prove(log, tmp_path, s)


async def test_log_origin_option_pins_the_name_on_first_use(log: RekorServer, tmp_path: Path) -> None:
    with pytest.raises(CheckpointError, match="pinned to 'rekor.example'"):
        await prove(log, tmp_path, make_signed(), upload=True, origin="rekor.example")
    assert not (tmp_path / "log-heads.json").exists()
    await prove(log, tmp_path, make_signed(), upload=True, origin="rekor.test")
    assert LogStateStore(tmp_path).all_logs()[log.log_id].origin_name == "rekor.test"


async def test_new_tree_under_another_name_is_refused(log: RekorServer, tmp_path: Path) -> None:
    await prove(log, tmp_path, make_signed(), upload=True)
    log.rotate(NEW_TREE)
    log.origin_host = "evil.test"  # the new tree (and the log info) speak under another name
    with pytest.raises(CheckpointError, match="pinned"):
        await prove(log, tmp_path, make_signed(), upload=True)


def test_origin_name_pinned_with_the_shipped_key_not_the_url(tmp_path: Path) -> None:
    from torfetch.config import Options

    default = LogConfig.from_options(Options(url="http://x.test/a", output=tmp_path / "o", state_dir=tmp_path))
    assert default.origin_name == "rekor.sigstore.dev"
    pem = (tmp_path / "k.pem")
    with RekorServer(inactive_shard_size=0) as srv:
        pem.write_bytes(srv.public_key_pem)
    onion = LogConfig.from_options(Options(url="http://x.test/a", output=tmp_path / "o", state_dir=tmp_path,
                                           log_url="http://rekorexample.onion", log_key=str(pem)))
    assert onion.origin_name is None  # unpinned: the first checkpoint seen names it, never the URL
    named = LogConfig.from_options(Options(url="http://x.test/a", output=tmp_path / "o", state_dir=tmp_path,
                                           log_url="http://rekorexample.onion", log_key=str(pem), log_origin="log.test"))
    assert named.origin_name == "log.test"


@pytest.mark.parametrize("bad", ["", "rekor.test - 1", "a\x1bb"])
def test_log_origin_must_be_a_name(tmp_path: Path, bad: str) -> None:
    from torfetch.config import Options
    from torfetch.errors import ConfigError

    with pytest.raises(ConfigError, match="--log-origin"):
        LogConfig.from_options(Options(url="http://x.test/a", output=tmp_path / "o", state_dir=tmp_path, log_origin=bad))
