"""The server-rendered pages: sign-in, workspaces, prompts, and a group's page and its buttons."""
from __future__ import annotations

import re

import pytest
from django.test import Client

from agent.models import JobGroup, JobItem
from agent.progress import progress_get
from agent.providers.base import Answer
from agent.services.items import answer_record
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from prompts.models import Prompt
from tests.factories import workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)
PASSWORD = "correct horse battery staple"


@pytest.fixture
def browser(user) -> Client:
    client = Client()
    client.force_login(user)
    return client


def text_of(response) -> str:
    """The page as a reader sees it: tags dropped, whitespace collapsed."""
    return re.sub(r"\s+", " ", re.sub(r"<[^>]+>", " ", response.content.decode()))


def answer(group: JobGroup, provider: str, *, text: str = "Try HubSpot.", sources=None, error: str = "") -> JobItem:
    item = JobItem.objects.filter(group=group, provider=provider, status="queued").order_by("id").first()
    answer_record(item=QueuedItem.of(item), backend="simulated",
        answer=None if error else Answer(text=text, sources=sources or [], latency_ms=321, model="simulated-gpt"),
        error=error,
    )
    return item


def test_sign_in_lands_on_your_workspaces(user) -> None:
    workspace_with_prompts(user=user, prompts=1, name="Acme")
    client = Client()
    page = client.get("/login/")
    assert page.status_code == 200 and 'autocomplete="current-password"' in page.content.decode()
    response = client.post("/login/", {"username": "alice", "password": PASSWORD}, follow=True)
    assert response.redirect_chain[-1][0] == "/"
    assert "Acme" in text_of(response) and "Signed in as alice" in text_of(response)


def test_wrong_password_says_so(user) -> None:
    response = Client().post("/login/", {"username": "alice", "password": "nope"})
    assert response.status_code == 200
    assert "Please enter a correct username and password" in text_of(response)


def test_pages_need_sign_in(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1)
    response = Client().get(f"/workspaces/{workspace.id}/")
    assert response.status_code == 302 and response["Location"].startswith(f"/login/?next=/workspaces/{workspace.id}/")


def test_sign_out_is_a_post(browser) -> None:
    assert browser.post("/logout/").status_code == 302
    assert browser.get("/").status_code == 302


def test_workspace_list_shows_only_your_workspaces(browser, user, stranger) -> None:
    workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "gemini"], name="Mine")
    workspace_with_prompts(user=stranger, prompts=1, name="Theirs")
    page = text_of(browser.get("/"))
    assert "Mine" in page and "2 active prompts" in page and "ChatGPT, Gemini" in page
    assert "Theirs" not in page


def test_someone_elses_workspace_and_group_are_404(browser, stranger) -> None:
    theirs = workspace_with_prompts(user=stranger, prompts=1, providers=["chatgpt"])
    group = job_group_submit(workspace=theirs, user=stranger).job_group
    assert browser.get(f"/workspaces/{theirs.id}/").status_code == 404
    assert browser.post(f"/workspaces/{theirs.id}/run/").status_code == 404
    assert browser.get(f"/runs/{group.id}/").status_code == 404
    assert browser.post(f"/runs/{group.id}/cancel/").status_code == 404
    assert browser.get("/runs/not-a-uuid/").status_code == 404
    assert JobGroup.objects.get(id=group.id).status == "queued"
    assert JobGroup.objects.count() == 1


