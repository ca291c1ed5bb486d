"""The OpenAPI schema: served, documented, and fuzzed by schemathesis with no 5xx on any operation."""
from __future__ import annotations

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from rest_framework.authtoken.models import Token
from schemathesis.checks import not_a_server_error

from agent.models import JobItem
from agent.services.items import answer_record
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from oneglanse.wsgi import application
from tests.factories import PromptFactory, UserFactory, workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)

EXAMPLES_PER_OPERATION = 25


def test_schema_is_openapi_3_and_lists_every_api_route(client) -> None:
    response = client.get("/api/schema/", HTTP_ACCEPT="application/vnd.oai.openapi+json")
    assert response.status_code == 200
    schema = response.json()
    assert schema["openapi"].startswith("3.")
    assert {
        "/api/workspaces/", "/api/workspaces/{workspace_id}/", "/api/workspaces/{workspace_id}/prompts/",
        "/api/workspaces/{workspace_id}/runs/", "/api/prompts/{prompt_id}/", "/api/runs/{group_id}/",
        "/api/runs/{group_id}/status/", "/api/runs/{group_id}/answers/", "/api/runs/{group_id}/rerun/",
        "/api/runs/{group_id}/cancel/", "/api/auth/token/",
    } <= set(schema["paths"])
    assert "tokenAuth" in schema["components"]["securitySchemes"]


def test_schema_generates_without_warnings(tmp_path) -> None:
    from django.core.management import call_command

    call_command("spectacular", "--fail-on-warn", "--file", str(tmp_path / "schema.yml"))


def test_docs_page_is_served(client) -> None:
    response = client.get("/api/docs/")
    assert response.status_code == 200 and b"swagger" in response.content.lower()


@pytest.fixture
def owner_ids() -> dict:
    """A token user whose workspace, prompt and finished-and-unfinished groups the fuzzer can hit by id."""
    user = UserFactory(username="fuzzer")
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "claude"])
    prompt = PromptFactory(workspace=workspace)
    group = job_group_submit(workspace=workspace, user=user).job_group
    item = JobItem.objects.filter(group=group).first()
    answer_record(item=QueuedItem.of(item), backend="simulated", error="simulated")
    return {
        "token": Token.objects.create(user=user).key,
        "workspace_id": str(workspace.id),
        "prompt_id": str(prompt.id),
        "group_id": str(group.id),
    }


def _api_schema(owner_ids: dict):
    loaded = schemathesis.openapi.from_wsgi("/api/schema/", application)

    @loaded.hook("flatmap_path_parameters")
    def sometimes_real_ids(context, path_parameters):
        # Random ids only ever reach the 404 branch; half the time use ids the caller owns.
        return st.fixed_dictionaries({
            name: st.sampled_from([value, owner_ids[name]]) if name in owner_ids else st.just(value)
            for name, value in (path_parameters or {}).items()
        })

    return loaded


def test_no_operation_answers_5xx(owner_ids) -> None:
    """Stateless fuzzing of every operation, authenticated as a user who owns real ids."""
    headers = {"Authorization": f"Token {owner_ids['token']}"}
    failures, operations = [], 0
    for result in _api_schema(owner_ids).get_all_operations():
        operation = result.ok()
        operations += 1

        @given(case=operation.as_strategy())
        @settings(max_examples=EXAMPLES_PER_OPERATION, deadline=None, database=None,
                  suppress_health_check=list(HealthCheck))
        def no_server_error(case) -> None:
            case.call_and_validate(headers=headers, checks=[not_a_server_error])

        try:
            no_server_error()
        except Exception as exc:  # collect every operation's failure, not just the first
            failures.append(f"{operation.label}: {exc}")
    assert operations >= 15
    assert not failures, "\n\n".join(failures)
