"""Policies that look valid but would let one key stand for two roles: refused when the policy is read."""

from __future__ import annotations

import pytest

from tests.sigsum_vectors import Key, TestLog, message_of
from torfetch.errors import SigsumPolicyError
from torfetch.verify.sigsum import verify_proof
from torfetch.verify.sigsum_policy import parse_policy

LOG = Key(100)
SUB = Key(5)


@pytest.mark.parametrize("text", [
    f"log {LOG.pub.hex()}\nwitness W {LOG.pub.hex()}\nquorum W\n",
    f"witness W {LOG.pub.hex().upper()}\nlog {LOG.pub.hex()}\nquorum W\n",  # either order, any hex case
])
def test_a_witness_with_the_logs_key_is_refused(text: str) -> None:
    # the log's operator alone would meet the quorum: the "witness" is no independent check of the log
    with pytest.raises(SigsumPolicyError, match="a log cannot witness itself"):
        parse_policy(text.encode())


def test_the_log_alone_cosigning_as_its_own_witness_never_verifies() -> None:
    # what the refusal prevents: a proof whose only cosignature is by the log's own key
    log = TestLog(key=LOG, witnesses=[LOG])
    i = log.add_message(SUB, message_of(b"pkg"))
    log.add_filler(2)
    with pytest.raises(SigsumPolicyError):
        policy = parse_policy(log.policy_text())
        verify_proof(log.proof(i), message_of(b"pkg"), SUB.pub, policy, "f")
