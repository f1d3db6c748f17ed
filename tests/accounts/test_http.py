"""Ferry behind gunicorn, spoken to over real HTTP as a browser or proxy would."""

import re
from http.cookiejar import CookieJar
from urllib.error import HTTPError
from urllib.parse import urlencode
from urllib.request import HTTPCookieProcessor, HTTPRedirectHandler, Request, build_opener

import pytest

from tests.conftest import free_port, gunicorn

pytestmark = pytest.mark.slow


class NoRedirects(HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def fetch(port: str, host: str, path: str, cookie: str = "") -> tuple[int, dict, str]:
    opener = build_opener(NoRedirects)
    headers = {"Host": f"{host}:{port}"} | ({"Cookie": cookie} if cookie else {})
    request = Request(f"http://127.0.0.1:{port}{path}", headers=headers)
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


def test_dashboards_and_staff_logins_answer_503_while_the_database_is_unreachable():
    nothing_listens = f"postgresql://postgres@127.0.0.1:{free_port()}/ferry?connect_timeout=2"
    with gunicorn(nothing_listens, workers=1) as port:
        status, headers, body = fetch(port, "acme.localhost", "/")
        assert status == 503
        assert headers["Retry-After"] == "30"
        assert "Ferry cannot reach its database right now" in body

        # The staff login form needs no database; logging in does.
        opener = build_opener(NoRedirects, HTTPCookieProcessor(CookieJar()))
        url = f"http://127.0.0.1:{port}/staff/login/"
        form = opener.open(Request(url, headers={"Host": f"localhost:{port}"})).read().decode()
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', form).group(1)
        data = urlencode({"csrfmiddlewaretoken": token, "username": "a@b.c", "password": "x"})
        request = Request(
            url, data=data.encode(), headers={"Host": f"localhost:{port}", "Referer": url}
        )
        with pytest.raises(HTTPError) as refused:
            opener.open(request)
        assert refused.value.code == 503
        assert "Ferry cannot reach its database right now" in refused.value.read().decode()
