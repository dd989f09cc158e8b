"""The CI rule "a skipped test is a failure" holds for every way a test can skip (pytest inside pytest)."""

from __future__ import annotations

from pathlib import Path

import pytest

HOOK = (Path(__file__).parent / "conftest.py").read_text()

SKIPPING = '''
import pytest

@pytest.fixture
def needs_binary():
    pytest.skip("minisign not installed")

def test_skip_in_fixture(needs_binary):
    pass

@pytest.mark.skipif(True, reason="no tor")
def test_skipif_mark():
    pass

@pytest.mark.skip(reason="later")
def test_skip_mark():
    pass

def test_skip_in_body():
    pytest.skip("no pacman")

def test_importorskip():
    pytest.importorskip("no_such_module_for_torfetch")

@pytest.mark.xfail(reason="known", strict=True)
def test_expected_failure():
    assert False

def test_passes():
    pass
'''

N_SKIPPING = 5


def _run(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch, no_skip: str | None) -> pytest.RunResult:
    if no_skip is None:
        monkeypatch.delenv("TORFETCH_NO_SKIP", raising=False)
    else:
        monkeypatch.setenv("TORFETCH_NO_SKIP", no_skip)
    pytester.makeconftest(HOOK.replace('pytest_plugins = ["pytester"]', ""))
    pytester.makepyfile(test_skipping=SKIPPING)
    return pytester.runpytest("-p", "no:cacheprovider", "-rs")


def test_every_kind_of_skip_fails_under_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    r = _run(pytester, monkeypatch, "1")
    outcomes = r.parseoutcomes()
    assert outcomes.get("skipped", 0) == 0
    # a skip in setup (fixture, marks) is reported as an error, one in the body as a failure: both fail the run
    assert outcomes.get("failed", 0) + outcomes.get("errors", 0) == N_SKIPPING, outcomes
    assert outcomes.get("passed") == 1 and outcomes.get("xfailed") == 1, outcomes
    assert r.ret != 0
    assert r.stdout.str().count("skipped, but CI must run every test") >= N_SKIPPING


def test_skips_stay_skips_outside_ci(pytester: pytest.Pytester, monkeypatch: pytest.MonkeyPatch) -> None:
    for value in (None, "0"):
        r = _run(pytester, monkeypatch, value)
        outcomes = r.parseoutcomes()
        assert outcomes.get("skipped") == N_SKIPPING and outcomes.get("passed") == 1, (value, outcomes)
        assert r.ret == 0
        assert "minisign not installed" in r.stdout.str()  # -rs names each skip's reason
