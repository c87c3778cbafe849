"""The client of uWSGI's stats server (``stats = ...``): one read of its JSON.

Worker 1 reads it for the harakiri count of server metrics; the Docker checker reads it from
another container for the per-worker request counts.
"""

from __future__ import annotations

import json
import socket
from typing import Any


class StatsError(ValueError):
    """The address answered, but not with the stats server's JSON object."""


def parse_stats_address(address: str) -> tuple[int, Any]:
    """(address family, connect target) of a uWSGI ``stats`` value: ``host:port``, ``:port`` or a path."""
    if "/" in address or not address.rpartition(":")[2].isdigit():
        return socket.AF_UNIX, address
    host, _, port = address.rpartition(":")
    return socket.AF_INET, (host.strip("[]") or "127.0.0.1", int(port))


def read_stats_server(address: str, http: bool = False, timeout: float = 2.0) -> dict[str, Any]:
    """The stats server's JSON object (uWSGI writes it and closes the connection); :class:`StatsError`
    when what answered is not that."""
    family, target = parse_stats_address(address)
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.settimeout(timeout)
        sock.connect(target)
        if http:
            sock.sendall(b"GET / HTTP/1.0\r\n\r\n")
        chunks = []
        while True:
            chunk = sock.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    body = b"".join(chunks)
    if http:
        body = body.partition(b"\r\n\r\n")[2]
    try:
        data = json.loads(body.decode("utf-8", "replace"))
    except ValueError as exc:
        raise StatsError(f"stats server at {address} sent no JSON ({len(body)} bytes): {exc}") from None
    if not isinstance(data, dict):
        raise StatsError(f"stats server at {address} sent {type(data).__name__}, not an object")
    return data
