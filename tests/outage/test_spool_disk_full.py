"""The spool's disk fills up under ingest load: the API answers 503, never a false success.

As root (CI and the development machines) the spool lives on a real 1 MB tmpfs mount, so
the failure is the file system's own ENOSPC. Without root the test falls back to
RLIMIT_FSIZE on the server (writes past the limit fail with EFBIG; Python ignores SIGXFSZ),
which exercises the same error path. After room is made (the mount grown), requests succeed
again; every acknowledged event is in the spool, and nothing refused is.
"""

import base64
import json
import os
import resource
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.error import HTTPError
from urllib.request import Request, urlopen

import pytest

from tests.conftest import gunicorn

pytestmark = [pytest.mark.slow, pytest.mark.django_db]

EVENTS = 20


@pytest.fixture
def small_disk(tmp_path) -> Iterator[tuple[Path, str]]:
    folder = tmp_path / "spool-disk"
    folder.mkdir()
    if os.geteuid() == 0:
        subprocess.run(["mount", "-t", "tmpfs", "-o", "size=1m", "tmpfs", str(folder)], check=True)
        try:
            yield folder, "tmpfs"
        finally:
            subprocess.run(["umount", "-l", str(folder)], check=False)
    else:
        yield folder, "rlimit"


def batch(number: int) -> bytes:
    operations = [
        {"type": "person", "action": "event", "identifiers": {"id": f"disk-{number}"},
         "name": "filler", "id": f"disk-{number}-{n}", "attributes": {"pad": "x" * 800}}
        for n in range(EVENTS)
    ]  # fmt: skip
    return json.dumps({"batch": operations}).encode()


def post(port: str, key, body: bytes) -> tuple[int, dict]:
    auth = base64.b64encode(f"{key.site_id}:{key.api_key}".encode()).decode()
    request = Request(f"http://127.0.0.1:{port}/api/v2/batch", data=body, headers={
        "Authorization": f"Basic {auth}", "Content-Type": "application/json"})  # fmt: skip
    try:
        with urlopen(request, timeout=30) as answer:
            return answer.status, dict(answer.headers)
    except HTTPError as error:
        return error.code, dict(error.headers)


def spooled_ids(path: Path) -> list[str]:
    import sqlite3

    db = sqlite3.connect(path)
    try:
        return [json.loads(row[0])["dedupe"] for row in db.execute("SELECT payload FROM items")]
    finally:
        db.close()


def test_a_full_spool_disk_answers_503_and_never_a_false_success(
    test_database_url, committed_keys, small_disk, monkeypatch
):
    folder, how = small_disk
    spool_path = folder / "spool.sqlite3"
    env = {"INGEST_SPOOL_PATH": str(spool_path), "INGEST_RATE_LIMIT_PER_SECOND": "0"}
    if how == "rlimit":
        limit = 1024 * 1024
        real_popen = subprocess.Popen

        def limited(*args, **kwargs):
            kwargs["preexec_fn"] = lambda: resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
            return real_popen(*args, **kwargs)

        monkeypatch.setattr(subprocess, "Popen", limited)
    key = committed_keys["acme"]
    acknowledged, refused = [], []
    with gunicorn(test_database_url, workers=2, env=env) as port:
        for number in range(200):
            status, headers = post(port, key, batch(number))
            assert status in (200, 503), status
            (acknowledged if status == 200 else refused).append(number)
            if status == 503:
                assert headers.get("Retry-After")
            if len(refused) >= 5:
                break
        assert refused, "the disk never filled"
        assert acknowledged, "nothing was accepted before the disk filled"
        # The node says so to its load balancer too.
        with pytest.raises(HTTPError) as unready:
            urlopen(Request(f"http://127.0.0.1:{port}/readyz", headers={"Host": "localhost"}))
        assert unready.value.code == 503
    # Whatever was acknowledged is on disk, whole; nothing of a refused request is.
    ids = spooled_ids(spool_path)
    expected = {f"disk-{n}-{e}" for n in acknowledged for e in range(EVENTS)}
    assert set(ids) == expected
    assert len(ids) == len(expected)
    print(f"\n[{how}] acknowledged {len(acknowledged)} batches, then 503 for {len(refused)}")
    if how == "tmpfs":
        # Room again: the same server configuration accepts and nothing earlier was harmed.
        subprocess.run(["mount", "-o", "remount,size=8m", str(folder)], check=True)
        with gunicorn(test_database_url, workers=1, env=env) as port:
            assert post(port, key, batch(999))[0] == 200
        assert len(spooled_ids(spool_path)) == len(expected) + EVENTS
