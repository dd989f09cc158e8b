"""/etc/torfetch.toml: the parser (pure), the merge with the command line, and the careful reader."""

from __future__ import annotations

import os
import shlex
import stat
from pathlib import Path

import pytest

from torfetch import cli, configfile
from torfetch.configfile import ConfigSpec, parse_config, read_config_file
from torfetch.errors import ConfigError

ROOT = Path(__file__).resolve().parent.parent
PUB = "RWQf6LRCGA9i53mlYecO4IzT51TGPpvWucNSCh1CBM0QTaLn73Y7GFO3"
SPEC = ConfigSpec.from_parser(cli.build_parser())


def parse(text: str):
    return parse_config(text, source="/etc/torfetch.toml", spec=SPEC)


def error(text: str) -> str:
    with pytest.raises(ConfigError) as e:
        parse(text)
    return e.value.one_line()


# --- keys and types ----------------------------------------------------------------------------------------------


def test_top_level_keys_are_the_long_options() -> None:
    c = parse('proxy = "socks5://127.0.0.1:9150"\nisolate = "package"\nstate_dir = "/var/lib/torfetch"\n'
              'rebuilder = ["HTTPS://R.test/a"]\nrequired_rebuild_confirms = 1\ndeadline = 600\n'
              'connect_timeout = 2.5\nfail_on_bad = true\nverbose = 1\n')
    assert c.values == {"proxy": "socks5h://127.0.0.1:9150", "isolate": "package",
                        "state_dir": Path("/var/lib/torfetch"), "rebuilder": ["https://r.test/a/"],
                        "required_rebuild_confirms": 1, "deadline": 600.0, "connect_timeout": 2.5,
                        "fail_on_bad": True, "verbose": 1}


def test_options_added_to_the_parser_work_in_the_file() -> None:
    # what other options (e.g. --log-origin, --lookup-timeout) get without touching the config module
    p = cli.build_parser()
    if not any("--log-origin" in a.option_strings for a in p._actions):
        p.add_argument("--log-origin")
    if not any("--lookup-timeout" in a.option_strings for a in p._actions):
        from torfetch import cliargs

        p.add_argument("--lookup-timeout", type=cliargs.seconds)
    spec = ConfigSpec.from_parser(p)
    c = parse_config('lookup_timeout = 30\n[[repo]]\nmatch = "https://m.test/r"\nlog_origin = "rekor.example"\n',
                     source="f", spec=spec)
    assert c.values == {"lookup_timeout": 30.0} and c.repos[0].values == {"log_origin": "rekor.example"}
    with pytest.raises(ConfigError, match="lookup_timeout: 'nan' is not a positive"):
        parse_config("lookup_timeout = nan\n", source="f", spec=spec)


@pytest.mark.parametrize("key", ["output", "url", "config", "version", "help", "O"])
def test_per_invocation_options_are_not_keys(key: str) -> None:
    assert f"{key}: unknown key" in error(f'{key} = "x"\n')


def test_unknown_key_names_file_line_and_key() -> None:
    assert error('# a comment\nisolate = "purpose"\n\nprxy = "socks5h://127.0.0.1:9050"\n') == \
        "torfetch: configuration: /etc/torfetch.toml, line 4: prxy: unknown key (did you mean proxy?)"


def test_unknown_key_in_a_repo_table_names_its_line() -> None:
    text = ('isolate = "purpose"\n[[repo]]\nmatch = "https://a.test/r"\npubkey = "k"\n'
            '[[repo]]\nmatch = "https://b.test/r"\n\npubky = "k"\n')
    assert error(text) == ("torfetch: configuration: /etc/torfetch.toml, line 8: [[repo]] #2: pubky: unknown key "
                           "(did you mean pubkey?)")


