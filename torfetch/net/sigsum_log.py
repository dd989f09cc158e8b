"""A Sigsum log's API (sigsum.org log.md v1), the thin trio layer for the operator tools (sign, monitor).

Every answer is parsed by ``verify.sigsum_proof`` (pure, size-capped) and trusted for nothing until
``verify.sigsum`` checked it: a tree head against the policy, a path against a verified root. Requests go
through ``net.http.Network`` like the Rekor client's (the ``log`` purpose, its own circuit per log behind a
proxy; never a direct fallback). The fetch path never uses this module: a proof is checked offline.

    get-tree-head                      → CosignedTreeHead
    get-inclusion-proof/<size>/<hash>  → (leaf index, path), or None while the leaf is not in that tree
    get-consistency-proof/<old>/<new>  → path
    get-leaves/<start>/<end>           → leaves [start, end) (the log may return fewer: at most its max range)
    add-leaf                           → True once the leaf is sequenced (200), False while accepted (202)
"""

from __future__ import annotations

import string
from dataclasses import dataclass

import trio

from ..errors import ConfigError, FetchTimeout, HTTPStatusError, SigsumMalformedError, TransparencyLogError
from ..verify.sigsum_proof import (MAX_BODY_BYTES, MAX_PROOF_BYTES, CosignedTreeHead, SigsumLeaf, parse_consistency_body,
                                   parse_inclusion_body, parse_leaves_body, parse_tree_head_body)
from .http import Network, Response

PURPOSE = "log"
MAX_ERROR_TEXT = 160  # characters of a refusal's body shown in a message
MAX_TOKEN_TEXT = 1024
TOKEN_HEADER = "sigsum-token"


def parse_token(text: str) -> str:
    """A submit token as ``sigsum-token create`` writes it ("sigsum-token: <domain> <hex signature>", the
    prefix optional) → the header value "<domain> <hex signature>"."""
    line = text.strip()
    if len(line) > MAX_TOKEN_TEXT or "\n" in line:
        raise ConfigError("--sigsum-token: one line, \"[sigsum-token:] <domain> <hex signature>\"")
    if line.lower().startswith(TOKEN_HEADER + ":"):
        line = line[len(TOKEN_HEADER) + 1:].strip()
    parts = line.split()
    if (len(parts) != 2 or len(parts[1]) != 128 or any(c not in string.hexdigits for c in parts[1])
            or not parts[0].isascii() or not all(c.isalnum() or c in ".-_" for c in parts[0])):
        raise ConfigError("--sigsum-token: expected \"[sigsum-token:] <domain> <128 hex digits>\" "
                          "(the output of sigsum-token create)")
    return f"{parts[0].lower()} {parts[1].lower()}"


def _show(body: bytes) -> str:
    text = body[:MAX_ERROR_TEXT].decode("utf-8", "replace")
    return "".join(c if c.isprintable() else " " for c in text).strip()


@dataclass(frozen=True)
class SigsumLogClient:
    net: Network
    url: str  # the log's base URL (the policy's `log` line), without a trailing slash
    timeout: float  # per request, in seconds
    token: str | None = None  # the sigsum-token header value for add-leaf, where the log asks for one

    @classmethod
    def create(cls, net: Network, url: str, timeout: float, token: str | None = None) -> "SigsumLogClient":
        return cls(net, url.rstrip("/"), timeout, token)

    async def _request(self, method: str, path: str, *, max_bytes: int, content: bytes | None = None,
                       headers: dict[str, str] | None = None) -> Response:
        try:
            with trio.fail_after(self.timeout * 2):  # Network bounds each hop; this bounds the whole call
                return await self.net.request(PURPOSE, method, f"{self.url}/{path}", max_bytes=max_bytes,
                                              timeout=self.timeout, content=content, headers=headers)
        except trio.TooSlowError as exc:
            raise FetchTimeout(f"Sigsum log {self.url}: {path.split('/')[0]} took longer than "
                               f"{self.timeout * 2:g} s") from exc

    def _refused(self, path: str, r: Response) -> HTTPStatusError:
        return HTTPStatusError(f"Sigsum log {self.url}: {path.split('/')[0]} answered HTTP {r.status}"
                               + (f" ({_show(r.body)})" if r.body else ""), status=r.status)

    async def tree_head(self) -> CosignedTreeHead:
        r = await self._request("GET", "get-tree-head", max_bytes=MAX_PROOF_BYTES)
        if r.status != 200:
            raise self._refused("get-tree-head", r)
        return parse_tree_head_body(r.body)

    async def inclusion_proof(self, size: int, leaf_hash: bytes) -> tuple[int, tuple[bytes, ...]] | None:
        """The leaf's index and path in the tree of ``size`` (>= 2), or None when the log says it is not there."""
        path = f"get-inclusion-proof/{size}/{leaf_hash.hex()}"
        r = await self._request("GET", path, max_bytes=MAX_PROOF_BYTES)
        if r.status == 404:
            return None
        if r.status != 200:
            raise self._refused(path, r)
        return parse_inclusion_body(r.body)

    async def consistency_proof(self, old_size: int, new_size: int) -> list[bytes]:
        path = f"get-consistency-proof/{old_size}/{new_size}"
        r = await self._request("GET", path, max_bytes=MAX_PROOF_BYTES)
        if r.status != 200:
            raise TransparencyLogError(
                f"Sigsum log {self.url} gave no consistency proof from size {old_size} to {new_size} "
                f"(HTTP {r.status})", hint="a log that cannot prove its history consistent may be presenting a split view")
        return parse_consistency_body(r.body)

    async def leaves(self, start: int, end: int) -> list[SigsumLeaf]:
        """Leaves [start, end): the log may return fewer (its max range), never none and never more."""
        if not 0 <= start < end:
            raise ValueError("an empty or negative leaf range")
        path = f"get-leaves/{start}/{end}"
        r = await self._request("GET", path, max_bytes=MAX_BODY_BYTES)
        if r.status != 200:
            raise self._refused(path, r)
        got = parse_leaves_body(r.body)
        if len(got) > end - start:
            raise SigsumMalformedError(f"Sigsum log {self.url}: get-leaves/{start}/{end} returned {len(got)} leaves")
        return got

    async def add_leaf(self, message: bytes, signature: bytes, public_key: bytes) -> bool:
        """Submit (or ask again about) a leaf: True once sequenced (200), False while only accepted (202)."""
        body = f"message={message.hex()}\nsignature={signature.hex()}\npublic_key={public_key.hex()}\n".encode()
        headers = {"Content-Type": "text/plain"}
        if self.token:
            headers[TOKEN_HEADER] = self.token
        r = await self._request("POST", "add-leaf", max_bytes=MAX_PROOF_BYTES, content=body, headers=headers)
        if r.status == 200:
            return True
        if r.status == 202:
            return False
        raise self._refused("add-leaf", r)
