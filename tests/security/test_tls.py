"""Behind a TLS proxy: HTTPS redirects, HSTS and secure cookies, with the production settings."""

import http.client
import re
from urllib.parse import urlencode

import pytest

from tests.conftest import PASSWORD, gunicorn

pytestmark = [pytest.mark.django_db, pytest.mark.slow]

BEHIND_PROXY = {
    "BEHIND_TLS_PROXY": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_COOKIES": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_PRELOAD": "true",
    "SITE_SCHEME": "https",
}


def ask(port, method, path, host, headers=None, body=None):
    connection = http.client.HTTPConnection("127.0.0.1", int(port), timeout=30)
    connection.request(method, path, body=body, headers={"Host": host, **(headers or {})})
    response = connection.getresponse()
    return response, response.read().decode(errors="replace")


def test_tls_settings_behind_the_proxy(test_database_url, committed_keys, tmp_path):
    env = {**BEHIND_PROXY, "INGEST_SPOOL_PATH": str(tmp_path / "spool.sqlite3")}
    https = {"X-Forwarded-Proto": "https"}
    with gunicorn(test_database_url, workers=1, env=env, ready_path="/healthz") as port:
        # Plain HTTP through the proxy is sent to HTTPS.
        response, _ = ask(port, "GET", "/login/?next=/people/", "acme.localhost")
        assert response.status == 301
        assert response.getheader("Location") == "https://acme.localhost/login/?next=/people/"
        forged, _ = ask(port, "GET", "/login/", "acme.localhost", {"X-Forwarded-Proto": "http"})
        assert forged.status == 301
        # Load balancers probe over plain HTTP.
        assert ask(port, "GET", "/healthz", "acme.localhost")[0].status == 200

        page, html = ask(port, "GET", "/login/", "acme.localhost", https)
        assert page.status == 200
        assert page.getheader("Strict-Transport-Security") == (
            "max-age=31536000; includeSubDomains; preload"
        )
        csrf_cookie = page.getheader("Set-Cookie")
        assert "csrftoken=" in csrf_cookie and "Secure" in csrf_cookie
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', html).group(1)
        cookie = csrf_cookie.split(";")[0]
        body = urlencode({"username": "alice@acme.example", "password": PASSWORD,
                          "csrfmiddlewaretoken": token})  # fmt: skip
        login, _ = ask(port, "POST", "/login/", "acme.localhost", {
            **https, "Cookie": cookie, "Content-Type": "application/x-www-form-urlencoded",
            "Referer": "https://acme.localhost/login/",
        }, body)  # fmt: skip
        assert login.status == 302
        session = [c for c in login.headers.get_all("Set-Cookie") if c.startswith("ferry_session=")]
        assert session, login.headers.get_all("Set-Cookie")
        assert "Secure" in session[0] and "HttpOnly" in session[0]
        assert "Domain=" not in session[0]  # host-only: never sent to another account's host