def test_workspace_page_shows_prompts_providers_runs_and_run_button(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "claude"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    answer(group, "chatgpt")
    response = browser.get(f"/workspaces/{workspace.id}/")
    page = text_of(response)
    assert "ChatGPT" in page and "Claude" in page
    assert all(p.text in page for p in Prompt.objects.filter(workspace=workspace))
    assert "Run now" in page and "Asks 2 prompts × 2 providers × 1 sample = 4 provider calls" in page
    assert f'href="/runs/{group.id}/"' in response.content.decode()
    assert "1 answered of 4" in page and "running" in page and "manual" in page


def test_add_and_deactivate_a_prompt(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    response = browser.post(f"/workspaces/{workspace.id}/prompts/", {"text": "  Which CRM is best for dentists?  "}, follow=True)
    assert "Prompt added" in text_of(response) and "Which CRM is best for dentists?" in text_of(response)
    prompt = Prompt.objects.get(text="Which CRM is best for dentists?")

    response = browser.post(f"/prompts/{prompt.id}/active/", {"is_active": "false"}, follow=True)
    assert "Prompt deactivated" in text_of(response)
    assert not Prompt.objects.get(id=prompt.id).is_active
    group_id = browser.post(f"/workspaces/{workspace.id}/run/")["Location"].split("/")[2]
    assert JobGroup.objects.get(id=group_id).total_prompts == 1  # the deactivated prompt is not asked


def test_empty_prompt_is_refused_with_a_message(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"])
    response = browser.post(f"/workspaces/{workspace.id}/prompts/", {"text": "   "})
    assert response.status_code == 400
    assert "This field is required." in text_of(response)
    assert not Prompt.objects.filter(workspace=workspace).exists()


def test_run_now_opens_the_group_page(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "gemini"])
    response = browser.post(f"/workspaces/{workspace.id}/run/")
    group = JobGroup.objects.get(workspace=workspace)
    assert response.status_code == 302 and response["Location"] == f"/runs/{group.id}/"
    assert group.triggered_by == user
    assert group.expected_responses == 6


def test_run_now_without_active_prompts_says_so(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"])
    response = browser.post(f"/workspaces/{workspace.id}/run/", follow=True)
    assert "Nothing to run: this workspace has no active prompts" in text_of(response)
    assert not JobGroup.objects.exists()


def test_run_now_without_providers_shows_the_domain_error(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    workspace.enabled_providers = []
    workspace.save()
    response = browser.post(f"/workspaces/{workspace.id}/run/", follow=True)
    assert "has no enabled providers" in text_of(response)


def test_group_page_shows_bars_counts_answers_and_buttons(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "gemini"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    answer(group, "chatgpt", text="HubSpot is a solid pick.", sources=[
        {"url": "https://www.g2.com/crm", "title": "G2 CRM", "domain": "g2.com"},
        {"url": "javascript:alert(1)", "title": "evil", "domain": ""},
    ])
    answer(group, "gemini", error="gemini: quota exhausted")
    response = browser.get(f"/runs/{group.id}/")
    html, page = response.content.decode(), text_of(response)

    assert response.status_code == 200
    assert f'data-status-url="/api/runs/{group.id}/status/"' in html
    # The bars split answered (green) from failed (red); the text beside says the same in words.
    assert re.search(r'id="bar-total".*?<rect class="seg-ok" x="0" y="0" width="250".*?'
                     r'<rect class="seg-failed" x="250" y="0" width="250"', html)
    assert re.search(r'id="bar-gemini".*?<rect class="seg-ok" x="0" y="0" width="0".*?'
                     r'<rect class="seg-failed" x="0" y="0" width="500"', html)
    assert "1 answered · 1 failed · 0 cancelled of 4 (50 % finished)" in page
    assert "0 answered · 1 failed · 0 cancelled of 2" in page
    assert "Answered 1" in page and "Failed 1" in page and "Cancelled 0" in page
    assert "running" in page
    assert "HubSpot is a solid pick." in page and '<span class="badge simulated"' in html
    assert '<a href="https://www.g2.com/crm"' in html and 'href="javascript:' not in html
    assert "gemini: quota exhausted" in page
    assert all(p.text in page for p in Prompt.objects.filter(workspace=workspace))
    assert "Cancel run" in page and "Re-run" in page and "Export answers (CSV)" in page
    assert f'href="/api/runs/{group.id}/answers/?format=csv"' in html


def test_group_page_of_a_finished_group_names_the_failed_provider(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt", "gemini"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    answer(group, "chatgpt")
    answer(group, "gemini", error="gemini: API key rejected")
    group.refresh_from_db()
    assert group.status == "completed"
    response = browser.get(f"/runs/{group.id}/")
    page = text_of(response)
    assert "completed with failures" in page and "Completed with failures: 1 of 2 items failed." in page
    assert "Gemini : all 1 items failed; last error: gemini: API key rejected" in page
    assert 'id="cancel-form" hidden' in response.content.decode()
    assert "Re-run failed" in page
    assert 'data-progress-status="completed"' in response.content.decode()


def test_group_page_pages_answers_of_big_groups(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=60, providers=["chatgpt", "claude"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    first = browser.get(f"/runs/{group.id}/")
    assert first.content.decode().count('class="answer status-') == 50  # 25 prompts x 2 providers
    assert "Page 1 of 3" in text_of(first)
    last = browser.get(f"/runs/{group.id}/?page=3")
    assert last.content.decode().count('class="answer status-') == 20
    assert 'data-page="3"' in last.content.decode() and 'data-page-size="50"' in last.content.decode()


def test_cancel_button_cancels_and_says_how_many(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    response = browser.post(f"/runs/{group.id}/cancel/", follow=True)
    assert "Run cancelled: 2 waiting items cancelled" in text_of(response)
    assert "This run was cancelled" in text_of(response)
    assert JobGroup.objects.get(id=group.id).status == "cancelled"
    again = browser.post(f"/runs/{group.id}/cancel/", follow=True)
    assert "This run is already cancelled" in text_of(again)


def test_rerun_buttons_start_linked_groups(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "gemini"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    failed = answer(group, "gemini", error="gemini: down")
    browser.post(f"/runs/{group.id}/cancel/")

    response = browser.post(f"/runs/{group.id}/rerun/", {"only_failed": "true"})
    rerun = JobGroup.objects.get(rerun_of=group)
    assert response["Location"] == f"/runs/{rerun.id}/"
    assert rerun.expected_responses == 4
    assert (failed.provider, failed.prompt_id) in set(JobItem.objects.filter(group=rerun).values_list("provider", "prompt_id"))

    full = browser.post(f"/runs/{rerun.id}/rerun/", {"only_failed": "false"})
    assert JobGroup.objects.get(rerun_of=rerun).expected_responses == 4
    assert full.status_code == 302


def test_rerun_failed_with_nothing_failed_says_so(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    answer(group, "chatgpt")
    response = browser.post(f"/runs/{group.id}/rerun/", {"only_failed": "true"}, follow=True)
    assert "Nothing to re-run: every item of this run was answered" in text_of(response)


def test_forms_need_the_csrf_token(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    client = Client(enforce_csrf_checks=True)
    client.force_login(user)
    assert client.post(f"/workspaces/{workspace.id}/run/").status_code == 403
    assert not JobGroup.objects.exists()


def test_progress_on_the_page_matches_the_status_api(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    answer(group, "chatgpt")
    api_body = browser.get(f"/api/runs/{group.id}/status/").json()
    page = browser.get(f"/runs/{group.id}/").content.decode()
    assert f'data-update-id="{api_body["response"]["updateId"]}"' in page
    assert progress_get(JobGroup.objects.get(id=group.id))["stats"]["actualResponses"] == 1


def test_unknown_page_is_a_friendly_404(browser) -> None:
    response = browser.get("/runs/00000000-0000-0000-0000-000000000000/")
    assert response.status_code == 404
    assert "belongs to a workspace you are not a member of" in text_of(response)


def test_run_buttons_share_the_api_submission_throttle(browser, user, monkeypatch) -> None:
    from django.core.cache import cache
    from rest_framework.test import APIClient

    from agent.throttles import RunSubmitThrottle

    monkeypatch.setattr(RunSubmitThrottle, "THROTTLE_RATES", {"submit": "3/min"})  # DRF reads rates at class definition
    cache.clear()
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    api = APIClient()
    api.force_authenticate(user)
    assert [api.post(f"/api/workspaces/{workspace.id}/runs/").status_code for _ in range(2)] == [202, 202]
    assert browser.post(f"/workspaces/{workspace.id}/run/").status_code == 302

    refused = browser.post(f"/workspaces/{workspace.id}/run/")
    assert refused.status_code == 429 and 0 < int(refused["Retry-After"]) <= 60
    assert "Too many runs started in a short time; try again in" in text_of(refused)
    group = JobGroup.objects.filter(workspace=workspace).first()
    assert browser.post(f"/runs/{group.id}/rerun/").status_code == 429
    assert JobGroup.objects.filter(workspace=workspace).count() == 3
    cache.clear()


def test_every_page_has_a_favicon_and_the_browser_default_path_finds_it(browser, user) -> None:
    assert '<link rel="icon" href="/static/agent/favicon.svg"' in browser.get("/").content.decode()
    response = Client().get("/favicon.ico")
    assert response.status_code == 301 and response["Location"] == "/static/agent/favicon.svg"


def test_re_run_of_failed_items_links_both_ways_and_counts_what_it_answered(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    original = job_group_submit(workspace=workspace, user=user).job_group
    answer(original, "chatgpt", error="chatgpt: timeout")
    answer(original, "chatgpt", error="chatgpt: timeout")
    rerun = browser.post(f"/runs/{original.id}/rerun/", {"only_failed": "true"})
    rerun_group = JobGroup.objects.get(rerun_of=original)
    assert rerun["Location"] == f"/runs/{rerun_group.id}/"
    answer(rerun_group, "chatgpt")
    assert f'href="/runs/{original.id}/"' in browser.get(f"/runs/{rerun_group.id}/").content.decode()
    page = text_of(browser.get(f"/runs/{original.id}/"))
    assert "Re-runs of this run:" in page
    assert "1 of this run's 2 unanswered items was answered by its re-runs." in page
    # identical errors are one line, not two cards' worth
    assert "2 × ChatGPT: chatgpt: timeout" in page


def test_run_page_filters_answers_by_provider_and_status(browser, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "gemini"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    answer(group, "chatgpt", text="Only ChatGPT said this.")
    answer(group, "gemini", error="gemini: quota exhausted")
    html = browser.get(f"/runs/{group.id}/?provider=gemini&status=failed").content.decode()
    assert html.count('data-item-id=') == 1 and "Only ChatGPT said this." not in html
    assert browser.get(f"/runs/{group.id}/?provider=nope&status=weird").status_code == 200  # ignored, never a 500
