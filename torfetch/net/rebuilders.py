"""Ask every rebuilder at once, each on its own circuit and timeout; stop at N confirms.

pacman-bintrans asks rebuilders one after another with 5 s each. Here all run
in one nursery: the fetch succeeds as soon as ``required`` confirmed (the
rest are cancelled) and fails as soon as too few can still confirm.
"""

from __future__ import annotations

import urllib.parse
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import trio

from ..config import Limits, Timeouts
from ..errors import RebuilderError, TorfetchError, TorUnavailable
from ..verify.rebuilder import (Answer, RebuilderSpec, RebuildTally, Verdict, match, parse_pinned_key, parse_v0,
                                parse_v1, verify_attestation)
from .http import Network


@dataclass(frozen=True)
class RebuildOutcome:
    confirmed: int
    answers: tuple[Answer, ...]


def endpoint(base: str, path: str, query: dict[str, str]) -> str:
    """Join keeping the base's own path (https://host/rebuild/ stays under /rebuild/)."""
    if not base.endswith("/"):
        base += "/"
    return urllib.parse.urljoin(base, path.lstrip("/")) + "?" + urllib.parse.urlencode(query)


async def _ask_one(net: Network, spec: RebuilderSpec, *, filename: str, pkgname: str, version: str,
                   get_sha256: Callable[[], Awaitable[str]], limits: Limits, package: str) -> Answer:
    name = spec.url
    cap = limits.rebuilder_max_bytes
    r = await net.request("rebuilder", "GET", endpoint(spec.url, "api/v1/packages/binary", {
        "distribution": "archlinux", "name": pkgname, "version": version}), max_bytes=cap, timeout=3600, package=package)
    if r.status == 200:
        records = parse_v1(r.body, cap)
        api = "v1"
    elif r.status == 404:
        r = await net.request("rebuilder", "GET", endpoint(spec.url, "api/v0/pkgs/list", {
            "distro": "archlinux", "name": pkgname}), max_bytes=cap, timeout=3600, package=package)
        if r.status != 200:
            return Answer(name, Verdict.FAILED, f"answered HTTP {r.status}")
        records = parse_v0(r.body, cap)
        api = "v0"
    else:
        return Answer(name, Verdict.FAILED, f"answered HTTP {r.status}")
    verdict, record, detail = match(records, pkgname, version)
    if verdict is not Verdict.CONFIRMED or spec.pinned_key is None:
        return Answer(name, verdict, f"{detail} [{api}]" + (" — counted" if verdict is Verdict.CONFIRMED else ""))
    # Pinned key: only a valid attestation for exactly our bytes counts.
    assert record is not None
    if api != "v1" or record.build_id is None or record.artifact_id is None:
        return Answer(name, Verdict.FAILED, "says GOOD but offers no attestation (pinned key) — not counted")
    a = await net.request("rebuilder", "GET", endpoint(
        spec.url, f"api/v1/builds/{record.build_id}/artifacts/{record.artifact_id}/attestation", {})[:-1],
        max_bytes=limits.attestation_max_bytes, timeout=3600, package=package)
    if a.status != 200:
        return Answer(name, Verdict.FAILED, f"says GOOD but its attestation is missing (HTTP {a.status}) — not counted")
    key = parse_pinned_key(spec.pinned_key)
    sha = await get_sha256()
    try:
        check = verify_attestation(a.body, pinned_key=key, filename=filename, sha256_hex=sha,
                                   max_bytes=limits.attestation_max_bytes)
    except TorfetchError as exc:
        return Answer(name, Verdict.FAILED, f"says GOOD but {exc.message} — not counted")
    return Answer(name, Verdict.CONFIRMED, f"reproduced it, attestation signed by pinned key {check.keyid[:16]}… — counted")


async def confirm_rebuilds(net: Network, rebuilders: Sequence[RebuilderSpec], *, filename: str, pkgname: str,
                           version: str, get_sha256: Callable[[], Awaitable[str]], required: int, fail_on_bad: bool,
                           limits: Limits, timeouts: Timeouts, package: str, report: Callable[[str], None],
                           warn: Callable[[str], None] | None = None) -> RebuildOutcome:
    subject = f"{pkgname} {version}"
    tally = RebuildTally(required=required, total=len(rebuilders))
    failure: list[RebuilderError] = []

    async def one(spec: RebuilderSpec, cancel: trio.CancelScope) -> None:
        try:
            with trio.fail_after(timeouts.rebuilder):
                ans = await _ask_one(net, spec, filename=filename, pkgname=pkgname, version=version,
                                     get_sha256=get_sha256, limits=limits, package=package)
        except trio.TooSlowError:
            ans = Answer(spec.url, Verdict.FAILED, f"timeout after {timeouts.rebuilder:g} s")
        except TorUnavailable:
            raise  # tor itself is down: not this rebuilder's fault, fail the whole fetch as such
        except TorfetchError as exc:
            ans = Answer(spec.url, Verdict.FAILED, f"failed: {exc.message}")
        tally.add(ans)
        report(f"rebuilder {ans.line()}")
        if ans.verdict is Verdict.BAD:
            (warn or report)(f"rebuilder {spec.url} reports BAD (not reproducible) for {subject}")
            if fail_on_bad:
                failure.append(RebuilderError(f"rebuilder {spec.url} reports BAD for {subject} (--fail-on-bad)"))
                cancel.cancel()
                return
        if (tally.reached() and not fail_on_bad) or tally.hopeless():
            cancel.cancel()
        elif fail_on_bad and tally.pending == 0:
            cancel.cancel()

    if required == 0 and not rebuilders:
        return RebuildOutcome(0, ())
    with trio.CancelScope() as scope:
        async with trio.open_nursery() as nursery:
            for spec in rebuilders:
                nursery.start_soon(one, spec, scope)
    if failure:
        raise failure[0]
    if not tally.reached():
        for spec in rebuilders:
            if spec.url not in tally.answers:
                tally.add(Answer(spec.url, Verdict.UNKNOWN, "not asked to finish"))
        raise RebuilderError(tally.summary(subject))
    if tally.confirmed >= required and required:
        report(f"{tally.confirmed} of {len(rebuilders)} rebuilders confirmed {subject} (need {required})")
    return RebuildOutcome(tally.confirmed, tuple(tally.answers.values()))
