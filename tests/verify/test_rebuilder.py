"""Rebuilder answers, matching and the N-of-M tally, pure."""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from torfetch.errors import MalformedInputError, TorfetchError
from torfetch.verify.rebuilder import Answer, RebuildTally, Record, Verdict, match, parse_records, parse_v0, parse_v1


def test_match_exact_name_and_version_once() -> None:
    recs = [Record("foo", "1:2.0-3", "GOOD"), Record("foo", "1:2.0-3", "GOOD"), Record("foo", "1:2.0-2", "GOOD")]
    assert match(recs, "foo", "1:2.0-3")[0] is Verdict.CONFIRMED
    assert match(recs, "foo", "2.0-3")[0] is Verdict.UNKNOWN  # epoch matters
    assert match(recs, "foo-bar", "1:2.0-3")[0] is Verdict.UNKNOWN
    assert match([Record("foo", "1", "BAD")], "foo", "1")[0] is Verdict.BAD
    assert match([Record("foo", "1", "UNKWN")], "foo", "1")[0] is Verdict.UNKNOWN


def test_parsers_skip_junk_rows_and_cap() -> None:
    v1 = json.dumps({"total": 3, "records": [{"name": "a", "version": "1", "status": "GOOD", "build_id": 2},
                                             {"name": 5}, "x"]}).encode()
    assert parse_v1(v1, 10_000) == [Record("a", "1", "GOOD", 2, None, None)]
    assert parse_v0(b'[{"name":"a","version":"1","status":"BAD","has_attestation":true}]', 1000)[0].status == "BAD"
    with pytest.raises(TorfetchError):
        parse_v1(v1, 10)
    with pytest.raises(TorfetchError):
        parse_v0(b'{"records": []}', 1000)


def test_tally_knows_when_done_and_when_hopeless() -> None:
    t = RebuildTally(required=2, n_rebuilders=3)
    t.add(Answer("a", Verdict.CONFIRMED, ""))
    assert not t.reached() and not t.hopeless()
    t.add(Answer("b", Verdict.FAILED, "timeout"))
    assert not t.hopeless()
    t.add(Answer("c", Verdict.BAD, ""))
    assert t.hopeless() and "only 1 of 3" in t.summary("foo 1")


def test_match_edge_cases() -> None:
    assert match([Record("foo", "1-1", "FAIL")], "foo", "1-1")[0] is Verdict.UNKNOWN
    v, rec, _ = match([Record("foo", "1-1", "GOOD"), Record("foo", "1-1", "GOOD", 4, 5)], "foo", "1-1")
    assert v is Verdict.CONFIRMED and rec is not None and rec.build_id == 4  # the row that can be attested
    v, _, detail = match([Record("foo", "1-1", "BAD"), Record("foo", "1-1", "GOOD")], "foo", "1-1")
    assert v is Verdict.CONFIRMED and "BAD" in detail
    assert match([Record("Foo", "1-1", "GOOD"), Record("foo", "1-1 ", "GOOD"), Record("foo", "1-1", "good")],
                 "foo", "1-1")[0] is Verdict.UNKNOWN  # exact strings only


def test_records_real_shapes() -> None:
    v1 = {"total": 2, "records": [
        {"id": 1, "name": "foo", "version": "1-1", "distribution": "archlinux", "release": None, "component": "core",
         "architecture": "x86_64", "url": "https://x/foo", "status": None, "build_id": None, "artifact_id": None,
         "diffoscope_log_id": None, "attestation_log_id": None, "last_seen": "2025-01-01T00:00:00",
         "seen_in_last_sync": True},
        {"id": 2, "name": "foo", "version": "1-2", "status": "GOOD", "build_id": 9, "artifact_id": True}]}
    recs = parse_records(json.dumps(v1).encode(), 100_000)
    assert recs[0].status == "UNKWN" and recs[1].artifact_id is None  # null status; bool is no id
    v0 = [{"name": "foo", "version": "1-1", "status": "UNKWN", "distro": "archlinux", "suite": "core",
           "architecture": "x86_64", "artifact_url": "u", "build_id": None, "built_at": None,
           "has_diffoscope": False, "has_attestation": False}]
    assert parse_records(json.dumps(v0).encode(), 100_000) == [Record("foo", "1-1", "UNKWN", None, None, False)]
    for bad in (b"{}", b'{"records": {}}', b"3", b"<html>"):
        with pytest.raises(MalformedInputError):
            parse_records(bad, 1000)


def test_tally_counts_each_rebuilder_once() -> None:
    t = RebuildTally(2, 2)
    t.add(Answer("a", Verdict.CONFIRMED, ""))
    t.add(Answer("a", Verdict.CONFIRMED, ""))
    assert t.confirmed == 1 and not t.reached() and t.pending == 1 and t.total == 2


@settings(max_examples=200, deadline=None)
@given(st.lists(st.tuples(st.sampled_from(["foo", "fo", "foo-git"]), st.sampled_from(["1-1", "1:1-1", "1-2"]),
                          st.sampled_from(["GOOD", "BAD", "UNKWN", "FAIL", "good"])), max_size=8))
def test_fuzz_match_confirms_only_exact_good(rows) -> None:
    recs = [Record(*r) for r in rows]
    verdict = match(recs, "foo", "1-1")[0]
    assert (verdict is Verdict.CONFIRMED) == (("foo", "1-1", "GOOD") in rows)
    if verdict is Verdict.BAD:
        assert ("foo", "1-1", "BAD") in rows
