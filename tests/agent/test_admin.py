"""Django admin: who sees what, the group list's cost and columns, the group and item pages, the actions."""
from __future__ import annotations

import re

import pytest
from django.contrib.auth.models import Permission
from django.db import connection
from django.test import Client
from django.test.utils import CaptureQueriesContext

from agent.models import JobGroup, JobItem
from agent.providers.base import Answer
from agent.services.items import answer_record
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from prompts.models import Prompt
from tests.factories import UserFactory, workspace_with_prompts
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.django_db(transaction=True)
LIST_URL = "/admin/agent/jobgroup/"


def text_of(response) -> str:
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def client_for(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


@pytest.fixture
def admin_user(django_user_model):
    return django_user_model.objects.create_superuser(username="root", password="correct horse battery staple")


@pytest.fixture
def admin_client_(admin_user) -> Client:
    return client_for(admin_user)


@pytest.fixture
def staff_user():
    """Staff, not superuser, with the permissions an operator role would grant."""
    user = UserFactory(username="operator", is_staff=True)
    codenames = ["view_jobgroup", "change_jobgroup", "view_workspace", "change_workspace", "add_workspace",
                 "view_prompt", "change_prompt", "add_prompt", "view_membership", "add_membership", "change_membership"]
    user.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return user


def finish(group: JobGroup, provider: str, *, error: str = "", text: str = "An answer.") -> JobItem:
    item = JobItem.objects.filter(group=group, provider=provider, status="queued").order_by("id").first()
    answer_record(item=QueuedItem.of(item), backend="simulated",
        answer=None if error else Answer(
            text=text, sources=[{"url": "https://g2.com/x", "title": "G2", "domain": "g2.com"}], latency_ms=250
        ),
        error=error,
    )
    return item


def groups(*, user, count: int, workspace=None) -> list[JobGroup]:
    """`count` groups of 2 prompts x 2 providers: every third one finished, the rest part-answered."""
    workspace = workspace or workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "gemini"])
    made = []
    for n in range(count):
        group = job_group_submit(workspace=workspace, user=user).job_group
        finish(group, "chatgpt")
        if n % 3 == 0:
            finish(group, "chatgpt")
            finish(group, "gemini", error="gemini: down")
            finish(group, "gemini", error="gemini: down")
        made.append(group)
    return made


def list_queries(client: Client) -> tuple[int, str]:
    with CaptureQueriesContext(connection) as queries:
        response = client.get(LIST_URL)
    assert response.status_code == 200
    return len(queries), response.content.decode()


# --- who sees the admin ---

def test_non_staff_cannot_open_the_admin(user) -> None:
    response = client_for(user).get(LIST_URL)
    assert response.status_code == 302 and response["Location"].startswith("/admin/login/")


def test_staff_who_is_not_superuser_sees_only_groups_of_their_workspaces(staff_user, stranger) -> None:
    mine = groups(user=staff_user, count=2)
    theirs = groups(user=stranger, count=2)[1]  # still running
    client = client_for(staff_user)
    html = client.get(LIST_URL).content.decode()
    assert all(str(g.id)[:8] in html for g in mine)
    assert str(theirs.id)[:8] not in html
    assert client.get(f"{LIST_URL}{theirs.id}/change/").status_code == 404
    assert client.get(f"{LIST_URL}{theirs.id}/items/").status_code == 404
    assert client.post(f"{LIST_URL}{theirs.id}/act/cancel/").status_code == 404
    assert JobGroup.objects.get(id=theirs.id).status in JobGroup.UNFINISHED
    workspaces = client.get("/admin/workspaces/workspace/").content.decode()
    assert theirs.workspace.name not in workspaces and mine[0].workspace.name in workspaces
    assert str(theirs.workspace.id) not in client.get("/admin/prompts/prompt/").content.decode()


def test_superuser_sees_every_group(admin_client_, user, stranger) -> None:
    everyone = groups(user=user, count=1) + groups(user=stranger, count=1)
    html = admin_client_.get(LIST_URL).content.decode()
    assert all(str(g.id)[:8] in html for g in everyone)


# --- the group list ---

