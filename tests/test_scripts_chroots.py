"""scripts/chroots' safety rule: nothing is deleted through a mount (a chroot's bind-mounted /dev is the host's)."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from tests.chroot import chroots

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="bind mounts need root")


def test_safe_rmtree_unmounts_a_bind_mount_before_deleting(tmp_path: Path) -> None:
    precious = tmp_path / "host-dev"  # stands in for the host's /dev
    precious.mkdir()
    (precious / "null").write_text("a device node of the host")
    root = tmp_path / "chroot"
    (root / "dev").mkdir(parents=True)
    (root / "etc").mkdir()
    (root / "etc/passwd").write_text("x")
    subprocess.run(["mount", "--bind", str(precious), str(root / "dev")], check=True, timeout=30)
    try:
        assert chroots.is_mount(root / "dev")
        assert chroots.mounts_under(root) == [root / "dev"]
        chroots.safe_rmtree(root)
    finally:
        if chroots.is_mount(root / "dev"):
            subprocess.run(["umount", "-l", str(root / "dev")], check=False, timeout=30)
    assert not root.exists()
    assert (precious / "null").read_text() == "a device node of the host"


def test_mounted_leaves_nothing_mounted(tmp_path: Path) -> None:
    root = tmp_path / "chroot"
    root.mkdir()
    with chroots.mounted(root):
        assert chroots.is_mount(root / "proc") and chroots.is_mount(root / "dev")
        assert (root / "dev/null").exists()
    assert chroots.mounts_under(root) == []
    assert not (root / "dev/null").exists()
