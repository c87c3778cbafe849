"""What the check makes of the user's ini before running it: the protocol it speaks to the app
(harness.listener, tools/uwsgi_client.py) and what it does not start (harness.side_jobs)."""

from __future__ import annotations

import socket
import struct
import threading

import pytest

from otel_uwsgi.tools import uwsgi_client
from otel_uwsgi.tools.harness import listener, owned_overrides, side_jobs


def test_a_uwsgi_socket_alone_is_tested_over_the_uwsgi_protocol():
    assert listener([("socket", "/run/app.sock"), ("module", "app")]) == "uwsgi"
    assert listener([("uwsgi-socket", ":3031")]) == "uwsgi"
    assert listener([("socket", ":3031"), ("http", ":8000")]) == "http"  # the HTTP router is what serves
    assert listener([("socket", ":3031"), ("protocol", "http")]) == "http"
    assert listener([("http-socket", ":8000")]) == "http" and listener([("fastcgi-socket", ":9000")]) == "http"
    assert owned_overrides(5, "http://r", "/j", protocol="uwsgi")["socket"] == "127.0.0.1:5"
    assert "socket" not in owned_overrides(5, "http://r", "/j")


def test_daemons_jobs_mules_spooler_hooks_and_cache_files_are_taken_out():
    items = [
        ("attach-daemon", "celery worker"), ("smart-attach-daemon2", "cmd=x"), ("cron", "-1 -1 -1 -1 -1 job"),
        ("unique-cron", "0 -1 -1 -1 -1 job"), ("mule", "consumer.py"), ("mules", "2"), ("spooler", "/var/spool"),
        ("spooler-processes", "2"), ("exec-asap", "touch x"), ("hook-pre-app", "exec:y"),
        ("cache2", "name=c,items=100,store=/var/cache.db,store_sync=5"), ("sharedarea", "file=/var/area,size=4096"),
        ("module", "app"), ("processes", "4"), ("cache2", "name=m,items=10"),
    ]
    jobs = side_jobs(items)
    assert jobs.drop == {"attach-daemon", "smart-attach-daemon2", "cron", "unique-cron", "mule", "mules", "spooler",
                         "spooler-processes", "exec-asap", "hook-pre-app", "sharedarea"}
    assert jobs.overrides == {"cache2": ["name=c,items=100", "name=m,items=10"]}  # the caches stay, in memory
    assert jobs.named == ["attach-daemon", "smart-attach-daemon2", "cron", "unique-cron", "mule", "mules", "spooler",
                          "spooler-processes", "exec-asap", "hook-pre-app", "cache2 store", "sharedarea file"]
    nothing = side_jobs([("module", "app"), ("cache2", "name=m,items=10"), ("sharedarea", "4")])
    assert not nothing.drop and not nothing.overrides and not nothing.named


def test_a_uwsgi_packet_is_framed_as_nginx_frames_it():
    packet = uwsgi_client.encode({"A": "bc"}, b"body")
    assert packet == bytes([0]) + struct.pack("<H", 7) + bytes([0]) + b"\x01\x00A\x02\x00bc" + b"body"
    with pytest.raises(uwsgi_client.ProtocolError):
        uwsgi_client.encode({"X": "y" * 70000})
    assert uwsgi_client.status_of(b"HTTP/1.1 404 Not Found\r\n\r\n") == 404
    with pytest.raises(uwsgi_client.ProtocolError):
        uwsgi_client.status_of(b"garbage")


def test_get_sends_the_vars_and_reads_the_status():
    """Against a one-shot server that parses the packet as uWSGI does."""
    server = socket.create_server(("127.0.0.1", 0))
    seen: dict[str, str] = {}

    def serve() -> None:
        connection, _ = server.accept()
        with connection:
            head = connection.recv(4, socket.MSG_WAITALL)
            size = struct.unpack("<H", head[1:3])[0]
            block = connection.recv(size, socket.MSG_WAITALL)
            while block:
                (n,) = struct.unpack("<H", block[:2])
                key, block = block[2 : 2 + n].decode(), block[2 + n :]
                (n,) = struct.unpack("<H", block[:2])
                seen[key], block = block[2 : 2 + n].decode(), block[2 + n :]
            connection.sendall(b"HTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n")

    thread = threading.Thread(target=serve)
    thread.start()
    try:
        status = uwsgi_client.get("127.0.0.1", server.getsockname()[1], "/trace?n=2", timeout=10)
    finally:
        thread.join(10)
        server.close()
    assert status == 201
    assert seen["REQUEST_METHOD"] == "GET" and seen["PATH_INFO"] == "/trace" and seen["QUERY_STRING"] == "n=2"
    assert seen["REQUEST_URI"] == "/trace?n=2" and seen["HTTP_HOST"].startswith("127.0.0.1:")


def test_the_report_says_first_what_was_tested_and_what_the_collector_answered():
    from otel_uwsgi.tools.collector import Probe
    from otel_uwsgi.tools.harness import parse_log
    from otel_uwsgi.tools.verdict import evaluate, render

    report = evaluate(parse_log(""), [], 1)
    report.target = "testing the uwsgi protocol on 127.0.0.1:5 as nginx would"
    report.collector = [Probe("traces", "http://c:4318/v1/traces", True, "accepted (HTTP 200 OK)").as_dict()]
    lines = render(report).splitlines()
    assert lines[0] == report.target
    assert "collector: traces to http://c:4318/v1/traces: accepted (HTTP 200 OK)" in lines
