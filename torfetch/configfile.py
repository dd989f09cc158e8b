"""``/etc/torfetch.toml``: the command line's options in a file, plus one ``[[repo]]`` table per repository.

So that ``XferCommand = /usr/bin/torfetch -O %o %u`` is all pacman.conf needs::

    proxy = "socks5h://127.0.0.1:9050"      # any long option, "-" written "_"
    rebuilder = ["https://reproducible.archlinux.org/"]

    [[repo]]
    match = "https://mirror.example/myrepo/"   # or a list of URL prefixes (one per mirror)
    transparency_url = "https://mirror.example/sigs"
    pubkey = "RWS..."

Top-level keys are the long options of ``torfetch -h`` (derived from the argparse parser, so an option added
there works here too), except the per-invocation ones (``-O``, the URL, ``--config``, ``--version``) and the
per-repository ones (``transparency_url``, ``pubkey``, ``pubkey_file``, ``sigsum_key``), which live only in ``[[repo]]``
tables: a package's operator key always comes from the table whose ``match`` covers its URL, or from the
command line. ``[[repo]]`` tables also carry ``log_url``, ``log_key``, ``log_origin``, ``rebuilder``,
``rebuilder_key``, ``required_rebuild_confirms``, ``fail_on_bad`` and ``sigsum_policy``.

**Which table applies.** The one with the *longest* ``match`` that covers the URL (most specific wins, so a
table order mistake cannot widen a key's reach); two tables with the same ``match`` are an error. A match is on
URL boundaries: same scheme, host and port, and the URL's path equals the match's path or continues it with
``/`` (``https://a.example/repo`` covers ``https://a.example/repo/x.pkg.tar.zst`` but not
``https://a.example/repo-evil/x.pkg.tar.zst``). Query and fragment are never part of a match.

**Precedence.** Built-in defaults < top-level keys < the matching ``[[repo]]`` < the command line. Settings that
exclude each other (``proxy`` / ``direct`` / ``tor``; ``pubkey`` / ``pubkey_file``; ``quiet`` / ``verbose``) are replaced as a group: a
later layer that sets one clears the others set by an earlier layer.

:func:`parse_config` is pure (text in, typed :class:`ConfigFile` out, every error a ConfigError naming the
file, the line where it can be found, and the key). :func:`read_config_file` is the thin, careful reader.
"""

from __future__ import annotations

import argparse
import errno
import os
import re
import stat
import tomllib
import urllib.parse
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path

from .errors import ConfigError, TorfetchError

DEFAULT_CONFIG = Path("/etc/torfetch.toml")
CONFIG_MAX_BYTES = 1024 * 1024

#: argparse dests that are per invocation, never in the file
PER_INVOCATION = frozenset({"help", "output", "url", "config", "version"})
#: only in [[repo]] tables: what decides which operator key a package needs
REPO_ONLY = frozenset({"transparency_url", "pubkey", "pubkey_file", "sigsum_key"})
#: allowed in [[repo]] tables
REPO_KEYS = REPO_ONLY | frozenset({
    "log_url", "log_key", "log_origin", "rebuilder", "rebuilder_key", "required_rebuild_confirms", "fail_on_bad",
    "sigsum_policy", "sigsum_key",
})
#: settings that replace each other as a group across layers, and conflict within one
EXCLUSIVE = (frozenset({"proxy", "direct", "tor"}), frozenset({"pubkey", "pubkey_file"}),
             frozenset({"quiet", "verbose"}))


# --- what the file may say: derived from the argparse parser ---------------------------------------------------


