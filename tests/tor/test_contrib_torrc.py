"""The private network's client runs contrib/torrc's SocksPort line, so the tor tests exercise the shipped snippet."""

from __future__ import annotations

import warnings

from tests.tornet import CONTRIB_TORRC, TorNetwork


def test_client_torrc_has_the_contrib_socksport_line(tornet: TorNetwork) -> None:
    assert tornet.client is not None
    [shipped] = [ln for ln in CONTRIB_TORRC.read_text().splitlines() if ln.startswith("SocksPort ")]
    assert "IsolateSOCKSAuth" in shipped.split()
    want = shipped.replace("127.0.0.1:9050", f"127.0.0.1:{tornet.socks_port}")
    assert want in (tornet.client.datadir / "torrc").read_text().splitlines()
    # and the running client took it: tor reports the SocksPort setting as that line gives it
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        from stem.control import Controller

        with Controller.from_port(port=tornet.control_port) as ctl:
            ctl.authenticate()
            assert ctl.get_conf("SocksPort", multiple=True) == [want.split(None, 1)[1]]
            assert ctl.get_info("net/listeners/socks") == f'"127.0.0.1:{tornet.socks_port}"'
