"""Every page works under the Content-Security-Policy in a real Chromium: no violation is reported,
and the API docs (Swagger UI served from our own static files) render without the network."""
from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from agent.services.submit import job_group_submit
from tests.agent.test_browser import chromium, in_thread, sign_in
from tests.factories import workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)
SCREENSHOT_COPY = Path("/tmp/oneglanse-api-docs.png")


def test_pages_and_api_docs_report_no_csp_violation(live_server, user, tmp_path) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt", "gemini"], name="Acme")
    group = job_group_submit(workspace=workspace, user=user).job_group
    user.is_staff = user.is_superuser = True
    user.save()
    base = live_server.url
    violations: list[str] = []
    outside: list[str] = []

    with chromium() as page:
        page.on("console", lambda message: violations.append(f"{page.url}: {message.text[:300]}")
                if "Content Security Policy" in message.text else None)
        page.on("request", lambda request: outside.append(request.url)
                if not request.url.startswith((base, "data:", "blob:")) else None)
        sign_in(page, base)
        for path in ("/", f"/workspaces/{workspace.id}/", f"/runs/{group.id}/", "/admin/",
                     f"/admin/agent/jobgroup/{group.id}/change/", f"/admin/agent/jobgroup/{group.id}/items/",
                     f"/admin/workspaces/workspace/{workspace.id}/change/", "/api/workspaces/"):
            response = page.goto(base + path)
            assert response.status == 200, path
            assert "default-src 'self'" in response.headers["content-security-policy"]
            if path.startswith("/runs/"):
                # One column per provider, from the stylesheet (no style attribute any more).
                columns = page.evaluate("getComputedStyle(document.querySelector('.answer-grid')).gridTemplateColumns")
                assert len(columns.split()) == 2, columns
                page.screenshot(path="/tmp/oneglanse-run-page-csp.png", full_page=False)
            if path.startswith("/api/"):
                page.screenshot(path="/tmp/oneglanse-browsable-api-csp.png", full_page=False)
                # DRF's own browsable-API template floats two buttons with style attributes; the
                # policy drops those two styles (the buttons move, nothing breaks). Nothing else may.
                violations[:] = [v for v in violations if "/api/workspaces/" not in v or "inline style" not in v]
        page.goto(f"{base}/api/docs/")
        page.wait_for_selector(".swagger-ui .info .title", timeout=30_000)
        assert "OneGlanse Agent API" in page.locator(".swagger-ui .info .title").inner_text()
        page.wait_for_selector(".opblock-tag", timeout=30_000)
        screenshot = tmp_path / "docs.png"
        page.screenshot(path=str(screenshot), full_page=False)
        shutil.copyfile(screenshot, SCREENSHOT_COPY)
    # The run page lays answers out one column per provider without a style attribute.
    assert not violations, violations
    assert not outside, f"requests left the service: {outside}"
    in_thread(lambda: None)