@pytest.mark.parametrize("who", ["superuser", "staff member"])
def test_group_list_query_count_does_not_grow_with_rows(who, admin_user, staff_user) -> None:
    owner = admin_user if who == "superuser" else staff_user
    client = client_for(owner)
    workspace = workspace_with_prompts(user=owner, prompts=2, providers=["chatgpt", "gemini"])
    groups(user=owner, count=5, workspace=workspace)
    five, html = list_queries(client)
    assert html.count("/change/") >= 5
    groups(user=owner, count=45, workspace=workspace)
    fifty, html = list_queries(client)
    assert "50 runs" in text_of(client.get(LIST_URL))
    print(f"admin group list as {who}: {five} queries for 5 groups, {fifty} for 50")
    assert fifty == five
    assert five <= 8


def test_group_list_shows_progress_providers_trigger_and_duration(admin_client_, user) -> None:
    running, finished = groups(user=user, count=2)[::-1]  # newest first in the list
    html = admin_client_.get(LIST_URL).content.decode()
    page = text_of(admin_client_.get(LIST_URL))
    assert "1 of 4 finished" in page  # running: 1 answered so far
    # finished, from the final mirror: one outcome word, and a bar split into answered / failed
    assert "completed with failures" in page and "2 answered · 2 failed · 0 cancelled of 4" in page
    assert '<rect class="seg-failed" x="500" y="0" width="500"' in html
    assert "ChatGPT ✓ completed · 2 ok, 0 failed" in page and "Gemini ✗ failed" in page and "Gemini · pending" in page
    assert "&lt;br&gt;" not in html and "<br>" not in html.split('id="result_list"')[1].split("</table>")[0]
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)  # times to the second
    finished.refresh_from_db()
    assert "alice" in page and "so far" in page and finished.status == "completed"
    assert JobGroup.objects.get(id=running.id).status in JobGroup.UNFINISHED


def test_group_list_filters_and_search(admin_client_, user, stranger) -> None:
    finished, running = groups(user=user, count=2)
    elsewhere = workspace_with_prompts(user=stranger, prompts=1, providers=["claude"])
    other = job_group_submit(workspace=elsewhere, user=stranger).job_group

    def shown(query: str) -> set[str]:
        html = admin_client_.get(f"{LIST_URL}?{query}").content.decode()
        return {g for g in (str(finished.id), str(running.id), str(other.id)) if f"/{g}/change/" in html}

    assert shown("status__exact=completed") == {str(finished.id)}
    assert shown(f"workspace__id__exact={other.workspace_id}") == {str(other.id)}
    assert shown("provider=claude") == {str(other.id)}
    assert shown("provider=gemini") == {str(finished.id), str(running.id)}
    assert shown(f"q={running.id}") == {str(running.id)}
    assert shown(f"q={str(other.id)[:8]}") == {str(other.id)}


@pytest.mark.parametrize("who", ["superuser", "staff member"])
def test_group_list_workspace_filter_offers_the_callers_workspaces_without_reading_every_run(
    who, admin_user, staff_user, stranger
) -> None:
    owner = admin_user if who == "superuser" else staff_user
    mine = [groups(user=owner, count=1)[0].workspace for _ in range(2)]  # a filter of one choice is not shown
    theirs = groups(user=stranger, count=1)[0].workspace
    with CaptureQueriesContext(connection) as queries:
        html = client_for(owner).get(LIST_URL).content.decode()
    assert all(f"workspace__id__exact={w.id}" in html for w in mine)
    assert (f"workspace__id__exact={theirs.id}" in html) == (who == "superuser")
    # The choices come from the workspaces, not from a DISTINCT over every run (which grows with every tenant's runs).
    assert not [q["sql"] for q in queries.captured_queries if "DISTINCT" in q["sql"] and "agent_jobgroup" in q["sql"]]


# --- the group page and its items ---

