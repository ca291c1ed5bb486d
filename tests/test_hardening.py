"""Round two of the attacker's list: log-in throttling across processes, CSV injection, deep JSON,
Idempotency-Key scope, CSP on every page, Bearer tokens and 401s, API docs served locally."""
from __future__ import annotations

import csv
import io
import os
import subprocess
import sys
from pathlib import Path

import pytest
from django.core.cache import cache
from django.test import Client, override_settings
from rest_framework.authtoken.models import Token
from rest_framework.test import APIClient

from agent.models import JobGroup, JobItem
from agent.providers.base import Answer
from agent.services.items import answer_record
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from prompts.models import Prompt
from tests.conftest import database_url
from tests.factories import workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)
PROJECT_DIR = Path(__file__).resolve().parent.parent
PASSWORD = "correct horse battery staple"


# --- log-in throttling (counters in Redis, shared by every process) ---

def _token_attempt(client: Client, username: str, password: str = "wrong", **extra):
    return client.post("/api/auth/token/", {"username": username, "password": password},
                       content_type="application/json", **extra)


def test_failed_log_ins_are_throttled_per_username_on_every_log_in_form(user) -> None:
    codes = [_token_attempt(Client(REMOTE_ADDR=f"10.0.0.{n}"), "alice").status_code for n in range(5)]
    assert codes == [400] * 5
    # The sixth guess at alice's password is refused unchecked, from any address and any log-in form,
    # even with the right password: the guesser cannot tell.
    refused = _token_attempt(Client(REMOTE_ADDR="10.0.0.99"), "alice", PASSWORD)
    assert refused.status_code == 429 and "try again in" in refused.json()["detail"]
    assert 0 < int(refused["Retry-After"]) <= 60
    page = Client(REMOTE_ADDR="10.0.1.1").post("/login/", {"username": "alice", "password": PASSWORD})
    assert page.status_code == 429 and int(page["Retry-After"]) > 0
    admin = Client(REMOTE_ADDR="10.0.1.2").post("/admin/login/", {"username": "Alice", "password": PASSWORD})
    assert admin.status_code == 429
    # Another user is not locked out by alice's attacker.
    assert _token_attempt(Client(REMOTE_ADDR="10.0.0.99"), "bob").status_code == 400


def test_failed_log_ins_are_throttled_per_client_address(user) -> None:
    client = Client(REMOTE_ADDR="10.9.9.9")
    codes = [_token_attempt(client, f"someone{n}").status_code for n in range(21)]
    assert codes == [400] * 20 + [429]
    assert _token_attempt(Client(REMOTE_ADDR="10.9.9.10"), "someone0").status_code == 400


def test_successful_log_ins_do_not_count(user) -> None:
    client = Client(REMOTE_ADDR="10.1.1.1")
    for _ in range(8):
        response = _token_attempt(client, "alice", PASSWORD)
        assert response.status_code == 200 and response.json()["token"]
    assert _token_attempt(client, "alice").status_code == 400


def test_log_in_throttle_holds_across_processes(user) -> None:
    """Three failures here and three in another process: the other process refuses the sixth."""
    for _ in range(3):
        assert _token_attempt(Client(), "alice").status_code == 400
    script = (
        "import django, json; django.setup(); from django.test import Client; "
        "print([Client().post('/api/auth/token/', json.dumps({'username': 'alice', 'password': 'x'}), "
        "content_type='application/json').status_code for _ in range(3)])"
    )
    env = dict(os.environ, DJANGO_SETTINGS_MODULE="tests.settings", DATABASE_URL=database_url())
    result = subprocess.run([sys.executable, "-c", script], cwd=PROJECT_DIR, env=env, capture_output=True,
                            text=True, timeout=120)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "[400, 400, 429]"


def test_submission_throttle_counts_live_in_redis(api, user) -> None:
    """DRF's throttles use Django's cache: a count written here is visible to any other connection."""
    import redis
    from django.conf import settings

    cache.set("throttle-probe", 7)
    other = redis.Redis.from_url(settings.REDIS_URL)
    assert list(other.keys("*throttle-probe*")), "Django's cache is the shared Redis"


# --- CSV formula injection ---

