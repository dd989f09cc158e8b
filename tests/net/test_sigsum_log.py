"""net/sigsum_log.py: the real log's answers parse, and a misbehaving server gets typed, bounded errors."""

from __future__ import annotations

import hashlib
import threading
from pathlib import Path
from typing import Iterator

import pytest
import trio
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey
from cryptography.hazmat.primitives import serialization

from tests.servers.base import Handler, Serving, make_httpd
from tests.servers.sigsum import SigsumLog, SigsumTools
from tests.sigsum_real import sigsum_log, sigsum_tools  # noqa: F401  (fixtures)
from torfetch.config import Timeouts
from torfetch.errors import ConfigError, DownloadTooLarge, FetchTimeout, HTTPStatusError, SigsumMalformedError
from torfetch.net.http import Network
from torfetch.net.sigsum_log import SigsumLogClient, parse_token
from torfetch.verify import merkle
from torfetch.verify.sigsum import leaf_signed_data, sigsum_leaf_hash, verify_tree_head
from torfetch.verify.sigsum_policy import parse_policy
from torfetch.verify.sigsum_proof import SigsumLeaf

TOKEN = "example.test " + "ab" * 64


class Stub(Serving):
    """Answers every request with (status, body); remembers the requests' headers."""

    def __init__(self, status: int = 200, body: bytes = b"", delay: float = 0.0) -> None:
        self.status, self.body, self.delay = status, body, delay
        self.seen: list[tuple[str, str, dict[str, str], bytes]] = []
        self._stop = threading.Event()
        self._httpd = make_httpd("127.0.0.1", 0, self._handle)

    def _handle(self, h: Handler, method: str) -> None:
        n = int(h.headers.get("Content-Length") or 0)
        self.seen.append((method, h.path, {k.lower(): v for k, v in h.headers.items()}, h.rfile.read(n)))
        if self.delay:
            self._stop.wait(self.delay)
        h.send_response(self.status)
        h.send_header("Content-Length", str(len(self.body)))
        h.end_headers()
        h.wfile.write(self.body)

    def stop(self) -> None:
        self._stop.set()
        super().stop()


@pytest.fixture
def stub() -> Iterator[Stub]:
    s = Stub()
    with s:
        yield s


def call(url: str, fn, *, timeout: float = 10, token: str | None = None):
    async def go():
        async with Network(proxy=None, timeouts=Timeouts()) as net:
            return await fn(SigsumLogClient.create(net, url, timeout, token))
    return trio.run(go)


def submit_leaf(key: Ed25519PrivateKey, message: bytes) -> tuple[bytes, bytes, bytes, bytes]:
    pub = key.public_key().public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)
    checksum = hashlib.sha256(message).digest()
    sig = key.sign(leaf_signed_data(checksum))
    return pub, sig, checksum, sigsum_leaf_hash(SigsumLeaf(checksum, sig, hashlib.sha256(pub).digest()))


def test_against_the_real_log_every_endpoint_answers_what_the_checks_need(sigsum_log: SigsumLog) -> None:  # noqa: F811
    policy = parse_policy(sigsum_log.policy_path.read_bytes())
    key = Ed25519PrivateKey.generate()
    leaves = []
    for i in range(3):
        msg = hashlib.sha256(f"net client {i}".encode()).digest()
        pub, sig, checksum, lh = submit_leaf(key, msg)
        leaves.append(lh)

        async def add(c: SigsumLogClient, msg=msg, sig=sig, pub=pub) -> bool:
            for _ in range(100):
                if await c.add_leaf(msg, sig, pub):
                    return True
                await trio.sleep(0.2)
            return False
        assert call(sigsum_log.url, add)
    th = sigsum_log.wait_cosigned(3)
    size = int(th["size"][0])

    async def everything(c: SigsumLogClient):
        cth = await c.tree_head()
        head = verify_tree_head(policy, sigsum_log.keyhash, cth)
        got = await c.leaves(0, head.size)
        incl = await c.inclusion_proof(head.size, leaves[1])
        cons = await c.consistency_proof(1, head.size) if head.size > 1 else []
        absent = await c.inclusion_proof(head.size, b"\x00" * 32)
        return head, got, incl, cons, absent

    head, got, incl, cons, absent = call(sigsum_log.url, everything)
    assert head.size >= size
    hashes = [sigsum_leaf_hash(lf) for lf in got]
    assert merkle.root_of(hashes) == head.root_hash and set(leaves) <= set(hashes)
    assert incl is not None
    merkle.verify_inclusion(incl[0], head.size, leaves[1], list(incl[1]), head.root_hash)
    merkle.verify_consistency(1, head.size, hashes[0], head.root_hash, cons)
    assert absent is None


