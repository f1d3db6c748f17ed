"""Login throttling per login identity and per address, with a clear message and an audit."""

import pytest

from accounts.models import AuditEntry, LoginFailure
from tests.conftest import PASSWORD, FerryClient

pytestmark = pytest.mark.django_db


def log_in(host: str, email: str, password: str, address: str = "198.51.100.7", **extra):
    path = "/staff/login/" if host == "localhost" else "/login/"
    return FerryClient(HTTP_HOST=host, REMOTE_ADDR=address, **extra).post(
        path, {"username": email, "password": password}
    )


def test_five_failures_lock_the_email_with_a_clear_message_and_an_audit_entry(cast):
    for _ in range(5):
        assert log_in(cast.acme.host, "alice@acme.example", "wrong").status_code == 200
    refused = log_in(cast.acme.host, "alice@acme.example", PASSWORD)  # even the right one
    assert refused.status_code == 429
    assert int(refused["Retry-After"]) > 800
    assert b"Too many failed logins for this email address. Try again in 15 minutes" in (
        refused.content
    )
    assert "_auth_user_id" not in refused.wsgi_request.session
    with cast.acme:
        entry = AuditEntry.objects.get(action="login.throttled")
        assert entry.target == "alice@acme.example"
        assert entry.detail["address"] == "198.51.100.7"


def test_the_lock_is_per_account_and_per_email(cast):
    for _ in range(5):
        log_in(cast.acme.host, "alice@acme.example", "wrong")
    assert log_in(cast.acme.host, "adam@acme.example", PASSWORD, "198.51.100.8").status_code == 302
    # The same email on another account's host is another login.
    assert log_in(cast.globex.host, "charlie@globex.example", PASSWORD).status_code == 302


def test_an_address_spraying_many_emails_is_locked_across_accounts(cast, settings):
    settings.LOGIN_FAILURES_PER_ADDRESS = 6
    for number in range(3):
        log_in(cast.acme.host, f"guess{number}@acme.example", "wrong", "203.0.113.9")
        log_in(cast.globex.host, f"guess{number}@globex.example", "wrong", "203.0.113.9")
    refused = log_in(cast.globex.host, "charlie@globex.example", PASSWORD, "203.0.113.9")
    assert refused.status_code == 429
    assert b"Too many failed logins for your network address" in refused.content
    assert (
        log_in(cast.globex.host, "charlie@globex.example", PASSWORD, "203.0.113.10").status_code
        == 302
    )


def test_failures_leave_the_window(cast, settings):
    for _ in range(5):
        log_in(cast.acme.host, "alice@acme.example", "wrong")
    assert log_in(cast.acme.host, "alice@acme.example", PASSWORD).status_code == 429
    LoginFailure.objects.update(created_at="2000-01-01T00:00Z")
    assert log_in(cast.acme.host, "alice@acme.example", PASSWORD).status_code == 302


def test_a_successful_login_forgets_the_emails_failures(cast):
    for _ in range(4):
        log_in(cast.acme.host, "alice@acme.example", "wrong")
    assert log_in(cast.acme.host, "alice@acme.example", PASSWORD).status_code == 302
    for _ in range(4):
        log_in(cast.acme.host, "alice@acme.example", "wrong")
    assert log_in(cast.acme.host, "alice@acme.example", PASSWORD).status_code == 302


def test_staff_logins_are_throttled_too(cast):
    for _ in range(5):
        log_in("localhost", "stella@ferry.test", "wrong")
    refused = log_in("localhost", "stella@ferry.test", PASSWORD)
    assert refused.status_code == 429


def test_behind_a_tls_proxy_the_address_is_the_one_the_proxy_saw(cast, settings):
    settings.SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    settings.LOGIN_FAILURES_PER_ADDRESS = 3
    for number in range(3):
        # The client forges the first entry each time; the proxy appends the real one.
        log_in(cast.acme.host, f"g{number}@acme.example", "wrong", "10.0.0.1",
               HTTP_X_FORWARDED_FOR=f"1.2.3.{number}, 192.0.2.44")  # fmt: skip
    assert LoginFailure.objects.filter(key="address:192.0.2.44").count() == 3
    refused = log_in(cast.acme.host, "alice@acme.example", PASSWORD, "10.0.0.1",
                     HTTP_X_FORWARDED_FOR="9.9.9.9, 192.0.2.44")  # fmt: skip
    assert refused.status_code == 429
