"""While the database is unreachable, the API answers 503 JSON with Retry-After and pages a 503 page, never a 500.

The outage is real: the test's connection is pointed at a database that cannot be opened
(a missing folder on SQLite, a closed port on PostgreSQL), then put back.
"""
from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import pytest
from django.db import connection
from django.test import Client
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from tests.redis_server import free_port

pytestmark = pytest.mark.django_db(transaction=True)


@contextmanager
def database_unreachable() -> Iterator[None]:
    settings_dict = connection.settings_dict
    saved = dict(settings_dict)
    connection.close()
    if connection.vendor == "sqlite":
        settings_dict["NAME"] = "/nonexistent-folder/oneglanse.sqlite3"
    else:
        settings_dict["HOST"], settings_dict["PORT"] = "127.0.0.1", str(free_port())
    try:
        yield
    finally:
        connection.close()
        settings_dict.clear()
        settings_dict.update(saved)


def _assert_api_503(response) -> None:
    assert response.status_code == 503, response.content[:300]
    assert response["Content-Type"] == "application/json"
    assert "database" in response.json()["detail"]
    assert int(response["Retry-After"]) > 0


def test_api_answers_503_json_with_retry_after_while_the_database_is_unreachable(api) -> None:
    with database_unreachable():
        _assert_api_503(api.get("/api/workspaces/"))
        _assert_api_503(api.post("/api/workspaces/", {"name": "x", "enabled_providers": ["claude"]}, format="json"))
    assert api.get("/api/workspaces/").status_code == 200, "back by itself once the database is"


def test_token_log_in_and_token_checks_answer_503_not_401_while_the_database_is_unreachable(user) -> None:
    token = Token.objects.create(user=user)
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Token {token.key}")
    with database_unreachable():
        _assert_api_503(client.get("/api/workspaces/"))
        _assert_api_503(APIClient().post("/api/auth/token/", {"username": "alice", "password": "x"}, format="json"))
    assert client.get("/api/workspaces/").status_code == 200


def test_a_page_answers_503_with_retry_after_while_the_database_is_unreachable(user) -> None:
    browser = Client()
    browser.force_login(user)
    with database_unreachable():
        page = browser.get("/")
        assert page.status_code == 503 and int(page["Retry-After"]) > 0
        assert page["Content-Type"].startswith("text/html") and b"database is unavailable" in page.content
    assert browser.get("/").status_code == 200
