"""Rebuilder base URLs: one spelling each, API paths appended to the base's own path."""

from __future__ import annotations

import pytest

from torfetch.errors import ConfigError
from torfetch.net.rebuilder_url import endpoint, normalise_rebuilder_url


def test_base_url_keeps_its_path() -> None:
    assert normalise_rebuilder_url("HTTPS://Wolfpit.TEST/rebuild") == "https://wolfpit.test/rebuild/"
    assert endpoint("https://wolfpit.test/rebuild/", "api/v0/pkgs/list", {"distro": "archlinux", "name": "a+b"}) == (
        "https://wolfpit.test/rebuild/api/v0/pkgs/list?distro=archlinux&name=a%2Bb")
    assert endpoint("https://r.test", "/api/v1/meta/public-keys") == "https://r.test/api/v1/meta/public-keys"


def test_malformed_urls_are_config_errors() -> None:
    for bad in ("http://[::1/rebuild", "ftp://r.test/", "https:///x", "https://r.test/?q=1", "https://r.test/#f"):
        with pytest.raises(ConfigError):
            normalise_rebuilder_url(bad)


def test_default_port_is_one_spelling() -> None:
    # "https://r.test:443/a" is the rebuilder "https://r.test/a": spelled twice it would count twice
    # towards --required-rebuild-confirms
    assert normalise_rebuilder_url("https://R.test:443/a") == "https://r.test/a/"
    assert normalise_rebuilder_url("http://r.test:80") == "http://r.test/"
    assert normalise_rebuilder_url("http://[::1]:80/r") == "http://[::1]/r/"
    assert normalise_rebuilder_url("https://r.test:8443/a") == "https://r.test:8443/a/"  # another port: another service
    assert normalise_rebuilder_url("http://r.test:443/") == "http://r.test:443/"
