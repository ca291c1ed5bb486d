"""The group page in a real headless Chromium: sign in, run, watch every bar reach 100 %, read the answers.

Debian's `chromium` is driven by Playwright for Python through `executable_path`; nothing downloads
a browser. The test is skipped only when no Chromium binary exists (`.ci/run` installs it).
"""
from __future__ import annotations

import os
import shutil
import threading
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

from agent.models import JobGroup
from tests.factories import workspace_with_prompts
from workspaces.models import Membership

pytestmark = [pytest.mark.django_db(transaction=True), pytest.mark.consumers]

PASSWORD = "correct horse battery staple"
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
SCREENSHOT_COPY = Path("/tmp/oneglanse-group-page.png")
# Every bar's three segments (answered, failed, cancelled) together span the whole bar.
ALL_BARS_FULL = ("() => [...document.querySelectorAll('#group svg.split-bar')].every(svg => "
                 "[...svg.querySelectorAll('rect')].reduce((sum, r) => sum + Number(r.getAttribute('width')), 0) >= 1000)")


def chromium_binary() -> str | None:
    for candidate in (os.environ.get("CHROMIUM_BINARY"), shutil.which("chromium"), shutil.which("chromium-browser"),
                      "/usr/bin/chromium"):
        if candidate and Path(candidate).is_file():
            return candidate
    return None


@contextmanager
def chromium(*, timezone_id: str | None = None):
    """A fresh page in Debian's Chromium. Playwright's sync API keeps an event loop on this thread,
    so the tests touch the database only before and after this block (or from another thread)."""
    binary = chromium_binary()
    if binary is None:
        pytest.skip("No Chromium found (looked for $CHROMIUM_BINARY, chromium, chromium-browser, /usr/bin/chromium); "
                    "install Debian's package: apt-get install chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(executable_path=binary, args=CHROMIUM_ARGS, headless=True)
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 900}, timezone_id=timezone_id)
            page.set_default_timeout(20_000)
            yield page
        finally:
            browser.close()


def in_thread(work) -> None:
    """Run database work off the Playwright thread (Django refuses ORM calls beside a running event loop)."""
    errors: list[BaseException] = []

    def run() -> None:
        try:
            work()
        except BaseException as exc:  # surfaced in the test below
            errors.append(exc)
        finally:
            from django.db import connection

            connection.close()

    thread = threading.Thread(target=run)
    thread.start()
    thread.join()
    if errors:
        raise errors[0]


def sign_in(page, base_url: str) -> None:
    page.goto(f"{base_url}/login/")
    page.get_by_label("Username").fill("alice")
    page.get_by_label("Password").fill(PASSWORD)
    page.get_by_label("Password").press("Enter")
    page.wait_for_url(f"{base_url}/")


def test_run_from_the_browser_fills_every_bar_and_shows_answers(live_server, user, consumers, tmp_path) -> None:
    workspace = workspace_with_prompts(user=user, prompts=4, providers=["chatgpt", "perplexity", "gemini", "claude"], name="Acme")
    consumers.start_all(workers=2, AGENT_SIMULATED_LATENCY_MS="500")
    status_calls: list[float] = []
    answer_calls: list[float] = []

    with chromium() as page:
        def seen(request) -> None:
            if request.url.endswith("/status/"):
                status_calls.append(time.monotonic())
            elif "/answers/" in request.url:
                answer_calls.append(time.monotonic())

        page.on("request", seen)
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Acme").click()
        # Keyboard only: focus the real button and press Enter.
        page.get_by_role("button", name="Run now").focus()
        page.keyboard.press("Enter")
        page.wait_for_url("**/runs/*/")
        assert page.locator("#group svg.split-bar").count() == 5  # the run and 4 providers

        page.wait_for_function(ALL_BARS_FULL, timeout=90_000)
        page.wait_for_function("() => document.getElementById('group-status-badge').textContent === 'completed'")
        completed_at = time.monotonic()
        page.wait_for_function("() => !document.querySelector('.answer[data-status=queued], .answer[data-status=running]')")
        assert page.locator("#bar-total-text").inner_text() == "16 answered · 0 failed · 0 cancelled of 16 (100 % finished)"
        assert page.locator("#count-ok").inner_text() == "16"
        assert page.locator("#group-status-text").inner_text() == "Completed: every one of the 16 items was answered."
        assert page.locator("#bar-chatgpt-text").inner_text() == "4 answered · 0 failed · 0 cancelled of 4 · completed"
        first_answer = page.locator(".answer[data-provider=chatgpt] .answer-text").first
        assert "[Simulated chatgpt answer]" in first_answer.inner_text()
        assert page.locator(".answer .badge.simulated").count() == 16
        assert page.locator(".answer .sources a[href^='https://']").count() >= 16
        assert page.locator("#cancel-form").is_hidden()

        screenshot = tmp_path / "group-page.png"
        page.screenshot(path=str(screenshot), full_page=True)
        shutil.copyfile(screenshot, SCREENSHOT_COPY)

        time.sleep(4.5)  # two more polling periods: none may happen once the group is completed
        assert not [t for t in status_calls if t > completed_at + 0.5]
        assert 1 <= len(answer_calls) <= len(status_calls)

    group = JobGroup.objects.get(workspace=workspace)
    assert group.status == "completed" and group.triggered_by == user
    assert screenshot.stat().st_size > 10_000


def test_page_names_the_failing_provider_and_why(live_server, user, consumers) -> None:
    workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "gemini"], name="Acme")
    for queue in ("chatgpt", "gemini"):
        consumers.start(queue, workers=2, AGENT_SIMULATED_LATENCY_MS="100", AGENT_SIMULATED_FAILURE_RATE="gemini=1.0")

    with chromium() as page:
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Acme").click()
        page.get_by_role("button", name="Run now").click()
        page.wait_for_url("**/runs/*/")
        page.wait_for_function("() => document.getElementById('group-status-badge').textContent === 'completed with failures'",
                               timeout=60_000)
        page.wait_for_function("() => !document.getElementById('group-problem').hidden")
        problems = page.locator("#group-problem").inner_text()
        assert "Gemini" in problems and "simulated failure" in problems and "ChatGPT" not in problems
        assert page.get_by_role("button", name="Re-run failed").is_visible()
        assert page.locator(".answer[data-provider=gemini] .error").first.inner_text().startswith("gemini: simulated failure")


def test_page_says_when_the_group_is_no_longer_known(live_server, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"], name="Acme")

    with chromium() as page:
        sign_in(page, live_server.url)
        page.get_by_role("link", name="Acme").click()
        page.get_by_role("button", name="Run now").click()  # no consumer runs: the group stays queued
        page.wait_for_url("**/runs/*/")
        assert page.locator("#group-status-badge").inner_text() == "queued"
        in_thread(lambda: Membership.objects.filter(user=user, workspace=workspace).delete())
        page.wait_for_function("() => document.getElementById('group-status-badge').textContent === 'Unknown run'")
        assert "was not found" in page.locator("#group-status-text").inner_text()
