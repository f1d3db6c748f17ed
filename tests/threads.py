"""Running test code on a thread of its own, with its own database connection."""

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

from django.db import connection


def in_thread[T](function: Callable[[], T], timeout: float = 120) -> T:
    """`function()` on a thread of its own: its own connection (autocommit, outside the test's
    transaction; Django also refuses ORM calls beside Playwright's event loop), closed
    afterwards. Its result is returned and its exception raised here."""
    results, errors = [], []

    def run() -> None:
        try:
            results.append(function())
        except BaseException as error:  # re-raised in the test's thread below
            errors.append(error)
        finally:
            connection.close()

    worker = threading.Thread(target=run)
    worker.start()
    worker.join(timeout=timeout)
    if worker.is_alive():
        raise TimeoutError(f"{function!r} still running after {timeout} s")
    if errors:
        raise errors[0]
    return results[0]


def wait_for_a_lock_waiter(timeout: float = 15) -> None:
    """Until some session waits for an advisory lock (the account's writer lock)."""
    deadline = time.monotonic() + timeout
    with connection.cursor() as cursor:
        while time.monotonic() < deadline:
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted"
            )
            if cursor.fetchone()[0]:
                return
            time.sleep(0.01)
    raise AssertionError("nobody waited for the writer lock")


def advisory_locks_held() -> int:
    """How many advisory locks (the account's writer lock) this connection holds."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND granted"
            " AND pid = pg_backend_pid()"
        )
        return cursor.fetchone()[0]


@contextmanager
def committed_accounts(django_db_blocker, clear: Callable[[dict], None]) -> Iterator[dict]:
    """acme and globex, for tests whose writes must commit (another connection must see them),
    then `clear(accounts)` on a connection of its own."""

    def both() -> dict:
        from accounts.models import Account

        return {slug: Account.objects.get(slug=slug) for slug in ("acme", "globex")}

    with django_db_blocker.unblock():
        found = in_thread(both)
        yield found
        in_thread(lambda: clear(found))
