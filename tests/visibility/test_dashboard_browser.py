"""The visibility dashboard in a real headless Chromium, under a strict Content-Security-Policy, on a
desktop and a phone-sized screen: charts drawn by uPlot with the Wilson band, the figures tables,
and a prompt × provider cell that opens its answers with every brand marked."""
from __future__ import annotations

from pathlib import Path

import pytest
from django.conf import settings

from tests.agent.test_browser import chromium, in_thread, sign_in
from tests.factories import MembershipFactory, PromptFactory, WorkspaceFactory
from visibility.models import Brand, RunStat
from visibility.services.demo_history import simulated_history_create

pytestmark = pytest.mark.django_db(transaction=True)

CSP = ("default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "object-src 'none'; base-uri 'self'; form-action 'self'; frame-ancestors 'none'")
VENDOR = Path(settings.BASE_DIR) / "agent/static/agent/vendor/uPlot.iife.min.js"
PROVIDERS = ["chatgpt", "perplexity", "gemini", "claude"]


@pytest.fixture
def history(user):
    workspace = WorkspaceFactory(name="Northwind", enabled_providers=PROVIDERS, samples_per_run=3)
    MembershipFactory(user=user, workspace=workspace)
    PromptFactory(workspace=workspace, text="What are the best CRM tools for a 20-person startup?")
    PromptFactory(workspace=workspace, text="What are good alternatives to Salesforce for small businesses?")
    Brand.objects.create(workspace=workspace, name="Northwind", domains=["northwind.io"], is_own=True)
    for name in ("HubSpot", "Pipedrive", "Zoho"):
        Brand.objects.create(workspace=workspace, name=name, domains=[f"{name.lower()}.com"])
    simulated_history_create(workspace=workspace, days=14)
    return workspace


def _with_csp(route) -> None:
    """Serve our page with the production CSP, so any inline script or style would be refused."""
    response = route.fetch()
    route.fulfill(response=response, headers={**response.headers, "content-security-policy": CSP})


def test_dashboard_draws_trend_bands_and_tables_under_csp_on_desktop_and_phone(live_server, user, history) -> None:
    if not VENDOR.is_file():
        pytest.fail("uPlot is not installed: run bin/setup (it runs bin/static-vendor)")
    assert RunStat.objects.filter(workspace=history, provider="all").count() == 14
    base = live_server.url
    violations: list[str] = []
    outside: list[str] = []
    url = f"{base}/workspaces/{history.id}/visibility/"
    with chromium() as page:
        page.on("console", lambda m: violations.append(m.text) if "Content Security Policy" in m.text else None)
        page.on("request", lambda r: outside.append(r.url) if not r.url.startswith((base, "data:", "blob:")) else None)
        sign_in(page, base)
        page.route("**/visibility/**", _with_csp)
        page.goto(f"{base}/workspaces/{history.id}/")
        page.get_by_role("link", name="Open the visibility dashboard").click()
        page.wait_for_url(url)
        # Five small charts (all assistants + four) with the band, and the share-of-voice chart.
        page.wait_for_function("() => document.querySelectorAll('.uplot').length === 6")
        assert page.locator("#visibility-charts figcaption").all_inner_texts() == [
            "All assistants", "ChatGPT", "Perplexity", "Gemini", "Claude"]
        legend = page.locator("#visibility-charts .uplot").first.locator(".u-legend").inner_text()
        assert "95 % low" in legend and "95 % high" in legend
        assert "Northwind over 14 runs" in page.locator("#headline-heading").inner_text()
        kpi = page.locator("#kpi-visibility").inner_text()
        assert kpi.endswith("%") and 0 < int(kpi.split()[0]) < 100
        rows = page.locator("#brand-table tbody tr")
        assert rows.count() == 4 and "yours" in rows.first.inner_text()
        assert page.locator("#provider-table tbody tr").count() == 5
        matrix = page.locator("#prompt-matrix tbody tr")
        assert matrix.count() == 2
        assert " of 3" in matrix.first.locator("td").first.inner_text()
        page.screenshot(path="/tmp/oneglanse-visibility-desktop.png", full_page=True)

        # A competitor chosen in the brand menu: the page follows it.
        page.select_option("#filter-brand", label="HubSpot")
        page.wait_for_url("**brand=*")
        page.wait_for_function("() => document.querySelectorAll('.uplot').length === 6")
        assert "HubSpot over 14 runs" in page.locator("#headline-heading").inner_text()

        page.set_viewport_size({"width": 390, "height": 844})
        page.goto(url)
        page.wait_for_function("() => document.querySelectorAll('.uplot').length === 6")
        # Nothing wider than the phone: tables scroll inside their own box, charts fit the screen.
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        widths = page.evaluate("[...document.querySelectorAll('.uplot')].map(e => e.getBoundingClientRect().width)")
        assert all(w <= 390 for w in widths), widths
        page.screenshot(path="/tmp/oneglanse-visibility-phone.png", full_page=True)
        page.screenshot(path="/tmp/oneglanse-visibility-phone-top.png")
        for section in ("trend", "sov", "prompts"):
            page.locator(f"#{section}-heading").locator("..").screenshot(
                path=f"/tmp/oneglanse-visibility-phone-{section}.png")

        page.locator("#prompt-matrix tbody tr").first.locator("td a").first.click()
        page.wait_for_url("**/visibility/answers/**")
        assert page.locator("article").count() == 3  # the three samples of that prompt on ChatGPT
        # Names and web sites written in the text are both mentions; each mark names its brand.
        marked = page.locator(".marked-answer mark").evaluate_all("ms => ms.map(m => [m.textContent, m.title])")
        assert marked and {title for _, title in marked} <= {"Northwind", "HubSpot", "Pipedrive", "Zoho"}
        assert all(text.lower().startswith(title.lower()[:4]) for text, title in marked), marked
        page.screenshot(path="/tmp/oneglanse-visibility-answers-phone.png", full_page=True)
    assert not violations, violations
    assert not outside, outside
    in_thread(lambda: None)


def test_strangers_get_404_on_the_dashboard_and_the_answers(client, stranger, history) -> None:
    group_id = RunStat.objects.filter(workspace=history).values_list("group_id", flat=True).first()
    client.force_login(stranger)
    assert client.get(f"/workspaces/{history.id}/visibility/").status_code == 404
    assert client.get(f"/runs/{group_id}/visibility/answers/").status_code == 404
    brand = Brand.objects.filter(workspace=history).first()
    assert client.post(f"/brands/{brand.id}/delete/").status_code == 404
    assert Brand.objects.filter(id=brand.id).exists()
