"""factory-boy factories for background rows, and helpers to follow a group to its end."""
from __future__ import annotations

import time

import factory
from django.contrib.auth import get_user_model

from agent.models import JobGroup, JobItem
from prompts.models import Prompt
from workspaces.models import Membership, Workspace

ALL_PROVIDERS = ["chatgpt", "perplexity", "gemini", "claude"]


class UserFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = get_user_model()

    username = factory.Sequence(lambda n: f"user{n}")
    password = factory.django.Password("correct horse battery staple")


class WorkspaceFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Workspace

    name = factory.Sequence(lambda n: f"Brand {n}")
    enabled_providers = factory.LazyFunction(lambda: list(ALL_PROVIDERS))


class MembershipFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Membership

    user = factory.SubFactory(UserFactory)
    workspace = factory.SubFactory(WorkspaceFactory)
    role = Membership.Role.OWNER


class PromptFactory(factory.django.DjangoModelFactory):
    class Meta:
        model = Prompt

    workspace = factory.SubFactory(WorkspaceFactory)
    text = factory.Sequence(lambda n: f"What are the best CRM tools for team {n}?")


class JobGroupFactory(factory.django.DjangoModelFactory):
    """A run row written directly (no queue): for tests that need stored answers, not the engine."""

    class Meta:
        model = JobGroup

    workspace = factory.SubFactory(WorkspaceFactory)
    status = JobGroup.Status.COMPLETED
    providers = factory.LazyFunction(lambda: list(ALL_PROVIDERS))


class JobItemFactory(factory.django.DjangoModelFactory):
    """A stored answer: ok with the given text and sources unless told otherwise."""

    class Meta:
        model = JobItem

    group = factory.SubFactory(JobGroupFactory)
    provider = "chatgpt"
    prompt = factory.SubFactory(PromptFactory, workspace=factory.SelfAttribute("..group.workspace"))
    prompt_text = factory.SelfAttribute("prompt.text")
    status = JobItem.Status.OK
    backend = JobItem.Backend.SIMULATED
    text = ""
    sources = factory.LazyFunction(list)


def workspace_with_prompts(*, user, prompts: int, providers: list[str] | None = None, name: str | None = None) -> Workspace:
    workspace = WorkspaceFactory(enabled_providers=providers or list(ALL_PROVIDERS), **({"name": name} if name else {}))
    MembershipFactory(user=user, workspace=workspace)
    PromptFactory.create_batch(prompts, workspace=workspace)
    return workspace


def wait_for_status(api, group_id: str, *, timeout: float = 60.0, interval: float = 0.2, logs=None) -> dict:
    """Poll the status API like the browser does until the group is completed; returns the last body."""
    deadline = time.monotonic() + timeout
    body = None
    while time.monotonic() < deadline:
        response = api.get(f"/api/runs/{group_id}/status/")
        assert response.status_code == 200, response.content
        body = response.json()
        if body["status"] == "completed":
            return body
        time.sleep(interval)
    raise AssertionError(
        f"group {group_id} still pending after {timeout} s: {body}; DB status "
        f"{JobGroup.objects.get(id=group_id).status}\n{logs() if logs else ''}"
    )


def wait_for_group_closed(group_id: str, *, timeout: float = 30.0) -> JobGroup:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        group = JobGroup.objects.get(id=group_id)
        if group.status not in JobGroup.UNFINISHED and group.finished_at:
            return group
        time.sleep(0.1)
    raise AssertionError(f"group {group_id} was never closed in the database")
