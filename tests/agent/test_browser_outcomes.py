"""Run outcomes, workspace settings and members in a real headless Chromium, with screenshots in /tmp.

Each run outcome a user meets (completed, completed with failures, cancelled) reads the same in
the badge, the bars and their text; the pages need nothing the strict CSP would block.
"""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.models import JobGroup
from tests.agent.test_browser import chromium, in_thread, sign_in
from tests.factories import MembershipFactory, PromptFactory, UserFactory, WorkspaceFactory, workspace_with_prompts
from workspaces.models import Membership

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

SCREENSHOTS = Path("/tmp")
BADGE_IS = "(text) => document.getElementById('group-status-badge').textContent.trim() === text"


def shot(page, name: str, tmp_path: Path) -> None:
    path = tmp_path / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    shutil.copyfile(path, SCREENSHOTS / f"oneglanse-{name}.png")


def csp_watch(page) -> list[str]:
    """Console reports of anything the Content-Security-Policy blocked (inline script, style, handler)."""
    blocked: list[str] = []
    page.on("console", lambda message: blocked.append(message.text) if "Content Security Policy" in message.text else None)
    return blocked


def segment_width(page, provider: str, segment: str) -> int:
    return int(page.locator(f"#bar-{provider} .seg-{segment}").get_attribute("width"))


def test_a_run_with_a_failing_provider_reads_completed_with_failures_and_its_bar_is_red(
    live_server, user, consumers, tmp_path,
) -> None:
    workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "gemini"], name="Acme")
    for queue in ("chatgpt", "gemini"):
        consumers.start(queue, workers=2, AGENT_SIMULATED_LATENCY_MS="100", AGENT_SIMULATED_FAILURE_RATE="gemini=1.0")

    with chromium() as page:
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Acme").click()
        assert "6 provider calls" in page.locator("#run-cost").inner_text()
        page.get_by_role("button", name="Run now").click()
        page.wait_for_url("**/runs/*/")
        page.wait_for_function(BADGE_IS, arg="completed with failures", timeout=60_000)
        assert page.locator(".provider-row[data-provider=gemini]").get_attribute("data-outcome") == "failed"
        assert page.locator(".provider-row[data-provider=chatgpt]").get_attribute("data-outcome") == "completed"
        assert segment_width(page, "gemini", "failed") == 1000 and segment_width(page, "gemini", "ok") == 0
        assert segment_width(page, "chatgpt", "ok") == 1000
        assert page.locator("#bar-gemini-text").inner_text().startswith("0 answered · 3 failed")
        assert page.locator("#bar-total-text").inner_text().startswith("3 answered · 3 failed · 0 cancelled of 6")
        groups = page.locator("#error-groups li")
        assert groups.count() == 1 and "3 ×" in groups.first.inner_text()  # one line, not three copies
        page.wait_for_function("() => !document.getElementById('group-problem').hidden")
        shot(page, "run-with-failures", tmp_path)

        page.get_by_role("button", name="Re-run failed").click()
        page.wait_for_url("**/runs/*/")
        assert page.get_by_role("link", name="the run it re-runs").is_visible()


def test_a_cancelled_run_reads_cancelled_everywhere_not_completed(live_server, user, tmp_path) -> None:
    workspace_with_prompts(user=user, prompts=4, providers=["chatgpt", "claude"], name="Acme")

    with chromium() as page:
        blocked = csp_watch(page)
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Acme").click()
        page.get_by_role("button", name="Run now").click()  # no consumer: it stays queued until cancelled
        page.wait_for_url("**/runs/*/")
        assert page.locator("#group-status-badge").inner_text() == "queued"
        asked: list[str] = []
        page.once("dialog", lambda dialog: (asked.append(dialog.message), dialog.accept()))
        page.get_by_role("button", name="Cancel run").click()
        page.wait_for_function(BADGE_IS, arg="cancelled")
        assert asked and "Cancel this run" in asked[0]
        for provider in ("chatgpt", "claude"):
            assert page.locator(f".provider-row[data-provider={provider}]").get_attribute("data-outcome") == "cancelled"
            assert segment_width(page, provider, "cancelled") == 1000
            assert "0 answered · 0 failed · 4 cancelled" in page.locator(f"#bar-{provider}-text").inner_text()
        assert "completed" not in page.locator("#progress-heading + div").inner_text()
        shot(page, "run-cancelled", tmp_path)
        assert not blocked, blocked

    group = JobGroup.objects.get()
    assert group.status == "cancelled"