def test_group_page_shows_providers_and_links_to_paginated_items(admin_client_, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=60, providers=["chatgpt", "gemini"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    long_text = "Long answer. " * 400  # 5,200 characters
    finish(group, "chatgpt", text=long_text)
    finish(group, "gemini", error="gemini: quota exhausted")

    response = admin_client_.get(f"{LIST_URL}{group.id}/change/")
    page = text_of(response)
    assert response.status_code == 200
    assert "Items (120)" in page and "Re-run all" in page and "Cancel" in page and "Re-run failed only (1)" in page
    assert "Provider queued running ok failed cancelled all ChatGPT 59 0 1 0 0 60 Gemini 59 0 0 1 0 60" in page
    assert 'name="_save"' not in response.content.decode()  # read-only: nothing to save

    items = admin_client_.get(f"{LIST_URL}{group.id}/items/")
    html = items.content.decode()
    assert html.count('<article class="item"') == 50
    assert "Page 1 of 3" in text_of(items)
    assert "<details><summary>" in html and "show all 5200 characters" in html
    assert 'class="badge-simulated"' in html and "250 ms" in html and 'href="https://g2.com/x"' in html

    failed = admin_client_.get(f"{LIST_URL}{group.id}/items/?provider=gemini&status=failed")
    assert failed.content.decode().count('<article class="item"') == 1
    assert "gemini: quota exhausted" in text_of(failed)
    last = admin_client_.get(f"{LIST_URL}{group.id}/items/?page=3")
    assert last.content.decode().count('<article class="item"') == 20


def test_group_page_of_a_large_group_stays_small(admin_client_, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=500, providers=["chatgpt", "perplexity", "gemini", "claude"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    JobItem.objects.filter(group=group).update(status="ok", text="x" * 3000)
    change = admin_client_.get(f"{LIST_URL}{group.id}/change/")
    items = admin_client_.get(f"{LIST_URL}{group.id}/items/")
    assert len(change.content) < 100_000
    assert len(items.content) < 400_000  # 50 items of 3,000 characters, not 2,000 of them


# --- actions, from the list and from the group page ---

def test_action_rerun_group_starts_a_linked_group(admin_client_, user) -> None:
    group = groups(user=user, count=1)[0]
    response = admin_client_.post(LIST_URL, {"action": "rerun_groups", "_selected_action": [str(group.id)], "index": 0})
    rerun = JobGroup.objects.get(rerun_of=group)
    assert response.status_code == 302 and response["Location"] == f"{LIST_URL}{rerun.id}/change/"
    assert rerun.expected_responses == 4 and rerun.status == "queued"
    assert rerun.triggered_by.username == "root"


def test_action_rerun_failed_only_asks_the_failed_items(admin_client_, user) -> None:
    group = groups(user=user, count=1)[0]  # chatgpt answered twice, gemini failed twice
    admin_client_.post(LIST_URL, {"action": "rerun_failed_items", "_selected_action": [str(group.id)], "index": 0})
    rerun = JobGroup.objects.get(rerun_of=group)
    assert rerun.providers == ["gemini"] and rerun.expected_responses == 2


def test_action_cancel_cancels_and_reports_conflicts(admin_client_, user) -> None:
    finished, running = groups(user=user, count=2)
    response = admin_client_.post(
        LIST_URL, {"action": "cancel_groups", "_selected_action": [str(finished.id), str(running.id)], "index": 0}, follow=True,
    )
    page = text_of(response)
    assert JobGroup.objects.get(id=running.id).status == "cancelled"
    assert f"Run {str(running.id)[:8]} cancelled: 3 items cancelled" in page
    assert "This run is already completed; there is nothing left to cancel." in page


def test_group_page_buttons_call_the_same_actions(admin_client_, user) -> None:
    group = groups(user=user, count=2)[1]  # part-answered, still running
    response = admin_client_.post(f"{LIST_URL}{group.id}/act/cancel/", follow=True)
    assert response.redirect_chain[0][0] == f"{LIST_URL}{group.id}/change/"
    assert f"Run {str(group.id)[:8]} cancelled: 3 items cancelled" in text_of(response)
    assert JobGroup.objects.get(id=group.id).status == "cancelled"

    response = admin_client_.post(f"{LIST_URL}{group.id}/act/rerun-failed/")
    rerun = JobGroup.objects.get(rerun_of=group)
    assert response["Location"] == f"{LIST_URL}{rerun.id}/change/" and rerun.expected_responses == 3
    assert admin_client_.get(f"{LIST_URL}{group.id}/act/rerun/").status_code == 405
    assert JobGroup.objects.filter(rerun_of=group).count() == 1


def test_staff_without_change_permission_cannot_act(user) -> None:
    viewer = UserFactory(is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename="view_jobgroup"))
    group = groups(user=user, count=1)[0]
    Membership.objects.create(user=viewer, workspace=group.workspace)
    client = client_for(viewer)
    assert client.get(f"{LIST_URL}{group.id}/change/").status_code == 200
    assert "Re-run all" not in text_of(client.get(f"{LIST_URL}{group.id}/change/"))
    assert client.post(f"{LIST_URL}{group.id}/act/rerun/").status_code == 403
    assert not JobGroup.objects.filter(rerun_of=group).exists()


# --- workspaces and prompts ---

def test_workspace_form_offers_known_providers_and_saves_members_and_prompts(staff_user) -> None:
    client = client_for(staff_user)
    add = client.get("/admin/workspaces/workspace/add/").content.decode()
    assert all(f'value="{p}"' in add for p in ("chatgpt", "perplexity", "gemini", "claude"))
    form = {
        "name": "Acme", "enabled_providers": ["gemini", "chatgpt"],
        "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0,
        "prompts-TOTAL_FORMS": 1, "prompts-INITIAL_FORMS": 0, "prompts-0-text": "Best CRM?", "prompts-0-is_active": "on",
    }
    response = client.post("/admin/workspaces/workspace/add/", form)
    assert response.status_code == 302, text_of(response)
    workspace = Workspace.objects.get(name="Acme")
    assert workspace.enabled_providers == ["chatgpt", "gemini"]
    assert Membership.objects.filter(user=staff_user, workspace=workspace, role="owner").exists()
    assert list(Prompt.objects.filter(workspace=workspace).values_list("text", "is_active")) == [("Best CRM?", True)]


def test_workspace_form_refuses_no_providers(admin_client_) -> None:
    form = {"name": "Acme", "memberships-TOTAL_FORMS": 0, "memberships-INITIAL_FORMS": 0,
            "prompts-TOTAL_FORMS": 0, "prompts-INITIAL_FORMS": 0}
    response = admin_client_.post("/admin/workspaces/workspace/add/", form)
    assert response.status_code == 200 and "Enable at least one provider." in text_of(response)
    response = admin_client_.post("/admin/workspaces/workspace/add/", {**form, "enabled_providers": ["grok"]})
    assert "Select a valid choice. grok is not one of the available choices." in text_of(response)
    assert not Workspace.objects.exists()


def test_prompt_admin_search_filter_and_deactivate(admin_client_, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"], name="Acme")
    other = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"], name="Other")
    crm = Prompt.objects.create(workspace=workspace, text="Best CRM for dentists?")
    Prompt.objects.create(workspace=workspace, text="Best help desk?", is_active=False)
    Prompt.objects.create(workspace=other, text="Best CRM for lawyers?")
    assert text_of(admin_client_.get("/admin/prompts/prompt/?q=CRM")).count("Best CRM") == 2
    filtered = text_of(admin_client_.get(f"/admin/prompts/prompt/?workspace__id__exact={workspace.id}&is_active__exact=1"))
    assert "Best CRM for dentists?" in filtered and "Best help desk?" not in filtered and "lawyers" not in filtered
    admin_client_.post("/admin/prompts/prompt/", {"action": "deactivate_prompts", "_selected_action": [crm.id], "index": 0})
    assert not Prompt.objects.get(id=crm.id).is_active


def test_run_page_in_the_admin_reads_as_text_with_a_link_to_the_site(admin_client_, user) -> None:
    finished = groups(user=user, count=1)[0]
    rerun = job_group_submit(workspace=finished.workspace, user=user, rerun_of=finished).job_group
    html = admin_client_.get(f"{LIST_URL}{finished.id}/change/").content.decode()
    page = text_of(admin_client_.get(f"{LIST_URL}{finished.id}/change/"))
    assert f'href="/runs/{finished.id}/"' in html and "View on site" in page
    assert '"actualResponses"' not in html  # progress as labelled text, not raw JSON
    assert re.search(r"Answered\s+2\s+Failed\s+2", page) and "ChatGPT, Gemini" in page
    assert re.search(r"\d{4}-\d\d-\d\d \d\d:\d\d:\d\d UTC", page)
    assert str(rerun.id)[:8] in page  # its re-runs, linked
