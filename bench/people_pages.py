"""People pages at size, through the real HTTP stack (gunicorn), with p50/p95 and the number
of queries per page, beside a static file served in the same run.

    python3 -m uv run python bench/people_pages.py [--people 1000000] [--events 10000000]
"""

import argparse
import http.client
import os
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database  # noqa: E402
from bench.generate_account import generate, heavy_person_ids  # noqa: E402
from tests.drills import owner_session_key  # noqa: E402

REQUESTS = 200
THREADS = 4


def signed_in_cookie(account) -> str:
    """A session cookie for the account's only user (Django must be set up)."""
    return f"ferry_session={owner_session_key(account)}"


def timed(port: int, host: str, path: str, cookie: str) -> list[float]:
    durations: list[float] = []
    lock = threading.Lock()

    def worker() -> None:
        connection = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        for _ in range(REQUESTS // THREADS):
            started = time.perf_counter()
            connection.request("GET", path, headers={"Host": host, "Cookie": cookie})
            response = connection.getresponse()
            response.read()
            if response.status != 200:
                raise RuntimeError(f"{path} answered {response.status}")
            with lock:
                durations.append((time.perf_counter() - started) * 1000)

    threads = [threading.Thread(target=worker) for _ in range(THREADS)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return durations


def queries_per_page(account, user, paths: list[str]) -> dict[str, int]:
    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    client = Client(HTTP_HOST=account.host)
    with account:
        client.force_login(user)
    counts = {}
    for path in paths:
        with CaptureQueriesContext(connection) as captured:
            response = client.get(path)
            assert response.status_code == 200, (path, response.status_code)
        counts[path] = len(captured)
    return counts


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=1_000_000)
    parser.add_argument("--events", type=int, default=10_000_000)
    options = parser.parse_args()
    with ferry_database() as (folder, url, account_info):
        started = time.perf_counter()
        generate(url, account_info["schema"], options.people, options.events)
        generated_in = time.perf_counter() - started
        heavy = heavy_person_ids(url, account_info["schema"])[0]
        env = {
            **os.environ,
            "DATABASE_URL": url,
            "FERRY_VAR_DIR": str(folder / "var"),
            "LOG_LEVEL": "WARNING",
        }
        os.environ.update(env)
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")
        import django

        django.setup()
        from django.core.management import call_command

        from accounts.models import Account, User

        call_command("collectstatic", interactive=False, verbosity=0)
        account = Account.objects.get(slug="bench")
        cookie = signed_in_cookie(account)
        with account:
            user = User.objects.get()
        middle = options.people // 2
        pages = [
            ("people list, newest first", "/people/"),
            ("search by email", f"/people/?q=user{middle}@"),
            ("search by customer id prefix", f"/people/?q=c{middle // 10}"),
            ("attribute value, rare (company)", "/people/?attribute=company&value=Company+1234"),
            ("attribute value, common (plan)", "/people/?attribute=plan&value=enterprise"),
            ("profile, 5,000-event timeline", f"/people/{heavy}/"),
            ("overview with 30-day chart", "/"),
        ]  # fmt: skip
        counts = queries_per_page(account, user, [path for _, path in pages])
        port = 19000 + os.getpid() % 1000
        web = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "config.wsgi", "--bind", f"127.0.0.1:{port}",
             "--workers", "2", "--log-level", "warning"], cwd=BASE_DIR, env=os.environ.copy(),
        )  # fmt: skip
        try:
            time.sleep(3)
            host = f"bench.localhost:{port}"
            results = [
                (
                    "static file (baseline)",
                    "/static/img/ferry.svg",
                    timed(port, host, "/static/img/ferry.svg", ""),
                )
            ]
            for label, path in pages:
                timed(port, host, path, cookie)  # warm the caches, as a busy server has them
                results.append((label, path, timed(port, host, path, cookie)))
        finally:
            web.terminate()
            web.wait()

    print(f"\nPeople pages at {options.people:,} people and {options.events:,} events "
          f"(generated in {generated_in:.0f} s); {REQUESTS} requests each, {THREADS} at a time\n")  # fmt: skip
    print(f"| {'page':<32} | {'p50 ms':>7} | {'p95 ms':>7} | {'queries':>7} |")
    print(f"|{'-' * 34}|{'-' * 9}|{'-' * 9}|{'-' * 9}|")
    for label, path, durations in results:
        p95 = statistics.quantiles(durations, n=20)[18]
        queries = counts.get(path, 0)
        print(
            f"| {label:<32} | {statistics.median(durations):>7.1f} | {p95:>7.1f} | {queries:>7} |"
        )


if __name__ == "__main__":
    main()
