"""torfetch: a Tor-routed, verifying downloader for pacman (XferCommand)."""

__version__ = "0.1.0"