def test_dismissing_the_cancel_question_keeps_the_run(live_server, user) -> None:
    workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"], name="Acme")
    with chromium() as page:
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Acme").click()
        page.get_by_role("button", name="Run now").click()
        page.wait_for_url("**/runs/*/")
        page.once("dialog", lambda dialog: dialog.dismiss())
        page.get_by_role("button", name="Cancel run").click()
        page.wait_for_timeout(500)
        assert page.locator("#group-status-badge").inner_text() == "queued"
    assert JobGroup.objects.get().status == "queued"


def test_a_completed_run_shows_times_in_the_viewers_zone_and_full_green_bars(live_server, user, consumers, tmp_path) -> None:
    workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "perplexity"], name="Acme")
    consumers.start_all(workers=2, AGENT_SIMULATED_LATENCY_MS="50")
    with chromium(timezone_id="Asia/Tokyo") as page:
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Acme").click()
        page.get_by_role("button", name="Run now").click()
        page.wait_for_url("**/runs/*/")
        page.wait_for_function(BADGE_IS, arg="completed", timeout=60_000)
        assert segment_width(page, "chatgpt", "ok") == 1000
        assert "Tokyo" in page.locator("h1 time").get_attribute("title")
        page.get_by_role("link", name="Acme").click()
        row = page.locator("table.runs tbody tr").first
        assert "completed" in row.inner_text() and "4 answered" in row.inner_text() and "manual" in row.inner_text()
        assert "ago" in row.locator("time").inner_text() or "now" in row.locator("time").inner_text()
        shot(page, "workspace-page", tmp_path)


def test_workspace_without_providers_offers_a_way_to_enable_them(live_server, user, tmp_path) -> None:
    workspace = WorkspaceFactory(name="Empty", enabled_providers=[])
    MembershipFactory(user=user, workspace=workspace, role="owner")
    PromptFactory(workspace=workspace)
    with chromium() as page:
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Empty").click()
        assert page.get_by_role("button", name="Run now").is_disabled()
        page.get_by_role("link", name="Enable providers").click()
        page.get_by_label("Gemini").check()
        page.get_by_role("button", name="Save settings").click()
        page.wait_for_url(f"**/workspaces/{workspace.id}/")
        assert page.get_by_role("button", name="Run now").is_enabled()


def test_create_a_workspace_and_invite_a_member_from_the_pages(live_server, user, tmp_path) -> None:
    in_thread(lambda: UserFactory(username="bob"))
    with chromium() as page:
        blocked = csp_watch(page)
        sign_in(page, live_server.url)
        page.get_by_role("link", name="New workspace").click()
        page.get_by_label("Name").fill("Acme CRM")
        page.get_by_label("Perplexity").uncheck()
        shot(page, "workspace-new", tmp_path)
        page.get_by_role("button", name="Create workspace").click()
        page.wait_for_url("**/workspaces/*/")
        assert page.get_by_role("heading", name="Acme CRM").is_visible()
        page.get_by_role("link", name="Members").click()
        page.get_by_label("Username").fill("bob")
        page.get_by_role("button", name="Add member").click()
        assert page.locator("tr[data-username=bob]").is_visible()
        page.get_by_label("Role of bob").select_option("owner")
        page.locator("tr[data-username=bob]").get_by_role("button", name="Change role").click()
        assert "bob is now owner" in page.locator(".messages").inner_text()
        shot(page, "workspace-members", tmp_path)
        assert not blocked, blocked

    roles = {}
    in_thread(lambda: roles.update(Membership.objects.filter(workspace__name="Acme CRM").values_list("user__username", "role")))
    assert roles == {"alice": "owner", "bob": "owner"}


def test_a_member_sees_members_and_settings_read_only(live_server, user, tmp_path) -> None:
    workspace = WorkspaceFactory(name="Theirs")
    MembershipFactory(user=user, workspace=workspace, role="member")
    MembershipFactory(user__username="olivia", workspace=workspace, role="owner")
    with chromium() as page:
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Theirs").click()
        page.get_by_role("link", name="Members").click()
        assert page.locator("tr[data-username=olivia]").is_visible()
        assert page.get_by_role("button", name="Add member").count() == 0 and page.locator("select").count() == 0
        shot(page, "workspace-members-read-only", tmp_path)
        page.get_by_role("link", name="Settings").click()
        assert page.get_by_label("Name").is_disabled()
        assert page.get_by_role("button", name="Save settings").count() == 0