def test_csv_export_neutralises_formulas(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"])
    Prompt.objects.create(workspace=workspace, text='=HYPERLINK("http://evil.example","click")')
    group = job_group_submit(workspace=workspace, user=user).job_group
    item = JobItem.objects.get(group=group)
    answer_record(item=QueuedItem.of(item), backend="simulated",
                  answer=Answer(text="@SUM(1+1)*cmd|' /C calc'!A0", sources=[], latency_ms=5))
    rows = list(csv.DictReader(io.StringIO(
        b"".join(api.get(f"/api/runs/{group.id}/answers/?format=csv").streaming_content).decode("utf-8-sig"))))
    assert rows[0]["prompt_text"] == '\'=HYPERLINK("http://evil.example","click")'
    assert rows[0]["text"] == "'@SUM(1+1)*cmd|' /C calc'!A0"
    assert rows[0]["latency_ms"] == "5" and rows[0]["status"] == "ok"


@pytest.mark.parametrize("start", ["=", "+", "-", "@", "\t", "\r"])
def test_every_formula_trigger_is_neutralised(start: str) -> None:
    from oneglanse.spreadsheet import spreadsheet_safe

    assert spreadsheet_safe(start + "1+2") == "'" + start + "1+2"
    assert spreadsheet_safe("a=1") == "a=1" and spreadsheet_safe(-5) == -5


# --- deeply nested JSON ---

@pytest.mark.parametrize("path", ["/api/auth/token/", "/api/workspaces/"])
def test_deeply_nested_json_is_a_400_in_json(api, path: str) -> None:
    response = api.post(path, "[" * 100_000, content_type="application/json")
    assert response.status_code == 400
    assert response["Content-Type"].startswith("application/json") and "nested" in response.json()["detail"]


# --- Idempotency-Key is tied to its workspace ---

def test_an_idempotency_key_reused_for_another_workspace_is_422(api, user) -> None:
    first = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"], name="A")
    second = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"], name="B")
    created = api.post(f"/api/workspaces/{first.id}/runs/", HTTP_IDEMPOTENCY_KEY="k-1")
    assert created.status_code == 202
    assert api.post(f"/api/workspaces/{first.id}/runs/", HTTP_IDEMPOTENCY_KEY="k-1").json() == created.json()
    other = api.post(f"/api/workspaces/{second.id}/runs/", HTTP_IDEMPOTENCY_KEY="k-1")
    assert other.status_code == 422 and "another workspace" in other.json()["detail"]
    assert created.json()["jobGroupId"] not in other.content.decode()
    assert not JobGroup.objects.filter(workspace=second).exists()
    assert api.post(f"/api/workspaces/{second.id}/runs/", HTTP_IDEMPOTENCY_KEY="k-2").status_code == 202


# --- tokens: Bearer as well as Token; 401 with a challenge ---

def test_bearer_and_token_both_work_and_bad_or_missing_ones_are_401(user) -> None:
    key = Token.objects.create(user=user).key
    client = APIClient()
    assert client.get("/api/workspaces/", HTTP_AUTHORIZATION=f"Bearer {key}").status_code == 200
    assert client.get("/api/workspaces/", HTTP_AUTHORIZATION=f"Token {key}").status_code == 200
    for header in ({}, {"HTTP_AUTHORIZATION": "Bearer nope"}, {"HTTP_AUTHORIZATION": "Token nope"},
                   {"HTTP_AUTHORIZATION": "Bearer"}):
        response = client.get("/api/workspaces/", **header)
        assert response.status_code == 401, header
        assert "Bearer" in response["WWW-Authenticate"]
        assert "detail" in response.json()


# --- Content-Security-Policy on every page, API docs served locally ---

@pytest.mark.parametrize("path", ["/login/", "/", "/admin/login/", "/api/docs/", "/api/workspaces/"])
def test_every_page_has_a_content_security_policy_of_its_own_origin(user, path: str) -> None:
    client = Client()
    if "login" not in path:
        client.force_login(user)
    response = client.get(path)
    assert response.status_code == 200, path
    policy = response["Content-Security-Policy"]
    assert "script-src 'self'" in policy and "style-src 'self'" in policy and "frame-ancestors 'none'" in policy
    assert "unsafe-inline" not in policy and "unsafe-eval" not in policy


@override_settings(DEBUG=False)
def test_api_docs_load_nothing_from_elsewhere(user) -> None:
    client = Client()
    client.force_login(user)
    page = client.get("/api/docs/").content.decode()
    assert "cdn" not in page.lower() and "https://" not in page and "<script>" not in page
    assert "/static/drf_spectacular_sidecar/swagger-ui-dist/swagger-ui-bundle.js" in page
    script = client.get("/api/docs/?script=")
    assert script.status_code == 200 and b"SwaggerUIBundle" in script.content


def test_throttled_endpoints_answer_503_json_while_the_cache_redis_is_away(api, user, settings) -> None:
    from django.core.cache import caches

    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    settings.CACHES = {"default": {**settings.CACHES["default"], "LOCATION": "redis://127.0.0.1:1/0"}}
    try:
        response = api.post(f"/api/workspaces/{workspace.id}/runs/")
        assert response.status_code == 503 and "Redis" in response.json()["detail"] and response["Retry-After"]
        # Logging in still works: the log-in throttle steps aside rather than lock everyone out.
        assert _token_attempt(Client(), "alice", PASSWORD).status_code == 200
    finally:
        caches.close_all()
