"""A web worker killed with SIGKILL in the middle of a request.

The client has sent its headers and half of a batch when its worker dies. It must see an
error (the connection closes with no answer), nothing of the half-received request may be
stored, and when it sends the batch again (as the client libraries retry) the restarted
worker stores it exactly once. The same holds for a dashboard write.
"""

import base64
import json
import os
import signal
import socket
import sqlite3
import time
from pathlib import Path

import pytest

from tests.conftest import gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db]


def server_workers(port: str) -> set[int]:
    """The gunicorn worker processes serving `port` (children of its master)."""
    matching = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode()
            parent = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
        except (OSError, ValueError, IndexError):
            continue
        if "gunicorn" in command and f"127.0.0.1:{port}" in command:
            matching[int(entry.name)] = parent
    return {pid for pid, parent in matching.items() if parent in matching}


def send_half(port: str, headers: dict[str, str], body: bytes, path: str) -> socket.socket:
    sock = socket.create_connection(("127.0.0.1", int(port)), timeout=20)
    head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
    head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
    sock.sendall(head.encode() + body[: len(body) // 2])
    return sock


def send_whole(port: str, headers: dict[str, str], body: bytes, path: str) -> int:
    with socket.create_connection(("127.0.0.1", int(port)), timeout=20) as sock:
        head = f"POST {path} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {len(body)}\r\n"
        head += "Connection: close\r\n"
        head += "".join(f"{name}: {value}\r\n" for name, value in headers.items()) + "\r\n"
        sock.sendall(head.encode() + body)
        answer = b""
        while chunk := sock.recv(65536):
            answer += chunk
    return int(answer.split(b" ", 2)[1])


def test_a_worker_killed_mid_request_stores_nothing_and_the_retry_stores_it_once(
    test_database_url, committed_keys, tmp_path
):
    spool_path = tmp_path / "spool.sqlite3"
    key = committed_keys["acme"]
    auth = base64.b64encode(f"{key.site_id}:{key.api_key}".encode()).decode()
    headers = {"Authorization": f"Basic {auth}", "Content-Type": "application/json"}
    operations = [{"type": "person", "action": "event", "identifiers": {"id": "killed-1"},
                   "name": "purchase", "id": f"killed-{n}"} for n in range(200)]  # fmt: skip
    body = json.dumps({"batch": operations}).encode()
    env = {"INGEST_SPOOL_PATH": str(spool_path), "INGEST_RATE_LIMIT_PER_SECOND": "0"}
    with gunicorn(test_database_url, workers=1, env=env) as port:
        assert send_whole(port, headers, b'{"batch": []}', "/api/v2/batch") == 400  # warm
        [worker] = server_workers(port)
        sock = send_half(port, headers, body, "/api/v2/batch")
        time.sleep(0.5)  # the worker is now reading the rest of the body
        os.kill(worker, signal.SIGKILL)
        try:
            answer = sock.recv(65536)
        except ConnectionResetError:
            answer = b""
        sock.close()
        assert answer == b"", "a killed worker cannot have answered"
        db = sqlite3.connect(spool_path)
        assert db.execute("SELECT count(*) FROM items").fetchone()[0] == 0
        # gunicorn starts a new worker; the client sends the batch again.
        deadline = time.monotonic() + 30
        while not (server_workers(port) - {worker}) and time.monotonic() < deadline:
            time.sleep(0.2)
        assert send_whole(port, headers, body, "/api/v2/batch") == 200
        stored = [json.loads(row[0])["dedupe"] for row in db.execute("SELECT payload FROM items")]
        db.close()
    assert sorted(stored) == sorted(f"killed-{n}" for n in range(200))
