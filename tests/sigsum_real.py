"""pytest fixtures around Debian's real Sigsum tools (tests/servers/sigsum.py). Import them into a test module:

    from tests.sigsum_real import sigsum_log, sigsum_tools  # noqa: F401  (fixtures)

Without the tools (scripts/sigsum-tools install) the tests skip, and under CI (TORFETCH_NO_SKIP=1) a skip fails.
"""

from __future__ import annotations

from typing import Iterator

import pytest

from tests.servers.sigsum import SigsumLog, SigsumTools


@pytest.fixture(scope="session")
def sigsum_tools() -> SigsumTools:
    tools = SigsumTools.find()
    if tools is None:
        pytest.skip("needs Debian's sigsum-go and sigsum-log-go: run scripts/sigsum-tools install (as root)")
    return tools


@pytest.fixture(scope="module")
def sigsum_log(sigsum_tools: SigsumTools, tmp_path_factory: pytest.TempPathFactory) -> Iterator[SigsumLog]:
    """One real log with one real witness per test module, already cosigning (policy: that witness)."""
    with SigsumLog(sigsum_tools, tmp_path_factory.mktemp("sigsum-log"), witnesses=1) as log:
        yield log