@dataclass(frozen=True)
class OptionSpec:
    """One long option as the file sees it: its TOML shape and the converter its command-line value uses."""

    dest: str
    flag: str
    kind: str  # "bool" (store_true), "count" (-v), "list" (append), "value"
    convert: Callable[[str], object] | None = None
    choices: tuple[object, ...] | None = None

    def value_from_toml(self, value: object) -> object:
        """TOML value → what argparse would have produced for this option. Raises ConfigError (no line)."""
        if self.kind == "bool":
            if not isinstance(value, bool):
                raise ConfigError(f"expected true or false, got {_tname(value)}")
            return value
        if self.kind == "count":
            if not isinstance(value, int) or isinstance(value, bool) or not 0 <= value <= 10:
                raise ConfigError(f"expected a whole number 0..10, got {_tname(value)}")
            return value
        if self.kind == "list":
            if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
                raise ConfigError(f"expected an array of strings, got {_tname(value)}")
            return [self._one(v) for v in value]
        return self._one(value)

    def _one(self, value: object) -> object:
        conv = self.convert
        if conv is int or conv is float:
            ok = isinstance(value, int) or (conv is float and isinstance(value, float))
            if not ok or isinstance(value, bool):
                raise ConfigError(f"expected a number, got {_tname(value)}")
            out: object = conv(value)
        elif conv is None or conv is str or conv is Path:
            if not isinstance(value, str):
                raise ConfigError(f"expected a string, got {_tname(value)}")
            if conv is Path:
                if not os.path.isabs(value):
                    raise ConfigError(f"expected an absolute path, got {value[:100]!r}")
                out = Path(value)
            else:
                out = value
        else:  # the option's own converter (seconds, proxy_url, ...): it gets the text the user would type
            if isinstance(value, bool) or not isinstance(value, (str, int, float)):
                raise ConfigError(f"expected a string or number, got {_tname(value)}")
            try:
                out = conv(str(value))
            except TorfetchError as exc:
                raise ConfigError(exc.message) from None
            except (TypeError, ValueError, argparse.ArgumentTypeError) as exc:
                raise ConfigError(str(exc) or f"invalid value {str(value)[:100]!r}") from None
        if self.choices is not None and out not in self.choices:
            raise ConfigError(f"expected one of {', '.join(map(repr, self.choices))}, got {out!r}")
        return out


@dataclass(frozen=True)
class ConfigSpec:
    top: Mapping[str, OptionSpec]
    repo: Mapping[str, OptionSpec]

    @classmethod
    def from_parser(cls, parser: argparse.ArgumentParser) -> "ConfigSpec":
        top: dict[str, OptionSpec] = {}
        for a in parser._actions:  # argparse has no public list of its actions
            longs = [s for s in a.option_strings if s.startswith("--")]
            if not longs or a.dest in PER_INVOCATION or isinstance(a, (argparse._HelpAction, argparse._VersionAction)):
                continue
            if isinstance(a, (argparse._StoreTrueAction, argparse._StoreFalseAction)):
                kind = "bool"
            elif isinstance(a, argparse._CountAction):
                kind = "count"
            elif isinstance(a, argparse._AppendAction):
                kind = "list"
            elif isinstance(a, argparse._StoreAction) and a.nargs is None:
                kind = "value"
            else:
                continue  # an action the file has no spelling for
            key = longs[0][2:].replace("-", "_")
            top[key] = OptionSpec(a.dest, longs[0], kind, a.type, tuple(a.choices) if a.choices else None)
        repo = {k: v for k, v in top.items() if k in REPO_KEYS}
        return cls({k: v for k, v in top.items() if k not in REPO_ONLY}, repo)


# --- the parsed file ---------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class URLPrefix:
    """A ``match`` value, split so that matching is on URL boundaries."""

    text: str
    scheme: str
    netloc: str  # host[:port], lower case, default port dropped
    path: str  # without a trailing "/"

    @classmethod
    def parse(cls, text: str) -> "URLPrefix":
        s = _split(text)
        if s is None:
            raise ConfigError(f"match {text[:100]!r} is not a URL prefix (scheme://host/path, no query or fragment)")
        return cls(text, *s)

    def covers(self, url: str) -> bool:
        s = _split(url, allow_query=True)
        if s is None:
            return False
        scheme, netloc, path = s
        return (scheme, netloc) == (self.scheme, self.netloc) and (
            path == self.path or path.startswith(self.path + "/"))

    @property
    def specificity(self) -> int:
        return len(self.path)


