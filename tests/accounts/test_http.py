"""Ferry behind gunicorn, spoken to over real HTTP as a browser or proxy would."""

from urllib.error import HTTPError
from urllib.request import HTTPRedirectHandler, Request, build_opener

import pytest

pytestmark = pytest.mark.slow


class NoRedirects(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(port: str, host: str, path: str) -> tuple[int, dict, str]:
    opener = build_opener(NoRedirects)
    request = Request(f"http://127.0.0.1:{port}{path}", headers={"Host": f"{host}:{port}"})
    try:
        with opener.open(request, timeout=10) as response:
            return response.status, dict(response.headers), response.read().decode()
    except HTTPError as error:
        return error.code, dict(error.headers), error.read().decode()


def test_an_account_host_redirects_anonymous_visitors_to_its_login(ferry_server):
    status, headers, _ = fetch(ferry_server, "acme.localhost", "/")
    assert status == 302
    assert headers["Location"] == "/login/?next=/"


def test_an_unknown_account_host_is_a_404(ferry_server):
    status, _, body = fetch(ferry_server, "initech.localhost", "/")
    assert status == 404
    assert "No account here" in body


def test_pages_carry_a_content_security_policy_without_inline_script(ferry_server):
    _, headers, body = fetch(ferry_server, "acme.localhost", "/login/")
    policy = headers["Content-Security-Policy"]
    assert "script-src 'self'" in policy
    assert "unsafe-inline" not in policy
    assert "<script>" not in body


def test_static_files_are_served_compressed_and_cacheable(ferry_server):
    _, _, body = fetch(ferry_server, "localhost", "/")
    css_path = body.split('rel="stylesheet" href="')[1].split('"')[0]
    status, headers, _ = fetch(ferry_server, "acme.localhost", css_path)
    assert status == 200
    assert "max-age=315360000" in headers["Cache-Control"]