@pytest.mark.parametrize("text, why", [
    ("isolate = 1", "isolate: expected a string, got a number"),
    ('isolate = "circuit"', "isolate: expected one of 'purpose', 'package'"),
    ("proxy = 9050", "proxy: unsupported proxy '9050'"),
    ('proxy = "socks5h://127.0.0.1:99999"', "proxy: proxy 'socks5h://127.0.0.1:99999' is not a valid URL"),
    ('direct = "yes"', "direct: expected true or false, got a string"),
    ('rebuilder = "https://r.test/"', "rebuilder: expected an array of strings, got a string"),
    ('rebuilder = ["http://[::1/"]', "rebuilder: rebuilder URL 'http://[::1/' is not a"),
    ("max_size = 1.5", "max_size: '1.5' is not a whole number"),
    ("max_size = true", "max_size: expected a string or number, got a boolean"),
    ("deadline = nan", "deadline: 'nan' is not a positive, finite number of seconds"),
    ("deadline = -inf", "deadline: '-inf' is not a positive"),
    ("deadline = -3", "deadline: '-3' is not a positive"),
    ('state_dir = "relative/dir"', "state_dir: expected an absolute path"),
    ("verbose = 99", "verbose: expected a whole number 0..10"),
    ("[options]\nproxy = 1", "options: unknown key"),
])
def test_wrong_types_name_the_key(text: str, why: str) -> None:
    line = error(text + "\n")
    assert line.startswith("torfetch: configuration: /etc/torfetch.toml, line ") and why in line, line


def test_invalid_toml_names_the_file_and_line() -> None:
    line = error('isolate = "purpose"\nproxy = \n')
    assert line.startswith("torfetch: configuration: /etc/torfetch.toml: not valid TOML:") and "line 2" in line


def test_repository_keys_live_in_repo_tables_and_vice_versa() -> None:
    assert "pubkey: belongs in a [[repo]] table" in error(f'pubkey = "{PUB}"\n')
    assert "transparency_url: belongs in a [[repo]] table" in error('transparency_url = "https://s.test/"\n')
    assert "[[repo]] #1: proxy: cannot be set per repository" in \
        error('[[repo]]\nmatch = "https://a.test/"\nproxy = "socks5h://127.0.0.1:9050"\n')
    assert "repo: must be [[repo]] tables" in error('repo = "x"\n')


def test_settings_that_exclude_each_other_in_one_table() -> None:
    assert "give only one of direct, proxy" in error('proxy = "socks5h://127.0.0.1:9050"\ndirect = true\n')
    assert "give only one of pubkey, pubkey_file" in \
        error(f'[[repo]]\nmatch = "https://a.test/"\npubkey = "{PUB}"\npubkey_file = "/etc/k.pub"\n')
    assert parse('proxy = "socks5h://127.0.0.1:9050"\ndirect = false\n').values["direct"] is False


# --- [[repo]] matching -------------------------------------------------------------------------------------------


REPOS = f'''
[[repo]]
match = "https://a.example/repo"
pubkey = "{PUB}"
transparency_url = "https://a.example/sigs"

[[repo]]
match = ["https://a.example/repo/testing/", "http://mirror.test:8080/x/repo/testing"]
pubkey_file = "/etc/torfetch/testing.pub"
required_rebuild_confirms = 2
'''


@pytest.mark.parametrize("url, which", [
    ("https://a.example/repo/hello-1-1-any.pkg.tar.zst", 0),
    ("HTTPS://A.EXAMPLE:443/repo/hello-1-1-any.pkg.tar.zst", 0),  # scheme, host and default port normalised
    ("https://a.example/repo", 0),
    ("https://a.example/repo/testing/hello-1-1-any.pkg.tar.zst", 1),  # the longest prefix wins...
    ("http://mirror.test:8080/x/repo/testing/h-1-1-any.pkg.tar.zst", 1),
    ("https://a.example/repo-evil/hello-1-1-any.pkg.tar.zst", None),  # ...on "/" boundaries only
    ("https://a.example/repository/hello-1-1-any.pkg.tar.zst", None),
    ("https://a.example.evil.test/repo/hello-1-1-any.pkg.tar.zst", None),
    ("http://a.example/repo/hello-1-1-any.pkg.tar.zst", None),  # another scheme is another repository
    ("https://a.example:8443/repo/hello-1-1-any.pkg.tar.zst", None),
    ("https://a.example/Repo/hello-1-1-any.pkg.tar.zst", None),  # paths are case-sensitive
    ("https://a.example/repo/../other/hello-1-1-any.pkg.tar.zst", None),  # no climbing out
    ("https://a.example/repo%2F..%2Fother/x.pkg.tar.zst", None),
    ("https://evil.test/?u=https://a.example/repo/x.pkg.tar.zst", None),
    ("https://a.example@evil.test/repo/x.pkg.tar.zst", None),
])
def test_longest_prefix_on_url_boundaries(url: str, which: int | None) -> None:
    c = parse(REPOS)
    r = c.repo_for(url)
    assert (None if r is None else c.repos.index(r)) == which