def _split(url: str, *, allow_query: bool = False) -> tuple[str, str, str] | None:
    try:
        p = urllib.parse.urlsplit(url.strip())
        port = p.port
    except ValueError:
        return None
    scheme = p.scheme.lower()
    if not scheme or (scheme != "file" and not p.hostname) or (not allow_query and (p.query or p.fragment)):
        return None
    if any(c in url for c in "\x00\r\n\t ") or "@" in p.netloc:
        return None
    host = (p.hostname or "").lower()
    if ":" in host:
        host = f"[{host}]"
    default = {"http": 80, "https": 443}.get(scheme)
    netloc = host if port in (None, default) else f"{host}:{port}"
    path = p.path.rstrip("/")
    # "." and ".." segments would let a URL climb out of a prefix once a server normalises it
    if any(seg in (".", "..") for seg in p.path.split("/")) or "%2f" in p.path.lower():
        return None
    return scheme, netloc, path


@dataclass(frozen=True)
class RepoTable:
    matches: tuple[URLPrefix, ...]
    values: Mapping[str, object]
    line: int | None = None

    def specificity_for(self, url: str) -> int | None:
        best = [m.specificity for m in self.matches if m.covers(url)]
        return max(best) if best else None


@dataclass(frozen=True)
class ConfigFile:
    source: str
    values: Mapping[str, object] = field(default_factory=dict)
    repos: tuple[RepoTable, ...] = ()

    def repo_for(self, url: str) -> RepoTable | None:
        """The ``[[repo]]`` whose longest ``match`` covers ``url`` (None if none does)."""
        best: tuple[int, RepoTable] | None = None
        for r in self.repos:
            s = r.specificity_for(url)
            if s is not None and (best is None or s > best[0]):
                best = (s, r)
        return best[1] if best else None


class _Lines:
    """Best-effort line numbers for keys (tomllib reports none for a valid document)."""

    def __init__(self, text: str) -> None:
        self.lines = text.splitlines()
        self.headers = [i for i, ln in enumerate(self.lines) if re.match(r"\s*\[", ln)]
        self.repo_headers = [i for i, ln in enumerate(self.lines) if re.match(r"\s*\[\[\s*repo\s*\]\]", ln)]

    def find(self, key: str, repo: int | None = None) -> int | None:
        if repo is None:
            start, end = 0, self.headers[0] if self.headers else len(self.lines)
        elif repo < len(self.repo_headers):
            start = self.repo_headers[repo] + 1
            end = next((h for h in self.headers if h >= start), len(self.lines))
        else:
            return None
        pat = re.compile(r"\s*(?:\"|')?" + re.escape(key) + r"(?:\"|')?\s*(?:=|\.)")
        for i in range(start, end):
            if pat.match(self.lines[i]):
                return i + 1
        if repo is None:  # a table of that name: [key] or [[key]]
            header = re.compile(r"\s*\[\[?\s*(?:\"|')?" + re.escape(key) + r"(?:\"|')?\s*[\].]")
            for i in self.headers:
                if header.match(self.lines[i]):
                    return i + 1
        return None

    def table(self, repo: int) -> int | None:
        return self.repo_headers[repo] + 1 if repo < len(self.repo_headers) else None


