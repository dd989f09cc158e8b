"""The Sigsum policy file format (sigsum-go doc/policy.md): logs, witnesses, groups and the quorum."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.sigsum_vectors import Key
from torfetch.errors import ConfigError, SigsumPolicyError
from torfetch.verify.sigsum_policy import MAX_POLICY_BYTES, parse_policy

VECTORS = Path(__file__).parent.parent / "vectors" / "sigsum"
LOG = Key(100)
W = [Key(200 + i) for i in range(6)]


def kh(i: int) -> bytes:
    return W[i].keyhash


def test_real_policy_file() -> None:
    p = parse_policy((VECTORS / "policy").read_bytes())
    assert len(p.logs) == 1 and len(p.witnesses) == 2
    (log,) = p.logs.values()
    assert log.url is not None and log.url.startswith("http://127.0.0.1:")
    names = {w.name for w in p.witnesses.values()}
    assert names == {"W1", "W2"}
    ks = list(p.witnesses)
    assert not p.quorum_met({ks[0]}) and not p.quorum_met({ks[1]}) and p.quorum_met(set(ks))
    assert p.required_cosignatures() == 2


def test_two_level_groups_as_in_the_spec() -> None:
    text = f"""# the example of doc/policy.md
    log {LOG.pub.hex()}
    witness X1 {W[0].pub.hex()}
    witness X2 {W[1].pub.hex()}\thttps://x2.example/
    witness X3 {W[2].pub.hex()}
    group X-witnesses 2 X1 X2 X3

    witness Y1 {W[3].pub.hex()}
    witness Y2 {W[4].pub.hex()}
    witness Y3 {W[5].pub.hex()}
    group Y-witnesses any Y1 Y2 Y3
    group X-and-Y all X-witnesses Y-witnesses
    quorum X-and-Y
    """
    p = parse_policy(text.encode())
    assert p.logs[LOG.keyhash].pubkey == LOG.pub and p.logs[LOG.keyhash].url is None
    assert p.witnesses[kh(1)].url == "https://x2.example/" and p.witnesses[kh(1)].name == "X2"
    assert p.quorum_met({kh(0), kh(2), kh(5)})
    assert not p.quorum_met({kh(0), kh(5)})  # only one X
    assert not p.quorum_met({kh(0), kh(1), kh(2)})  # no Y
    assert not p.quorum_met({kh(3), kh(4), kh(5)})
    assert p.required_cosignatures() == 3
    # keyhashes that are not the policy's count for nothing
    assert not p.quorum_met({kh(0), Key(7).keyhash, kh(5)})


def test_quorum_none_and_single_witness() -> None:
    p = parse_policy(f"log {LOG.pub.hex()}\nquorum none\n".encode())
    assert p.quorum_met(set()) and p.required_cosignatures() == 0
    p = parse_policy(f"log {LOG.pub.hex()}\nwitness A {W[0].pub.hex()}\nquorum A".encode())  # no final newline
    assert not p.quorum_met(set()) and p.quorum_met({kh(0)}) and p.required_cosignatures() == 1


def test_crlf_and_uppercase_hex() -> None:
    p = parse_policy(f"log {LOG.pub.hex().upper()}\r\nwitness A {W[0].pub.hex()}\r\nquorum A\r\n".encode())
    assert LOG.keyhash in p.logs and p.quorum_met({kh(0)})


def test_names_are_opaque_octets() -> None:
    # "K" and the Kelvin sign are different names (doc/policy.md, character set)
    text = (f"log {LOG.pub.hex()}\nwitness K {W[0].pub.hex()}\nwitness \u212a {W[1].pub.hex()}\n"
            "witness \xff-raw {}\ngroup g all K \u212a\nquorum g\n").encode("utf-8")
    text = text.replace(b"\xc3\xbf-raw {}", b"\xff-raw " + W[2].pub.hex().encode())
    p = parse_policy(text)
    assert len(p.witnesses) == 3 and p.quorum_met({kh(0), kh(1)}) and not p.quorum_met({kh(0), kh(2)})


HEADER = f"log {LOG.pub.hex()}\nwitness A {W[0].pub.hex()}\nwitness B {W[1].pub.hex()}\n"


@pytest.mark.parametrize(("body", "why"), [
    ("", "no quorum"),
    ("quorum A\nquorum B\n", "second quorum"),
    ("quorum C\n", "not a witness or group defined above"),
    ("group g all A C\nquorum g\n", "not defined above"),
    ("quorum g\ngroup g all A B\n", "not a witness or group defined above"),
    ("group g all A A\nquorum g\n", "already a member"),
    ("group g any A\ngroup h any A B\nquorum h\n", "already a member"),
    ("group g any none A\nquorum g\n", "cannot be a group member"),
    ("group g 3 A B\nquorum g\n", "outside 1..2"),
    ("group g 0 A B\nquorum g\n", "outside 1..2"),
    ("group g -1 A B\nquorum g\n", "not all, any or a number"),
    ("group g +1 A B\nquorum g\n", "not all, any or a number"),
    ("group g some A B\nquorum g\n", "not all, any or a number"),
    ("group g all\nquorum g\n", "group line is"),
    ("group A all B\nquorum A\n", "duplicate name"),
    ("group none all A\nquorum none\n", "duplicate name"),
    (f"witness A {W[2].pub.hex()}\nquorum A\n", "duplicate name"),
    (f"witness C {W[0].pub.hex()}\nquorum A\n", "duplicate witness key"),
    (f"log {LOG.pub.hex()}\nquorum A\n", "duplicate log"),
    (f"log {LOG.pub.hex()[:-2]}\nquorum A\n", "not 64 hex digits"),
    (f"log {LOG.pub.hex()} http://a http://b\nquorum A\n", "a log line is"),
    ("witness C\nquorum A\n", "a witness line is"),
    ("quorum\n", "a quorum line is"),
    ("quorum A B\n", "a quorum line is"),
    ("monitor x\nquorum A\n", "unknown keyword"),
    ("quorum A\x00\n", "control character 0x00"),
    ("quorum A\rB\n", "control character 0x0d"),
    ("quorum A\x7f\n", "control character 0x7f"),
])
def test_refused(body: str, why: str) -> None:
    with pytest.raises(SigsumPolicyError, match=why):
        parse_policy((HEADER + body).encode())


def test_refused_errors_are_config_errors_naming_the_line() -> None:
    with pytest.raises(ConfigError, match="policy line 4: unknown keyword"):
        parse_policy((HEADER + "frobnicate\nquorum A\n").encode())


def test_comments_and_blank_lines_skipped() -> None:
    p = parse_policy((HEADER + "  # group g all A B\n\t\n#quorum B\nquorum A\n").encode())
    assert p.quorum_met({kh(0)}) and not p.quorum_met({kh(1)})


def test_no_log_refused() -> None:
    with pytest.raises(SigsumPolicyError, match="no log"):
        parse_policy(f"witness A {W[0].pub.hex()}\nquorum A\n".encode())


def test_size_cap() -> None:
    big = HEADER + "#" * MAX_POLICY_BYTES + "\nquorum A\n"
    with pytest.raises(SigsumPolicyError, match="larger than"):
        parse_policy(big.encode())


def test_entry_cap() -> None:
    many = "".join(f"witness w{i} {Key(1000 + i).pub.hex()}\n" for i in range(257))
    with pytest.raises(SigsumPolicyError, match="more than 256 witnesses"):
        parse_policy((HEADER + many + "quorum A\n").encode())
