import pytest
from django.core.exceptions import ImproperlyConfigured

from config.settings import database_from_url, env_bool, env_int, process_role
from tests.conftest import manage

PRODUCTION_ENV = {
    "FERRY_DEV": "false",
    "DEBUG": "false",
    "SECRET_KEY": "x" * 40 + "production-secret-key-with-enough-entropy",
    "BASE_DOMAIN": "ferry.example.com",
    "ALLOWED_HOSTS": ".ferry.example.com",
    "SECURE_COOKIES": "true",
    "SECURE_SSL_REDIRECT": "true",
    "SECURE_HSTS_SECONDS": "31536000",
    "SECURE_HSTS_PRELOAD": "true",
    "BEHIND_TLS_PROXY": "true",
    "SITE_SCHEME": "https",
    "SITE_PORT": "443",
    "SMTP_HOST": "smtp.example.com",
}


def test_a_socket_url_keeps_the_socket_directory_as_host():
    database = database_from_url("postgresql://postgres:@/ferry?host=/tmp/pg")
    assert (database["NAME"], database["USER"], database["HOST"]) == (
        "ferry",
        "postgres",
        "/tmp/pg",
    )


def test_a_tcp_url_with_options():
    database = database_from_url("postgres://u:p%40ss@db.internal:6432/ferry?sslmode=require")
    assert database["HOST"] == "db.internal"
    assert database["PORT"] == "6432"
    assert database["PASSWORD"] == "p@ss"
    assert database["OPTIONS"]["sslmode"] == "require"
    assert database["OPTIONS"]["connect_timeout"] == "5"


def test_connections_say_which_ferry_process_they_belong_to():
    # PostgreSQL shows it as pg_stat_activity.application_name; the URL's own value wins.
    assert process_role(["/srv/ferry/manage.py", "drain", "--once"]) == "ferry drain"
    assert process_role(["/venv/bin/gunicorn", "config.wsgi"]) == "ferry web"
    assert process_role(["/venv/lib/python3.12/site-packages/gunicorn/__main__.py"]) == "ferry web"
    assert process_role(["manage.py"]) == "ferry manage.py"
    assert database_from_url("postgresql:///ferry")["OPTIONS"]["application_name"].startswith(
        "ferry "
    )
    named = database_from_url("postgresql:///ferry?application_name=pooler")
    assert named["OPTIONS"]["application_name"] == "pooler"


def test_other_databases_are_refused():
    with pytest.raises(ImproperlyConfigured, match="must be a postgresql:// URL"):
        database_from_url("mysql://localhost/ferry")


def test_bad_environment_values_fail_loudly(monkeypatch):
    monkeypatch.setenv("DEBUG", "maybe")
    with pytest.raises(ImproperlyConfigured, match="DEBUG='maybe' is not a boolean"):
        env_bool("DEBUG", False)
    monkeypatch.setenv("PORT", "eighty")
    with pytest.raises(ImproperlyConfigured, match="PORT='eighty' is not a whole number"):
        env_int("PORT", 8000)


@pytest.mark.django_db
def test_check_deploy_passes_with_the_documented_production_values(test_database_url):
    result = manage(
        "check",
        "--deploy",
        "--fail-level",
        "WARNING",
        env={**PRODUCTION_ENV, "DATABASE_URL": test_database_url},
    )
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.django_db
def test_production_refuses_to_start_without_a_secret_key(test_database_url):
    env = {**PRODUCTION_ENV, "SECRET_KEY": "", "DATABASE_URL": test_database_url}
    result = manage("check", env=env)
    assert result.returncode != 0
    assert "SECRET_KEY must be set" in result.stderr
