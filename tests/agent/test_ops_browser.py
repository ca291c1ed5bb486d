"""The operations page in a real headless Chromium: live queue table, pause with confirmation, chart, failures."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.models import ProviderQueue
from agent.services.submit import job_group_submit
from tests.agent.test_browser import chromium, in_thread, sign_in
from tests.factories import wait_for_group_closed, workspace_with_prompts

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

SCREENSHOT_COPY = Path("/tmp/oneglanse-ops-page.png")


def test_ops_page_shows_queues_live_and_pauses_after_confirmation(live_server, user, consumers, tmp_path) -> None:
    user.is_staff = True
    user.save()
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "gemini"], name="Acme")
    for queue in ("chatgpt", "gemini"):
        consumers.start(queue, workers=2, AGENT_SIMULATED_FAILURE_RATE="gemini=1.0")
    group = job_group_submit(workspace=workspace, user=user).job_group
    wait_for_group_closed(group.id, timeout=60)

    with chromium() as page:
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Operations").click()
        page.wait_for_url("**/ops/")
        rows = page.locator("#queues tbody tr")
        assert rows.count() == 4
        chatgpt = page.locator("#queues tr[data-provider=chatgpt]")
        page.wait_for_function(
            "() => document.querySelector('#queues tr[data-provider=chatgpt] .q-consumers').textContent.startsWith('1 ')")
        assert chatgpt.locator(".q-last-hour").inner_text() == "3 ok, 0 failed"
        assert page.locator("#queues tr[data-provider=gemini] .q-last-hour").inner_text() == "0 ok, 3 failed"
        assert page.locator("#failures tbody tr").count() == 3
        assert "gemini: simulated failure" in page.locator("#failures tbody").inner_text()
        assert page.locator("#failures tbody a").first.get_attribute("href").endswith(f"/admin/agent/jobgroup/{group.id}/change/")
        assert page.locator("#throughput-chart canvas").count() == 1  # uPlot drew the last hour

        # Dismissing the confirmation sends nothing.
        page.once("dialog", lambda dialog: dialog.dismiss())
        chatgpt.get_by_role("button", name="Pause").click()
        page.wait_for_timeout(500)
        assert chatgpt.locator(".q-state").inner_text() == "Running"
        questions: list[str] = []

        def accept(dialog) -> None:
            questions.append(dialog.message)
            dialog.accept()

        page.once("dialog", accept)
        chatgpt.get_by_role("button", name="Pause").click()
        page.wait_for_url("**/ops/")
        page.get_by_text("ChatGPT queue paused").wait_for()
        assert "Pause the ChatGPT queue?" in questions[0]
        assert chatgpt.locator(".q-state").inner_text() == "Paused by alice"
        assert chatgpt.get_by_role("button", name="Resume").is_visible()

        # Resumed elsewhere (the CLI, another operator): the table follows within a poll.
        in_thread(lambda: ProviderQueue.objects.filter(provider="chatgpt").update(paused=False, paused_by=None))
        page.wait_for_function(
            "() => document.querySelector('#queues tr[data-provider=chatgpt] .q-state').textContent === 'Running'")
        assert chatgpt.get_by_role("button", name="Pause").is_visible()

        screenshot = tmp_path / "ops.png"
        page.screenshot(path=str(screenshot), full_page=True)
        shutil.copyfile(screenshot, SCREENSHOT_COPY)


def test_ops_page_is_404_for_anyone_but_staff(live_server, user) -> None:
    with chromium() as page:
        sign_in(page, live_server.url)
        response = page.goto(f"{live_server.url}/ops/")
        assert response.status == 404
        assert page.get_by_role("link", name="Operations").count() == 0
