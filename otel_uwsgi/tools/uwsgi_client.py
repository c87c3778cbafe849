"""A request over the uwsgi protocol, as nginx's ``uwsgi_pass`` sends it.

``otel-uwsgi check`` uses it when the ini's only listener is a uwsgi ``socket``: the app is
tested on the path its traffic really takes, not over an HTTP socket the service does not have.

The framing: a 4-byte header (modifier1 = 0, the size of the vars block as 16-bit little-endian,
modifier2 = 0), then the vars (each key and value prefixed by its 16-bit little-endian length),
then the body.  uWSGI answers with a raw HTTP response and closes the connection.
"""

from __future__ import annotations

import socket
import struct
from collections.abc import Mapping
from urllib.parse import urlsplit

_SIZE = struct.Struct("<H")


class ProtocolError(OSError):
    """An answer that is not an HTTP response, or a var too long for the protocol."""


def encode(variables: Mapping[str, str], body: bytes = b"") -> bytes:
    """One uwsgi-protocol packet: header, vars, body."""
    block = bytearray()
    for key, value in variables.items():
        for item in (key.encode("latin-1"), value.encode("latin-1")):
            if len(item) > 0xFFFF:
                raise ProtocolError(f"uwsgi var {key} is longer than 65535 bytes")
            block += _SIZE.pack(len(item)) + item
    if len(block) > 0xFFFF:
        raise ProtocolError("uwsgi vars block is longer than 65535 bytes")
    return bytes([0]) + _SIZE.pack(len(block)) + bytes([0]) + bytes(block) + body


def request_vars(host: str, port: int, target: str, method: str = "GET", body: bytes = b"") -> dict[str, str]:
    """The CGI variables nginx's ``uwsgi_params`` send for ``method target`` (with a Host header)."""
    parts = urlsplit(target)
    return {
        "REQUEST_METHOD": method,
        "REQUEST_URI": target,
        "PATH_INFO": parts.path or "/",
        "QUERY_STRING": parts.query,
        "CONTENT_TYPE": "",
        "CONTENT_LENGTH": str(len(body)) if body else "",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REQUEST_SCHEME": "http",
        "SERVER_NAME": host,
        "SERVER_PORT": str(port),
        "REMOTE_ADDR": "127.0.0.1",
        "REMOTE_PORT": "0",
        "HTTP_HOST": f"{host}:{port}",
        "HTTP_USER_AGENT": "otel-uwsgi-check",
    }


def status_of(response: bytes) -> int:
    """The status code of a raw HTTP response (``HTTP/1.1 200 OK``...)."""
    line = response.split(b"\r\n", 1)[0].split(b"\n", 1)[0]
    parts = line.split(None, 2)
    if len(parts) < 2 or not parts[0].startswith(b"HTTP/") or not parts[1].isdigit():
        raise ProtocolError(f"not an HTTP response: {line[:80]!r}")
    return int(parts[1])


def get(host: str, port: int, path: str, timeout: float = 30.0) -> int:
    """One GET over the uwsgi protocol on its own connection; the status code."""
    with socket.create_connection((host, port), timeout=timeout) as connection:
        connection.sendall(encode(request_vars(host, port, path)))
        chunks = []
        while True:
            chunk = connection.recv(65536)
            if not chunk:
                break
            chunks.append(chunk)
    return status_of(b"".join(chunks))
