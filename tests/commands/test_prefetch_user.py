"""The DownloadUser half of a root prefetch (commands/prefetch_user.py), run for real: fork, drop to nobody.

Root only (setuid), as the chroot tests are; the network is never reached in these cases.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from torfetch.commands import prefetch, prefetch_user
from torfetch.errors import TorfetchError
from torfetch.store.syncdb import SyncDbAnswer

NOBODY = prefetch_user.DownloadUser("nobody", 65534, 65534)


def _plan(cachedir: Path, n: int) -> prefetch.Plan:
    result = prefetch.PrefetchResult(cachedir=str(cachedir))
    jobs = []
    for i in range(n):
        out = prefetch.Outcome(f"p{i}-1.0-1-x86_64.pkg.tar.zst")
        result.outcomes.append(out)
        # a mirror that does not exist: the run must stop before any package is fetched
        jobs.append(prefetch.Job(out, f"http://mirror.invalid/{out.filename}", SyncDbAnswer("0" * 64, "test.db", "")))
    return prefetch.Plan(result, jobs, Path(os.devnull))


def test_a_config_file_the_download_user_cannot_read_is_one_line_for_the_run(tmp_path: Path, capsys) -> None:
    # root reads the config file (parse() checked it); alpm, which fetches, cannot: that is one error for the run,
    # not one per package
    conf = tmp_path / "torfetch.toml"
    conf.write_text('isolate = "package"\n')
    conf.chmod(0o600)  # root's only
    cachedir = tmp_path / "cache"
    cachedir.mkdir()
    ns, _ = prefetch.parse(prefetch.build_parser(), ["--config", str(conf), "--direct", "-q"])
    plan = _plan(cachedir, 3)
    line = prefetch.Lines(ns)
    with pytest.raises(TorfetchError) as info:
        prefetch_user.fetch_as(NOBODY, ns, plan, line)
    assert str(conf) in info.value.one_line() and "permission denied" in info.value.one_line().lower()
    assert "not placed" not in capsys.readouterr().err  # no line per package
    assert sorted(p.name for p in cachedir.iterdir()) == []  # the staging directory is gone, nothing placed
