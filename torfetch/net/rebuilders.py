"""Ask every rebuilder at once, each on its own circuit and timeout; stop at N confirms.

pacman-bintrans asks rebuilders one after another, 5 s each, so three slow
rebuilders cost 15 s and one hanging rebuilder delays every package. Here
all are asked at once in one nursery (each request goes through ``Network``
with purpose "rebuilder" and the rebuilder's base URL as its service, so
every rebuilder (origin and base path: two on one host are two) rides its
own circuit):
the lookup succeeds as soon as ``required`` rebuilders confirmed (the rest
are cancelled) and fails as soon as too few can still confirm.

Per rebuilder, in order:
  (1) ``GET <base>/api/v1/packages/binary?distribution=archlinux&name=&version=``;
      on 404 (rebuilderd < 0.26) or a body that is not a rebuilder answer,
      ``GET <base>/api/v0/pkgs/list?distro=archlinux&name=``;
  (2) match exact name + version + GOOD (``verify.rebuilder.match``);
  (3) pinned key only: ``GET <base>/api/v1/builds/{build_id}/artifacts/{artifact_id}/attestation``;
  (4) pinned key only: wait for the download's sha256 (``get_sha256``, not
      under the rebuilder timeout: a big package may take longer than the
      rebuilder), then ``verify.intoto.verify_attestation``.
(1)-(3) run under ``timeouts.rebuilder``; a rebuilder that errs or times
out just does not count. The pure decisions live in ``verify.rebuilder``.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..config import Limits, Timeouts
from ..errors import RebuilderError, TorfetchError, TorUnavailable
from ..verify.intoto import verify_attestation
from ..verify.pinned_key import parse_pinned_key
from ..verify.rebuilder import Answer, RebuilderSpec, RebuildTally, Record, Verdict, match, parse_records
from .content_encoding import decode_body
from .http import Network
from .rebuilder_url import endpoint, normalise_rebuilder_url

_FALLBACK_STATUSES = (404, 405, 410, 501)
_MAX_ATTESTATION_TRIES = 3


@dataclass(frozen=True)
class RebuildOutcome:
    confirmed: int
    required: int
    answers: tuple[Answer, ...]

    @property
    def bad(self) -> tuple[Answer, ...]:
        return tuple(a for a in self.answers if a.verdict is Verdict.BAD)


@dataclass(frozen=True)
class _Pending:
    """A GOOD row from a pinned rebuilder whose attestation was fetched; sha256 still to come."""

    api: str
    attestation: bytes
    detail: str


def _header(headers: object, name: str) -> str | None:
    if not isinstance(headers, dict):
        return None
    for k, v in headers.items():
        if str(k).lower() == name:
            return str(v)
    return None


async def _get(net: Network, url: str, *, max_bytes: int, package: str, service: str) -> tuple[int, bytes]:
    # The per-rebuilder deadline is the caller's trio.move_on_after; this
    # timeout is only a backstop. ``service`` (the rebuilder's base URL) names the circuit.
    r = await net.request("rebuilder", "GET", url, max_bytes=max_bytes, timeout=24 * 3600.0, package=package,
                          service=service)
    if r.status != 200:
        return r.status, b""
    return 200, decode_body(r.body, _header(r.headers, "content-encoding"), max_bytes)


async def _lookup(net: Network, spec: RebuilderSpec, key: bytes | None, *, filename: str, pkgname: str,
                  version: str, limits: Limits, package: str) -> Answer | _Pending:
    name = spec.url
    cap = limits.rebuilder_max_bytes
    # (1) v1, then v0 on 404 or on something that is not a rebuilder answer (an HTML front page)
    status, body = await _get(net, endpoint(spec.url, "api/v1/packages/binary", {
        "distribution": "archlinux", "name": pkgname, "version": version}), max_bytes=cap, package=package,
        service=spec.url)
    records: list[Record] | None = None
    v1_note = f"v1 answered HTTP {status}"
    if status == 200:
        try:
            records = parse_records(body, cap)
            api = "v1"
        except TorfetchError as exc:
            v1_note = f"v1: {exc.message}"
    elif status not in _FALLBACK_STATUSES:
        return Answer(name, Verdict.FAILED, f"answered HTTP {status}")
    if records is None:
        status, body = await _get(net, endpoint(spec.url, "api/v0/pkgs/list", {
            "distro": "archlinux", "name": pkgname}), max_bytes=cap, package=package, service=spec.url)
        if status != 200:
            return Answer(name, Verdict.FAILED, f"{v1_note}, v0 answered HTTP {status}")
        try:
            records = parse_records(body, cap)
        except TorfetchError as exc:
            return Answer(name, Verdict.FAILED, f"{v1_note}; v0: {exc.message}")
        api = "v0"
    # (2) exact name + version + GOOD; one verdict per rebuilder
    verdict, record, detail = match(records, pkgname, version)
    if verdict is not Verdict.CONFIRMED or key is None:
        return Answer(name, verdict, f"{detail} [{api}]")
    # (3) pinned key: only a valid attestation for exactly our bytes will count
    candidates = [r for r in records if r.name == pkgname and r.version == version and r.status == "GOOD"
                  and r.build_id is not None and r.artifact_id is not None][:_MAX_ATTESTATION_TRIES]
    if api != "v1" or not candidates:
        return Answer(name, Verdict.FAILED, f"says GOOD [{api}] but offers no attestation (key pinned)")
    last = ""
    for rec in candidates:
        status, att = await _get(net, endpoint(
            spec.url, f"api/v1/builds/{rec.build_id}/artifacts/{rec.artifact_id}/attestation"),
            max_bytes=limits.attestation_max_bytes, package=package, service=spec.url)
        if status == 200:
            return _Pending(api, att, detail)
        last = f"HTTP {status}"
    return Answer(name, Verdict.FAILED, f"says GOOD [{api}] but its attestation is missing ({last})")


async def confirm_rebuilds(net: Network, rebuilders: Sequence[RebuilderSpec], *, filename: str, pkgname: str,
                           version: str, get_sha256: Callable[[], Awaitable[str]], required: int, fail_on_bad: bool,
                           limits: Limits, timeouts: Timeouts, package: str, report: Callable[[str], None],
                           warn: Callable[[str], None] | None = None,
                           detail: Callable[[str], None] | None = None) -> RebuildOutcome:
    """Ask all rebuilders concurrently; return once ``required`` confirmed.

    Args:
      rebuilders: base URLs (a path is kept) with an optional pinned key;
        duplicates (same normalised URL) count once.
      pkgname, version: from the package's file name, which the workflow later
        checks against .PKGINFO; ``version`` is ``[epoch:]pkgver-pkgrel``.
      get_sha256: resolves to the downloaded file's sha256 (hex) once the
        download finished; only awaited for pinned rebuilders.
      required: N. With 0 every rebuilder is still asked, for the report and
        for BAD warnings (as pacman-bintrans does), and nothing is required.
      fail_on_bad: a BAD for this exact version is fatal. Since a BAD can only
        be seen from a rebuilder that answered, the lookup then waits for every
        rebuilder (each up to ``timeouts.rebuilder``) instead of stopping at N.
      report: gets a summary line; ``detail`` (default ``report``; the CLI's -vv)
        one line per rebuilder (what it said, whether it counted); ``warn``
        (default ``report``) gets BAD reports.

    Returns a RebuildOutcome. Raises RebuilderError as soon as too few
    rebuilders can still confirm, or on BAD with ``fail_on_bad``; ConfigError
    for an unusable pinned key; TorUnavailable if Tor itself is down.
    """
    warn = warn or report
    subject = f"{pkgname} {version}"
    # (0) one entry per rebuilder; keys parsed before anything is fetched
    specs: dict[str, tuple[RebuilderSpec, bytes | None]] = {}
    for spec in rebuilders:
        url = normalise_rebuilder_url(spec.url)
        key = parse_pinned_key(spec.pinned_key) if spec.pinned_key is not None else None
        if url in specs and specs[url][1] is not None and key is None:
            continue  # keep the pinned entry of a duplicate
        specs[url] = (RebuilderSpec(spec.url, key), key)
    if required > len(specs):
        raise RebuilderError(f"{required} rebuild confirms needed for {subject} but only {len(specs)} "
                             f"distinct rebuilder{'s' if len(specs) != 1 else ''} given")
    if not specs:
        return RebuildOutcome(0, required, ())
    tally = RebuildTally(required=required, n_rebuilders=len(specs))
    wait_for_all = fail_on_bad or required == 0
    failure: list[TorfetchError] = []

    async def ask(spec: RebuilderSpec, key: bytes | None) -> Answer:
        try:
            with trio.move_on_after(timeouts.rebuilder) as deadline:
                got = await _lookup(net, spec, key, filename=filename, pkgname=pkgname, version=version,
                                    limits=limits, package=package)
            if deadline.cancelled_caught:
                return Answer(spec.url, Verdict.FAILED, f"timeout after {timeouts.rebuilder:g} s")
            if isinstance(got, Answer):
                return got
            # (4) the attestation must name exactly the bytes we downloaded
            sha = await get_sha256()
            if key is None:  # cannot happen: _Pending only for pinned rebuilders
                raise RuntimeError("attestation without a pinned key")
            try:
                check = verify_attestation(got.attestation, pinned_key=key, filename=filename, sha256_hex=sha,
                                           max_bytes=limits.attestation_max_bytes)
            except TorfetchError as exc:
                return Answer(spec.url, Verdict.FAILED, f"says GOOD [{got.api}] but {exc.message}")
            return Answer(spec.url, Verdict.CONFIRMED,
                          f"{got.detail} [{got.api}], attestation signed by pinned key {check.keyid[:16]}…")
        except TorUnavailable:
            raise  # Tor itself is down: not this rebuilder's fault, fail the whole fetch as such
        except TorfetchError as exc:
            return Answer(spec.url, Verdict.FAILED, f"failed: {exc.message}")

    async def one(spec: RebuilderSpec, key: bytes | None, cancel: trio.CancelScope) -> None:
        ans = await ask(spec, key)
        tally.add(ans)
        (detail or report)(f"rebuilder {ans.line()}")
        if ans.verdict is Verdict.BAD:
            warn(f"rebuilder {spec.url} reports BAD (not reproducible) for {subject}")
            if fail_on_bad:
                failure.append(RebuilderError(f"rebuilder {spec.url} reports BAD for {subject} (--fail-on-bad)"))
                cancel.cancel()
                return
        if tally.pending == 0 or (required > 0 and tally.hopeless()):
            cancel.cancel()
        elif tally.reached() and not wait_for_all:
            cancel.cancel()

    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            for spec, key in specs.values():
                nursery.start_soon(one, spec, key, scope)
    if failure:
        raise failure[0]
    unfinished = "not waited for (enough confirms)" if tally.reached() else "cancelled (too few could still confirm)"
    for spec, _ in specs.values():
        if spec.url not in tally.answers:
            tally.add(Answer(spec.url, Verdict.UNKNOWN, unfinished))
    if not tally.reached():
        raise RebuilderError(tally.summary(subject))
    if required > 0:
        report(f"{tally.confirmed} of {len(specs)} rebuilders confirmed {subject} (need {required})")
    return RebuildOutcome(tally.confirmed, required, tuple(tally.answers.values()))
