"""The monitor's pure decisions: streamed UUID lists, entry bodies, classification, inclusion with a checkpoint cache."""

from __future__ import annotations

import base64
import hashlib
import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tests.servers.rekor import RekorServer
from torfetch.errors import InclusionProofError, MalformedInputError, TorfetchError, TransparencyLogError
from torfetch.verify.checkpoint import LogKey
from torfetch.verify.minisign import PublicKey
from torfetch.verify.monitor import (ALERT, FOREIGN, OK, CheckpointCache, UuidListParser, artifact_hash, classify,
                                     split_retrieve_response, summarise_body, verify_inclusion)
from torfetch.verify.rekor import rekord_body, verify_log_entry

KEY = PublicKey(key_id=b"\x01" * 8, raw=b"\x02" * 32)
SIG = base64.b64encode(b"ED" + b"\x01" * 8 + b"\x03" * 64)


def uuids(n: int) -> list[str]:
    return [("%016x" % i if i % 2 else "") + hashlib.sha256(b"%d" % i).hexdigest() for i in range(n)]


@settings(max_examples=300, deadline=None)
@given(st.integers(0, 30), st.integers(1, 200), st.sampled_from(["", " ", "\n  "]))
def test_uuid_list_in_any_chunking(n, step, ws) -> None:
    want = uuids(n)
    data = ("[" + ws + ("," + ws).join(f'"{u}"' for u in want) + ws + "]\n").encode()
    p = UuidListParser()
    got: list[str] = []
    for i in range(0, len(data), step):
        got += p.feed(data[i:i + step])
    p.finish()
    assert got == want and p.count == n


@pytest.mark.parametrize("data", [b'["zz"]', b'["' + b"a" * 63 + b'"]', b'{"a":1}', b'["' + b"a" * 64 + b'",]',
                                  b'["' + b"a" * 64 + b'" "' + b"b" * 64 + b'"]', b"[1]", b"[", b""])
def test_uuid_list_garbage_is_typed(data) -> None:
    p = UuidListParser()
    with pytest.raises(MalformedInputError):
        p.feed(data)
        p.finish()


def test_uuid_list_is_capped() -> None:
    p = UuidListParser(max_items=2)
    with pytest.raises(MalformedInputError, match="more than 2"):
        p.feed(("[" + ",".join(f'"{u}"' for u in uuids(3)) + "]").encode())


@settings(max_examples=1000, deadline=None)
@given(st.binary(max_size=300))
def test_uuid_parser_raises_only_typed_errors(data) -> None:
    p = UuidListParser()
    try:
        p.feed(data)
        p.finish()
    except MalformedInputError:
        pass


def test_artifact_hash_is_sha256_of_the_hex() -> None:
    sha = hashlib.sha256(b"pkg").hexdigest()
    assert artifact_hash(sha.upper()) == hashlib.sha256(sha.encode()).hexdigest()


def test_summarise_and_classify() -> None:
    sha = hashlib.sha256(b"pkg").hexdigest()
    body = rekord_body(SIG, KEY.key_line(), sha.encode())
    s = summarise_body(body)
    assert s.kind == "rekord" and s.made_with(KEY.key_line()) and s.artifact_hash == artifact_hash(sha)
    assert classify(s, KEY.key_line(), {artifact_hash(sha): "f"}) == OK
    assert classify(s, KEY.key_line(), {}) == ALERT
    other = PublicKey(key_id=b"\x09" * 8, raw=b"\x08" * 32)
    assert classify(s, other.key_line(), {}) == FOREIGN
    assert classify(summarise_body(b'{"kind":"hashedrekord","spec":{}}'), KEY.key_line(), {}) == FOREIGN
    with pytest.raises(MalformedInputError):
        summarise_body(b"[not json")


@pytest.fixture(scope="module")
def log():
    srv = RekorServer()
    sha = hashlib.sha256(b"pkg").hexdigest()
    srv._append(srv.active, rekord_body(SIG, KEY.key_line(), sha.encode()))
    srv.add_filler(40)
    return srv, LogKey.from_pem(srv.public_key_pem)


def test_inclusion_agrees_with_the_fetch_path_and_caches_checkpoints(log) -> None:
    srv, key = log
    cache = CheckpointCache(key)
    for i in (0, 5, 20, 45):
        (uuid, entry), = srv._entry(i).items()
        inc = verify_inclusion(uuid, entry, cache)
        full = verify_log_entry(json.dumps({uuid: entry}).encode(), log_key=key)
        assert (inc.log_index, inc.shard_index, inc.integrated_time) == (full.log_index, full.shard_index,
                                                                        full.integrated_time)
        assert inc.checkpoint == full.checkpoint
    assert cache.verifications == 1  # four entries, one tree head: one ECDSA check (notes re-signed each time)


@pytest.mark.parametrize("lie,error", [("proof_for_other_entry", InclusionProofError), ("wrong_log_id", TransparencyLogError),
                                       ("wrong_body", TransparencyLogError)])
def test_inclusion_refuses_lies(log, lie, error) -> None:
    srv, key = log
    setattr(srv.lie, lie, True)
    try:
        (uuid, entry), = srv._entry(3).items()
    finally:
        setattr(srv.lie, lie, False)
    with pytest.raises(error):
        verify_inclusion(uuid, entry, CheckpointCache(key))


def test_checkpoint_by_another_key_is_refused_even_after_caching(log) -> None:
    from cryptography.hazmat.primitives.asymmetric import ec

    srv, key = log
    cache = CheckpointCache(key)
    srv.lie.checkpoint_key = ec.generate_private_key(ec.SECP256R1())
    srv.add_filler(1)  # a new tree head, never verified before
    try:
        (uuid, entry), = srv._entry(2).items()
    finally:
        srv.lie.checkpoint_key = None
    with pytest.raises(TorfetchError):
        verify_inclusion(uuid, entry, cache)


def test_split_retrieve_response_is_typed() -> None:
    assert split_retrieve_response(b'[{"AB": {"x": 1}}]') == [("ab", {"x": 1})]
    for bad in (b"{}", b"[1]", b'[{"a": 1}]', b"nope"):
        with pytest.raises(MalformedInputError):
            split_retrieve_response(bad)