def test_longest_match_wins_whatever_the_order() -> None:
    blocks = REPOS.split("\n[[repo]]")
    flipped = "\n[[repo]]".join([blocks[0], blocks[2], blocks[1]])
    c = parse(flipped)
    r = c.repo_for("https://a.example/repo/testing/hello-1-1-any.pkg.tar.zst")
    assert r is not None and r.values["required_rebuild_confirms"] == 2


@pytest.mark.parametrize("match, why", [
    ('"a.example/repo"', "is not a URL prefix"),
    ('"https://a.example/repo?x=1"', "is not a URL prefix"),
    ('"https://a.example:99999/"', "is not a URL prefix"),
    ('"https://[::1/"', "is not a URL prefix"),
    ("[]", "expected a URL prefix or an array of them"),
    ("1", "expected a URL prefix or an array of them"),
])
def test_bad_match(match: str, why: str) -> None:
    line = error(f"[[repo]]\nmatch = {match}\n")
    assert "[[repo]] #1: match: " in line and why in line, line


def test_repo_needs_a_match_and_matches_are_unique() -> None:
    assert error(f'[[repo]]\npubkey = "{PUB}"\n') == ('torfetch: configuration: /etc/torfetch.toml, line 1: [[repo]] '
                                                      '#1: needs a match = "<URL prefix>" (the Server URL of the '
                                                      'repository)')
    line = error('[[repo]]\nmatch = "https://a.test/r/"\n[[repo]]\nmatch = ["https://A.test:443/r"]\n')
    assert "line 4: [[repo]] #2: match: 'https://A.test:443/r' is also the match of [[repo]] #1" in line


# --- the command line over the file ------------------------------------------------------------------------------


def write_config(tmp_path: Path, text: str) -> Path:
    d = tmp_path / "etc"
    d.mkdir(exist_ok=True)
    p = d / "torfetch.toml"
    p.write_text(text)
    os.chmod(p, 0o644)
    return p


def opts_for(cfg: Path, *args: str):
    return cli.options_from_args(cli.build_parser().parse_args(["--config", str(cfg), "-O", "o", *args]))


def test_file_then_repo_then_command_line(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 'isolate = "package"\nrebuilder = ["https://r1.test/"]\ndeadline = 100\n'
                                 'required_rebuild_confirms = 1\nproxy = "socks5h://127.0.0.1:9150"\n' + REPOS)
    pkg = "https://a.example/repo/hello-1-1-any.pkg.tar.zst"
    o = opts_for(cfg, pkg)
    assert (o.isolate, o.rebuilders, o.timeouts.download_total, o.proxy) == \
        ("package", ("https://r1.test/",), 100.0, "socks5h://127.0.0.1:9150")
    assert (o.pubkey, o.transparency_url, o.required_rebuild_confirms) == (PUB, "https://a.example/sigs", 1)
    assert o.config_file == str(cfg)
    assert o.config_note == f"config {cfg}: [[repo]] https://a.example/repo applies"
    assert opts_for(cfg, "https://b.test/x.db").config_note == f"config {cfg}: no [[repo]] matches this URL"
    # a flag overrides the file, even when it names the default value; a list is replaced, not extended
    o = opts_for(cfg, "--isolate", "purpose", "--rebuilder", "https://r2.test", "--deadline", "5",
                 "--transparency-url", "https://other.test/t", pkg)
    assert (o.isolate, o.rebuilders, o.timeouts.download_total, o.transparency_url) == \
        ("purpose", ("https://r2.test/",), 5.0, "https://other.test/t")


