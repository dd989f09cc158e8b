"""Pure verification logic: bytes in, typed result out. No I/O, no trio, no httpx."""
