"""The only package that touches sockets, httpx and stem."""