def test_exclusive_settings_are_replaced_as_a_group(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 'proxy = "socks5h://127.0.0.1:9150"\n' + REPOS)
    o = opts_for(cfg, "--direct", "https://a.example/repo/x-1-1-any.pkg.tar.zst")
    assert o.direct and o.proxy is None
    cfg = write_config(tmp_path, "direct = true\n" + REPOS)
    o = opts_for(cfg, "--proxy", "socks5h://127.0.0.1:9050", "https://a.example/repo/x-1-1-any.pkg.tar.zst")
    assert not o.direct and o.proxy == "socks5h://127.0.0.1:9050"
    o = opts_for(cfg, "--pubkey", "RWQCOMMANDLINE", "https://a.example/repo/testing/x-1-1-any.pkg.tar.zst")
    assert o.pubkey == "RWQCOMMANDLINE"  # the repo's pubkey_file is not read, and no "not both"
    cfg = write_config(tmp_path, "quiet = true\n")
    assert opts_for(cfg, "http://h.test/x.db").quiet
    o = opts_for(cfg, "-v", "http://h.test/x.db")
    assert (o.quiet, o.verbose) == (False, 1)
    assert "give only one of quiet, verbose" in error("quiet = true\nverbose = 1\n")


def test_repo_values_over_top_level(tmp_path: Path) -> None:
    pub = tmp_path / "testing.pub"
    pub.write_text(f"untrusted comment: minisign public key\n{PUB}\n")
    cfg = write_config(tmp_path, "required_rebuild_confirms = 1\nrebuilder = [\"https://r1.test/\", \"https://r2.test/\"]\n"
                       + REPOS.replace("/etc/torfetch/testing.pub", str(pub)))
    o = opts_for(cfg, "https://a.example/repo/testing/x-1-1-any.pkg.tar.zst")
    assert o.required_rebuild_confirms == 2 and PUB in (o.pubkey or "")


def test_unmatched_package_is_refused_naming_the_config(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path, REPOS)
    out = tmp_path / "x-1-1-any.pkg.tar.zst.part"
    out.write_bytes(b"stale")
    url = "https://a.example/repo-evil/x-1-1-any.pkg.tar.zst"
    rc = cli.main(["--config", str(cfg), "--direct", "-O", str(out), url])
    err = capsys.readouterr().err
    assert rc == 2
    assert err.strip() == (f"torfetch: usage: x-1-1-any.pkg.tar.zst is a package and needs a transparency signature: "
                           f"no [[repo]] in {cfg} matches {url}: add one with its pubkey, or give --pubkey")


def test_config_errors_exit_2_in_one_line(tmp_path: Path, capsys) -> None:
    cfg = write_config(tmp_path, 'isolate = "purpose"\nmax_size = "big"\n')
    assert cli.main(["--config", str(cfg), "-O", str(tmp_path / "o"), "http://h.test/core.db"]) == 2
    assert capsys.readouterr().err.strip() == \
        f"torfetch: configuration: {cfg}, line 2: max_size: 'big' is not a whole number"


# --- reading the file --------------------------------------------------------------------------------------------


def test_missing_default_is_fine_missing_explicit_is_not(tmp_path: Path, monkeypatch) -> None:
    monkeypatch.setattr(configfile, "DEFAULT_CONFIG", tmp_path / "absent.toml")
    assert read_config_file(None, spec=SPEC) is None
    with pytest.raises(ConfigError, match=f"--config {tmp_path}/absent.toml does not exist"):
        read_config_file(tmp_path / "absent.toml", spec=SPEC)


def test_dev_null_means_no_config_at_all(tmp_path: Path, monkeypatch) -> None:
    cfg = write_config(tmp_path, 'isolate = "package"\n')
    monkeypatch.setattr(configfile, "DEFAULT_CONFIG", cfg)
    o = cli.options_from_args(cli.build_parser().parse_args(["--config", "/dev/null", "-O", "o", "http://h.test/x.db"]))
    assert o.isolate == "purpose" and o.config_file == "/dev/null"


def test_default_file_is_read(tmp_path: Path, monkeypatch) -> None:
    cfg = write_config(tmp_path, 'isolate = "package"\n')
    monkeypatch.setattr(configfile, "DEFAULT_CONFIG", cfg)
    o = cli.options_from_args(cli.build_parser().parse_args(["-O", "o", "http://h.test/core.db"]))
    assert o.isolate == "package" and o.config_file == str(cfg)


