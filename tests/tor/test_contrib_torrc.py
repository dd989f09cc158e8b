"""The private network's client runs contrib/torrc's SocksPort line, so the tor tests exercise the shipped snippet."""

from __future__ import annotations

from tests.tornet import CONTRIB_TORRC, TorNetwork


def test_client_torrc_has_the_contrib_socksport_line(tornet: TorNetwork) -> None:
    assert tornet.client is not None
    [shipped] = [ln for ln in CONTRIB_TORRC.read_text().splitlines() if ln.startswith("SocksPort ")]
    assert "IsolateSOCKSAuth" in shipped.split()
    client = (tornet.client.datadir / "torrc").read_text().splitlines()
    assert shipped.replace("127.0.0.1:9050", f"127.0.0.1:{tornet.socks_port}") in client
    # and the running client listens where that line says
    assert f"Socks listener listening on port {tornet.socks_port}" in tornet.client.log_text()