def test_a_refusal_names_the_endpoint_and_the_status(stub: Stub) -> None:
    stub.status, stub.body = 400, b"(400) end_index(5) outside of current tree\n"
    with pytest.raises(HTTPStatusError, match=r"get-leaves answered HTTP 400 \(\(400\) end_index"):
        call(stub.base_url, lambda c: c.leaves(0, 5))


def test_an_answer_over_the_cap_is_refused_before_parsing(stub: Stub) -> None:
    stub.body = b"size=1\n" + b"x" * (1 << 17)
    with pytest.raises(DownloadTooLarge):
        call(stub.base_url, lambda c: c.tree_head())


def test_garbage_is_a_typed_parse_error(stub: Stub) -> None:
    stub.body = b"<html>not a tree head</html>\n"
    with pytest.raises(SigsumMalformedError):
        call(stub.base_url, lambda c: c.tree_head())


def test_more_leaves_than_asked_for_is_refused(stub: Stub) -> None:
    leaf = f"leaf={'11' * 32} {'22' * 64} {'33' * 32}\n".encode()
    stub.body = leaf * 3
    with pytest.raises(SigsumMalformedError, match="returned 3 leaves"):
        call(stub.base_url, lambda c: c.leaves(0, 2))


def test_a_stalled_log_times_out(stub: Stub) -> None:
    stub.delay = 5
    with pytest.raises(FetchTimeout):
        call(stub.base_url, lambda c: c.tree_head(), timeout=0.5)


def test_add_leaf_sends_the_token_header_and_the_ascii_body(stub: Stub) -> None:
    stub.status = 202
    assert call(stub.base_url, lambda c: c.add_leaf(b"\x01" * 32, b"\x02" * 64, b"\x03" * 32),
                token=parse_token("sigsum-token: " + TOKEN)) is False
    method, path, headers, body = stub.seen[-1]
    assert (method, path) == ("POST", "/add-leaf")
    assert headers["sigsum-token"] == TOKEN
    assert body == f"message={'01' * 32}\nsignature={'02' * 64}\npublic_key={'03' * 32}\n".encode()


def test_without_a_token_no_header_is_sent(stub: Stub) -> None:
    assert call(stub.base_url, lambda c: c.add_leaf(b"\x01" * 32, b"\x02" * 64, b"\x03" * 32)) is True
    assert "sigsum-token" not in stub.seen[-1][2]


@pytest.mark.parametrize("bad", ["example.test", "example.test abc", "ex ample.test " + "ab" * 64,
                                 "exa\x00mple " + "ab" * 64, "example.test " + "zz" * 64])
def test_a_malformed_token_is_a_usage_error(bad: str) -> None:
    with pytest.raises(ConfigError):
        parse_token(bad)


def test_the_real_sigsum_token_tool_output_parses(sigsum_tools: SigsumTools, tmp_path: Path) -> None:  # noqa: F811
    tk = sigsum_tools.generate_key(tmp_path / "token.key")
    logk = sigsum_tools.generate_key(tmp_path / "log.key")
    out = sigsum_tools.run("sigsum-token", "create", "-k", str(tk.private), "--log-key", str(logk.public),
                           "-d", "example.test").stdout.decode()
    domain, sig = parse_token(out).split()
    assert domain == "example.test" and len(bytes.fromhex(sig)) == 64