def test_world_writable_config_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 'isolate = "package"\n')
    os.chmod(cfg, 0o666)
    with pytest.raises(ConfigError, match=r"it is world-writable and decides what gets installed \(fix: chmod o-w"):
        read_config_file(cfg, spec=SPEC)
    os.chmod(cfg, 0o644)
    assert read_config_file(cfg, spec=SPEC) is not None


def test_config_in_a_world_writable_directory_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 'isolate = "package"\n')
    os.chmod(cfg.parent, 0o777)
    with pytest.raises(ConfigError, match="its directory .* is world-writable"):
        read_config_file(cfg, spec=SPEC)
    os.chmod(cfg.parent, 0o1777)  # sticky, like /tmp: nobody else can replace the file
    assert read_config_file(cfg, spec=SPEC) is not None


def test_config_writable_by_a_group_other_than_root_is_refused(tmp_path: Path) -> None:
    """root:alpm 0664 (made "readable by the DownloadUser" the wrong way) lets alpm, the user pacman 7 runs
    torfetch as, rewrite what gets installed: refused, as OpenSSH and sudo refuse group-writable files."""
    cfg = write_config(tmp_path, 'isolate = "package"\n')
    if os.geteuid() == 0:
        os.chown(cfg, 0, 65534)
        os.chown(cfg.parent, 0, 65534)
    assert os.stat(cfg).st_gid != 0
    os.chmod(cfg, 0o664)
    with pytest.raises(ConfigError, match=r"it is group-writable \(group [0-9]+\) and decides what gets installed"):
        read_config_file(cfg, spec=SPEC)
    os.chmod(cfg, 0o644)
    os.chmod(cfg.parent, 0o775)  # whoever is in the directory's group can replace the file
    with pytest.raises(ConfigError, match="its directory .* is group-writable"):
        read_config_file(cfg, spec=SPEC)
    os.chmod(cfg.parent, 0o755)
    assert read_config_file(cfg, spec=SPEC) is not None
    if os.geteuid() == 0:  # group root is root
        os.chown(cfg, 0, 0)
        os.chmod(cfg, 0o664)
        assert read_config_file(cfg, spec=SPEC) is not None


def test_as_root_a_config_not_owned_by_root_is_refused(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 'isolate = "package"\n')
    if os.geteuid() == 0:
        os.chown(cfg, 65534, 65534)
    # (run as another user, the file is already not root's; euid=0 asks for the root rule)
    with pytest.raises(ConfigError, match="it is owned by uid [1-9][0-9]*, not root"):
        read_config_file(cfg, spec=SPEC, euid=0)


def test_unreadable_config_says_how_to_fix(tmp_path: Path) -> None:
    cfg = write_config(tmp_path, 'isolate = "package"\n')
    os.chmod(cfg, 0o600)
    r, w = os.pipe()
    pid = os.fork()
    if pid == 0:  # the DownloadUser's view: a user that is not the owner
        try:
            os.close(r)
            if os.geteuid() == 0:
                os.setgid(65534)
                os.setuid(65534)
            else:
                os.chmod(cfg, 0o000)
            try:
                read_config_file(cfg, spec=SPEC)
                msg = "read it"
            except ConfigError as exc:
                msg = exc.message
            os.write(w, msg.encode())
        finally:
            os._exit(0)
    os.close(w)
    with os.fdopen(r, "rb") as f:
        msg = f.read().decode()
    os.waitpid(pid, 0)
    assert msg.startswith(f"cannot read the config {cfg}: permission denied (running as ")
    assert msg.endswith(f"pacman 7 runs torfetch as its DownloadUser): make it readable with: chmod 644 {cfg}")


def test_fifo_large_binary_and_directory_configs(tmp_path: Path) -> None:
    fifo = tmp_path / "fifo.toml"
    os.mkfifo(fifo)
    with pytest.raises(ConfigError, match="is not a regular file"):
        read_config_file(fifo, spec=SPEC)  # O_NONBLOCK: no hang waiting for a writer
    with pytest.raises(ConfigError, match="is not a regular file|is a directory"):
        read_config_file(tmp_path, spec=SPEC)
    big = write_config(tmp_path, "# " + "x" * configfile.CONFIG_MAX_BYTES + "\n")
    with pytest.raises(ConfigError, match="is larger than 1048576 bytes"):
        read_config_file(big, spec=SPEC)
    big.write_bytes(b'isolate = "\xff"\n')
    with pytest.raises(ConfigError, match="is not UTF-8 text"):
        read_config_file(big, spec=SPEC)


