"""Broadcast send rate to a local SMTP server (aiosmtpd in a process of its own).

A segment of N people, a Markdown broadcast with placeholders and two tracked links, sent by
the real sender (claim, fill, SMTP over one reused connection, record) with no throttle. The
baseline in the same run: the same number of identical pre-built messages pushed through one
smtplib connection to the same server, i.e. what the server and the socket alone allow.

    python3 -m uv run python bench/messaging_send.py [--people 20000] [--senders 1 2]
"""

import argparse
import multiprocessing
import os
import smtplib
import socket
import subprocess
import sys
import time
from pathlib import Path

BASE_DIR = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(BASE_DIR))

from bench._cluster import ferry_database  # noqa: E402

SERVER = """
import asyncio, sys
from aiosmtpd.controller import Controller
class Count:
    received = 0
    async def handle_DATA(self, server, session, envelope):
        Count.received += 1
        return "250 OK"
controller = Controller(Count(), hostname="127.0.0.1", port=int(sys.argv[1]))
controller.start()
print("ready", flush=True)
sys.stdin.read()
controller.stop()
"""

BODY = """Hi {{ customer.first_name | default: "there" }},

Your **{{ customer.plan }}** plan now includes faster exports.
[Read the changelog](https://example.com/changelog) or [see pricing](https://example.com/pricing).

Thanks, the team
"""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def baseline(port: int, count: int) -> float:
    """Messages per second for identical pre-built messages over one connection."""
    from django.core.mail import EmailMultiAlternatives

    text = ("text " * 14 + "\n") * 6
    message = EmailMultiAlternatives("Hello", text, "news@example.com", ["a@example.com"])
    message.attach_alternative(("<p>" + "html " * 14 + "</p>\n") * 8, "text/html")
    mime = message.message()
    data = mime.as_bytes(policy=mime.policy.clone(linesep="\r\n"))
    started = time.perf_counter()
    with smtplib.SMTP("127.0.0.1", port) as smtp:
        for n in range(count):
            smtp.sendmail("news@example.com", [f"p{n}@example.com"], data)
    return count / (time.perf_counter() - started)


def setup_broadcast(url: str, schema: str, people: int) -> int:
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f'SET search_path TO "{schema}"')
        conn.execute("DELETE FROM messaging_broadcast")
        conn.execute("DELETE FROM segments_membership")
        conn.execute("DELETE FROM segments_segment")
        if not conn.execute("SELECT 1 FROM segments_person LIMIT 1").fetchone():
            conn.execute(
                """
                INSERT INTO segments_person (customer_id, email, attributes, attribute_times,
                    unsubscribed, created_at, updated_at)
                SELECT 'c' || n, 'user' || n || '@example.com',
                       jsonb_build_object('first_name', 'Name' || n,
                                          'plan', (ARRAY['free','pro','team'])[1 + n %% 3]),
                       '{}', false, now(), now()
                FROM generate_series(1, %s) AS n
                """,
                [people],
            )
        segment = conn.execute(
            """INSERT INTO segments_segment (name, description, kind, depends_on, time_dependent,
                   member_count, created_by, created_at, updated_at)
               VALUES ('All', '', 'manual', '[]', false, %s, '', now(), now()) RETURNING id""",
            [people],
        ).fetchone()[0]
        conn.execute(
            "INSERT INTO segments_membership (segment_id, person_id, entered_at) "
            "SELECT %s, id, now() FROM segments_person",
            [segment],
        )
        return conn.execute(
            """INSERT INTO messaging_broadcast (name, subject, from_email, reply_to, body_format,
                   body, text_body, segment_id, state, send_at, created_by, created_at, updated_at,
                   recipients, skipped, sent, delivered, opened, clicked, bounced, spammed,
                   failed, unsubscribed)
               VALUES ('Bench', 'Hello {{ customer.first_name }}', 'News <news@example.com>', '',
                   'markdown', %s, '', %s, 'scheduled', now(), '', now(), now(),
                   0, 0, 0, 0, 0, 0, 0, 0, 0, 0) RETURNING id""",
            [BODY, segment],
        ).fetchone()[0]


def sender(broadcast_id: int, slug: str, results) -> None:
    import django

    django.setup()
    from django.db import connection

    from accounts.models import Account
    from messaging.models import Broadcast
    from messaging.sending import Throttle, send_broadcast

    with Account.objects.get(slug=slug):
        # Queued before the senders start; they share the queue (SKIP LOCKED claims).
        broadcast = Broadcast.objects.get(pk=broadcast_id)
        results.put(send_broadcast(broadcast, throttle=Throttle(0), batch_size=200))
    connection.close()


def run_senders(broadcast_id: int, processes: int) -> tuple[float, int]:
    import django

    django.setup()
    from django.utils import timezone

    from accounts.models import Account
    from messaging.models import Broadcast
    from messaging.sending import queue_recipients

    with Account.objects.get(slug="bench"):
        broadcast = Broadcast.objects.get(pk=broadcast_id)
        queue_started = time.perf_counter()
        queue_recipients(broadcast, timezone.now())
        queued_in = time.perf_counter() - queue_started
    from django.db import connection

    connection.close()
    results = multiprocessing.Queue()
    started = time.perf_counter()
    workers = [
        multiprocessing.Process(target=sender, args=(broadcast_id, "bench", results))
        for _ in range(processes)
    ]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - started
    handled = sum(results.get() for _ in workers)
    return handled / elapsed, round(queued_in * 1000)


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--people", type=int, default=20_000)
    parser.add_argument("--senders", type=int, nargs="+", default=[1, 2])
    options = parser.parse_args()
    multiprocessing.set_start_method("fork")
    port = free_port()
    server = subprocess.Popen(
        [sys.executable, "-c", SERVER, str(port)], stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        text=True,
    )  # fmt: skip
    assert server.stdout.readline().strip() == "ready"
    rows = []
    try:
        with ferry_database() as (folder, url, account):
            os.environ.update({
                "DATABASE_URL": url, "FERRY_VAR_DIR": str(folder / "var"), "LOG_LEVEL": "WARNING",
                "BROADCAST_SMTP_HOST": "127.0.0.1", "BROADCAST_SMTP_PORT": str(port),
                "BROADCAST_SMTP_USE_TLS": "false",
                "DJANGO_SETTINGS_MODULE": "config.settings",
            })  # fmt: skip
            import django

            django.setup()
            rows.append(
                (
                    "smtplib, identical pre-built messages (baseline)",
                    baseline(port, options.people),
                    "-",
                )
            )
            for processes in options.senders:
                broadcast = setup_broadcast(url, account["schema"], options.people)
                rate, queued_ms = run_senders(broadcast, processes)
                rows.append((f"Ferry sender, {processes} process(es)", rate, f"{queued_ms:,}"))
    finally:
        server.stdin.close()
        server.wait(timeout=10)
    print(f"\nBroadcast to {options.people:,} people, local aiosmtpd, {os.cpu_count()} cores\n")
    print(f"| {'sender':<50} | {'messages/s':>10} | {'queue ms':>8} |")
    print(f"|{'-' * 52}|{'-' * 12}|{'-' * 10}|")
    for label, rate, queued in rows:
        print(f"| {label:<50} | {rate:>10,.0f} | {queued:>8} |")


if __name__ == "__main__":
    main()
