"""Whether a service can be reached, asked once and quickly: libraries that retry for tens of seconds offline are
called only when this says yes."""

from __future__ import annotations

import socket


def reachable(host: str, port: int = 443, timeout_s: float = 3.0) -> bool:
    try:
        socket.create_connection((host, port), timeout=timeout_s).close()
        return True
    except OSError:
        return False
