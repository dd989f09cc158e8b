"""The pure core stays pure: verify/ and pacman/ never import I/O libraries."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

import torfetch

PKG = Path(torfetch.__file__).parent
FORBIDDEN = {"trio", "httpx", "httpcore", "stem", "socket", "socksio", "subprocess", "asyncio"}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            mod = node.module or ""
            found.add(("." * node.level) + mod)
    return found


def test_pure_packages_import_no_io() -> None:
    pure = sorted((PKG / "verify").glob("*.py")) + sorted((PKG / "pacman").glob("*.py"))
    assert len(pure) >= 4
    for path in pure:
        for name in _imports(path):
            top = name.lstrip(".").split(".")[0]
            assert top not in FORBIDDEN, f"{path.name} imports {name}"
            assert not name.lstrip(".").startswith("net") and "..net" not in name, f"{path.name} imports {name}"
            assert not name.startswith("..store") and not name.startswith("..workflow"), f"{path.name} imports {name}"


def test_importing_pure_core_loads_no_io_library() -> None:
    mods = [f"torfetch.verify.{p.stem}" for p in (PKG / "verify").glob("*.py") if p.stem != "__init__"]
    mods += [f"torfetch.pacman.{p.stem}" for p in (PKG / "pacman").glob("*.py") if p.stem != "__init__"]
    code = "import sys\n" + "".join(f"import {m}\n" for m in mods) + (
        "bad = sorted(m for m in ('trio','httpx','stem','socksio') if m in sys.modules)\nprint(','.join(bad))\n")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True).stdout
    assert out.strip() == ""
