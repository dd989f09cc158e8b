"""Suite-wide: in CI (TORFETCH_NO_SKIP=1) a skipped test fails, since CI installs everything tests need."""

from __future__ import annotations

import os

import pytest

# tests/test_conftest.py runs pytest inside pytest to prove the hook below works.
pytest_plugins = ["pytester"]


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_makereport(item: pytest.Item, call: pytest.CallInfo) -> object:
    # Every phase: a skipif mark or a pytest.skip() in a fixture skips in "setup", a pytest.skip() in the body in "call".
    outcome = yield
    report = outcome.get_result()
    if os.environ.get("TORFETCH_NO_SKIP") == "1" and report.skipped and not hasattr(report, "wasxfail"):
        report.outcome = "failed"
        report.longrepr = f"skipped, but CI must run every test: {report.longrepr}"
