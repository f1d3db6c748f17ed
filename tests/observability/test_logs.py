"""Structured logs with request ids."""

import json
import logging

import pytest
from django.test import Client

from config.logs import JsonFormatter, RequestIdFilter, current_request_id

pytestmark = pytest.mark.django_db


def test_every_response_carries_a_request_id(cast):
    first = Client(HTTP_HOST="localhost").get("/")
    second = Client(HTTP_HOST="acme.localhost").get("/login/")
    assert len(first["X-Request-ID"]) == 32
    assert first["X-Request-ID"] != second["X-Request-ID"]


def test_a_sane_request_id_from_the_proxy_is_kept_and_a_strange_one_replaced(cast):
    client = Client(HTTP_HOST="localhost")
    assert client.get("/", HTTP_X_REQUEST_ID="lb-1234.abc")["X-Request-ID"] == "lb-1234.abc"
    replaced = client.get("/", HTTP_X_REQUEST_ID="x\r\nSet-Cookie: a=b")["X-Request-ID"]
    assert replaced != "x\r\nSet-Cookie: a=b"
    assert len(replaced) == 32


def test_log_records_written_during_a_request_carry_its_id(cast, caplog):
    caplog.set_level(logging.INFO, logger="ferry.request")
    response = Client(HTTP_HOST="acme.localhost").get("/people/", HTTP_X_REQUEST_ID="trace-42")
    [record] = [r for r in caplog.records if r.name == "ferry.request"]
    RequestIdFilter().filter(record)
    assert record.request_id == "trace-42" == response["X-Request-ID"]
    assert (record.status, record.path, record.account) == (302, "/people/", "acme")


def test_the_json_formatter_writes_one_object_with_the_id_and_extra_fields():
    token = current_request_id.set("req-7")
    try:
        record = logging.LogRecord(
            "ferry.test", logging.WARNING, __file__, 1, "hello %s", ("you",), None
        )
        record.account = "acme"
        RequestIdFilter().filter(record)
        line = JsonFormatter().format(record)
    finally:
        current_request_id.reset(token)
    entry = json.loads(line)
    assert entry["message"] == "hello you"
    assert entry["request_id"] == "req-7"
    assert entry["level"] == "WARNING"
    assert entry["account"] == "acme"
    assert "\n" not in line


def test_an_exception_is_logged_inside_the_json_object():
    try:
        raise ValueError("boom")
    except ValueError:
        import sys

        record = logging.LogRecord("x", logging.ERROR, __file__, 1, "failed", None, sys.exc_info())
    entry = json.loads(JsonFormatter().format(record))
    assert "ValueError: boom" in entry["exception"]