# --- contrib, as written -----------------------------------------------------------------------------------------


def test_contrib_example_loads_as_written() -> None:
    path = ROOT / "contrib" / "torfetch.toml"
    assert not os.stat(path).st_mode & stat.S_IWOTH
    c = read_config_file(path, spec=SPEC)
    assert c is not None and len(c.repos) == 1
    repo = c.repos[0]
    assert set(repo.values) == {"transparency_url", "pubkey"}
    for url in ("https://mirror.example.org/myrepo/hello-1.0-1-x86_64.pkg.tar.zst",):
        assert c.repo_for(url) is repo
    assert c.repo_for("https://mirror.example.org/myrepo-evil/hello-1.0-1-x86_64.pkg.tar.zst") is None
    o = cli.options_from_args(cli.build_parser().parse_args(
        ["--config", str(path), "-O", "o", "https://mirror.example.org/myrepo/hello-1.0-1-x86_64.pkg.tar.zst"]))
    assert o.pubkey == repo.values["pubkey"] and o.transparency_url == "https://mirror.example.org/myrepo/sigs"
    assert not o.direct and o.proxy is None  # Tor by default


def test_contrib_pacman_snippet_is_the_bare_command() -> None:
    lines = [ln for ln in (ROOT / "contrib" / "pacman.conf.snippet").read_text().splitlines()
             if ln.strip() and not ln.lstrip().startswith("#")]
    assert len(lines) == 1
    key, _, value = lines[0].partition("=")
    assert key.strip() == "XferCommand" and shlex.split(value) == ["/usr/bin/torfetch", "-O", "%o", "%u"]
    ns = cli.build_parser().parse_args([a.replace("%o", "out").replace("%u", "http://h.test/core.db")
                                        for a in shlex.split(value)[1:]])
    assert ns.output == Path("out") and ns.url == "http://h.test/core.db"


# --- fuzz: whatever the file says, the parser answers with a ConfigError or a ConfigFile ------------------------

from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402

_KEYS = sorted(SPEC.top) + sorted(SPEC.repo) + ["match", "repo", "bogus"]
_VALUES = st.one_of(st.booleans(), st.integers(), st.floats(), st.text(max_size=40),
                    st.sampled_from(['"socks5h://127.0.0.1:9050"', '"https://a.test/r"', '"/abs/path"']),
                    st.lists(st.text(max_size=10), max_size=3))


def _toml_value(v: object) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, float):
        return {"nan": "nan", "inf": "inf", "-inf": "-inf"}.get(repr(v), repr(v))
    if isinstance(v, str) and v.startswith('"'):
        return v
    if isinstance(v, (str, list)):
        import json

        return json.dumps(v)
    return str(v)


@settings(max_examples=1000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.tuples(st.booleans(), st.sampled_from(_KEYS), _VALUES), max_size=8))
def test_fuzz_structured_documents(items: list[tuple[bool, str, object]]) -> None:
    lines = []
    for new_table, key, value in items:
        if new_table:
            lines.append("[[repo]]")
        lines.append(f"{key} = {_toml_value(value)}")
    try:
        c = parse("\n".join(lines) + "\n")
    except ConfigError as exc:
        assert "\n" not in exc.one_line()
    else:
        for url in ("https://a.test/r/x-1-1-any.pkg.tar.zst", "file:///x"):
            c.repo_for(url)


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=300))
def test_fuzz_any_text(text: str) -> None:
    try:
        parse(text)
    except ConfigError:
        pass


@settings(max_examples=1000, deadline=None)
@given(st.text(max_size=80), st.text(max_size=80))
def test_fuzz_prefix_matching(prefix: str, url: str) -> None:
    try:
        m = configfile.URLPrefix.parse(prefix)
    except ConfigError:
        return
    if m.covers(url):  # a covered URL has the prefix's scheme and host, and continues its path on a boundary
        assert configfile._split(url, allow_query=True)[:2] == (m.scheme, m.netloc)