def parse_config(text: str, *, source: str, spec: ConfigSpec) -> ConfigFile:
    """TOML text → ConfigFile. Pure. Every error is one ConfigError naming ``source``, the line and the key."""
    lines = _Lines(text)

    def err(msg: str, key: str | None = None, repo: int | None = None, line: int | None = None) -> ConfigError:
        if line is None and key is not None:
            line = lines.find(key, repo)
        if line is None and repo is not None:
            line = lines.table(repo)
        where = f"{source}, line {line}" if line else source
        what = f"[[repo]] #{repo + 1}: " if repo is not None else ""
        return ConfigError(f"{where}: {what}{key + ': ' if key else ''}{msg}")

    try:
        doc = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: not valid TOML: {exc}") from None
    except RecursionError:
        raise ConfigError(f"{source}: not valid TOML: nested too deeply") from None

    values: dict[str, object] = {}
    repos: list[RepoTable] = []
    for key, value in doc.items():
        if key == "repo":
            if not isinstance(value, list) or not all(isinstance(t, dict) for t in value):
                raise err("must be [[repo]] tables", key)
            for i, table in enumerate(value):
                repos.append(_repo(table, i, spec, err))
            continue
        opt = spec.top.get(key)
        if opt is None:
            if key in spec.repo or key in REPO_ONLY:
                raise err("belongs in a [[repo]] table (with the match of the repository it is for)", key)
            raise err(f"unknown key{_suggest(key, spec.top)}", key)
        try:
            values[opt.dest] = opt.value_from_toml(value)
        except ConfigError as exc:
            raise err(exc.message, key) from None
    _exclusive(values, err, None)
    seen: dict[tuple[str, str, str], int] = {}
    for i, r in enumerate(repos):
        for m in r.matches:
            k = (m.scheme, m.netloc, m.path)
            if k in seen:
                raise err(f"{m.text!r} is also the match of [[repo]] #{seen[k] + 1}", "match", i)
            seen[k] = i
    return ConfigFile(source, values, tuple(repos))


def _repo(table: dict, i: int, spec: ConfigSpec, err) -> RepoTable:
    if "match" not in table:
        raise err("needs a match = \"<URL prefix>\" (the Server URL of the repository)", None, i)
    raw = table["match"]
    items = [raw] if isinstance(raw, str) else raw
    if not isinstance(items, list) or not items or not all(isinstance(m, str) for m in items):
        raise err(f"expected a URL prefix or an array of them, got {_tname(raw)}", "match", i)
    try:
        matches = tuple(URLPrefix.parse(m) for m in items)
    except ConfigError as exc:
        raise err(exc.message, "match", i) from None
    values: dict[str, object] = {}
    for key, value in table.items():
        if key == "match":
            continue
        opt = spec.repo.get(key)
        if opt is None:
            if key in spec.top:
                raise err("cannot be set per repository: put it at the top of the file", key, i)
            raise err(f"unknown key{_suggest(key, spec.repo)}", key, i)
        try:
            values[opt.dest] = opt.value_from_toml(value)
        except ConfigError as exc:
            raise err(exc.message, key, i) from None
    _exclusive(values, err, i)
    return RepoTable(matches, values, None)


def _exclusive(values: Mapping[str, object], err, repo: int | None) -> None:
    for group in EXCLUSIVE:
        given = sorted(k for k in group if values.get(k) not in (None, False))
        if len(given) > 1:
            raise err(f"give only one of {', '.join(given)}", given[1], repo)


def _suggest(key: str, known: Iterable[str]) -> str:
    import difflib

    close = difflib.get_close_matches(key.replace("-", "_"), list(known), n=1)
    return f" (did you mean {close[0]}?)" if close else ""


def _tname(v: object) -> str:
    return {bool: "a boolean", int: "a number", float: "a number", str: "a string", list: "an array",
            dict: "a table"}.get(type(v), type(v).__name__)


def merge_layers(defaults: Mapping[str, object], layers: Iterable[Mapping[str, object]]) -> dict[str, object]:
    """Apply layers in order over the defaults; an exclusive group set in a later layer replaces it whole."""
    out = dict(defaults)
    for layer in layers:
        for group in EXCLUSIVE:
            if any(layer.get(k) not in (None, False) for k in group):
                for k in group:
                    if k in out and k not in layer:
                        out[k] = defaults.get(k)
        out.update(layer)
    return out


# --- reading the file: thin, and careful about who may have written it -----------------------------------------


def read_config_file(path: Path | None, *, spec: ConfigSpec, euid: int | None = None) -> ConfigFile | None:
    """Read and parse the config. ``path`` None means the default, which may be missing; a given path may not
    (``/dev/null`` reads as an empty file, to run without any config).

    Refused: a file that is not regular, is larger than 1 MiB, is world-writable or writable by a group
    other than root, sits in a directory that anyone (or such a group) may write to (without the sticky bit), or - when running as root - is not owned by root (it
    decides what gets installed). A file the user cannot read (pacman 7's DownloadUser ``alpm``) gets a
    message with the fix.
    """
    explicit = path is not None
    p = path if path is not None else DEFAULT_CONFIG
    if explicit and os.fspath(p) == os.devnull:
        return ConfigFile(os.devnull)  # --config /dev/null: no file at all, not even the default
    uid = os.geteuid() if euid is None else euid
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except FileNotFoundError:
        if not explicit:
            return None
        raise ConfigError(f"--config {p} does not exist") from None
    except PermissionError:
        raise ConfigError(
            f"cannot read the config {p}: permission denied (running as {_user(uid)}; pacman 7 runs torfetch as "
            f"its DownloadUser): make it readable with: chmod 644 {p}") from None
    except OSError as exc:
        raise ConfigError(f"cannot read the config {p}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        _check_trust(p, st, uid)
        os.set_blocking(fd, True)
        data = _read_capped(fd, CONFIG_MAX_BYTES)
    except OSError as exc:
        if exc.errno == errno.EISDIR:
            raise ConfigError(f"the config {p} is a directory") from None
        raise ConfigError(f"cannot read the config {p}: {exc.strerror or exc}") from None
    finally:
        os.close(fd)
    if data is None:
        raise ConfigError(f"the config {p} is larger than {CONFIG_MAX_BYTES} bytes")
    from .localfile import decode_text

    return parse_config(decode_text(data, what=f"the config {p}"), source=str(p), spec=spec)


def _read_capped(fd: int, cap: int) -> bytes | None:
    chunks, total = [], 0
    while total <= cap:
        chunk = os.read(fd, min(65536, cap + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
    return None


def _check_trust(p: Path, st: os.stat_result, uid: int) -> None:
    if not stat.S_ISREG(st.st_mode):
        raise ConfigError(f"the config {p} is not a regular file")
    if st.st_mode & stat.S_IWOTH:
        raise ConfigError(f"refusing the config {p}: it is world-writable and decides what gets installed "
                          f"(fix: chmod o-w {p})")
    if st.st_mode & stat.S_IWGRP and st.st_gid != 0:
        # root:alpm 0664 would let pacman 7's DownloadUser, which torfetch runs as, rewrite it
        raise ConfigError(f"refusing the config {p}: it is group-writable (group {st.st_gid}) and decides what gets "
                          f"installed (fix: chmod g-w {p})")
    if uid == 0 and st.st_uid != 0:
        raise ConfigError(f"refusing the config {p}: it is owned by uid {st.st_uid}, not root, and decides what "
                          f"gets installed (fix: chown root: {p})")
    if uid != 0 and st.st_uid not in (0, uid):
        raise ConfigError(f"refusing the config {p}: it is owned by uid {st.st_uid}, neither root nor this user")
    # whoever can write the directory can replace the file
    parent = Path(os.path.realpath(p)).parent
    try:
        dst = os.stat(parent)
    except OSError as exc:
        raise ConfigError(f"cannot check the directory of the config {p}: {exc.strerror}") from None
    if dst.st_mode & stat.S_IWOTH and not dst.st_mode & stat.S_ISVTX:
        raise ConfigError(f"refusing the config {p}: its directory {parent} is world-writable (anyone could replace the "
                          f"file): move it, or chmod o-w {parent}")
    if dst.st_mode & stat.S_IWGRP and dst.st_gid != 0 and not dst.st_mode & stat.S_ISVTX:
        raise ConfigError(f"refusing the config {p}: its directory {parent} is group-writable (group {dst.st_gid})")
    if uid == 0 and dst.st_uid != 0:
        raise ConfigError(f"refusing the config {p}: its directory {parent} is owned by uid {dst.st_uid}, not root")


def _user(uid: int) -> str:
    try:
        import pwd

        return pwd.getpwuid(uid).pw_name
    except (KeyError, ImportError):
        return f"uid {uid}"
