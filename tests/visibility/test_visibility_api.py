"""Brands API, the run visibility and the workspace trend, on hand-written answers with hand-computed figures."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from django.core.management import call_command
from django.utils import timezone

from agent.models import JobGroup, JobItem
from tests.factories import JobGroupFactory, JobItemFactory, MembershipFactory, PromptFactory
from tests.visibility.findings import brand_findings, item_findings, item_raw_findings
from visibility.models import MAX_BRANDS_PER_WORKSPACE, Brand
from visibility.services.aggregates import job_group_visibility_aggregate
from visibility.services.analysis import items_analyse
from visibility.services.sweep import visibility_sweep

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(user):
    return MembershipFactory(user=user).workspace


@pytest.fixture
def brands(workspace) -> dict[str, Brand]:
    return {
        "acme": Brand.objects.create(
            workspace=workspace, name="Acme", aliases=["Acme Corp"], domains=["acme.com"], is_own=True
        ),
        "globex": Brand.objects.create(workspace=workspace, name="Globex", domains=["globex.com"]),
        "monday": Brand.objects.create(workspace=workspace, name="Monday", domains=["monday.com"], match_case=True),
    }


def answers_write(group: JobGroup, prompt, rows: list[tuple]) -> list[JobItem]:
    items = []
    for provider, status, text, sources in rows:
        items.append(
            JobItemFactory(group=group, prompt=prompt, provider=provider, status=status, text=text, sources=sources)
        )
    items_analyse(item_ids=[item.id for item in items])  # as when they were recorded
    return items


@pytest.fixture
def run(workspace, brands) -> JobGroup:
    """Four ok answers and one failed, each exercising a rule; figures worked out in the tests below."""
    group = JobGroupFactory(workspace=workspace, providers=["chatgpt", "perplexity"])
    first, second, third = PromptFactory.create_batch(3, workspace=workspace)
    answers_write(
        group,
        first,
        [
            (
                "chatgpt",
                "ok",
                "Acme's tools beat Globex. Try acme.com.",
                [
                    {"url": "https://blog.acme.com/x", "title": "x", "domain": "blog.acme.com", "cited": True},
                    {"url": "https://g2.com/y", "title": "y", "domain": "g2.com", "cited": False},
                ],
            ),
            ("perplexity", "failed", "Acme Acme Acme", []),
        ],
    )
    answers_write(group, second, [("chatgpt", "ok", "Globex first, then ACME.", [])])
    answers_write(
        group,
        third,
        [
            (
                "chatgpt",
                "ok",
                "Nothing about AcmeCorp or monday plans.",
                [{"url": "https://www.globex.com/", "title": "g", "domain": "www.globex.com"}],
            ),
            (
                "perplexity",
                "ok",
                "See Monday for work. Acme Corp is fine.",
                [
                    {"url": "https://acme.com/", "title": "a", "domain": "acme.com", "cited": True},
                    {"url": "https://notacme.com/", "title": "n", "domain": "notacme.com", "cited": True},
                ],
            ),
        ],
    )
    return group


def by_name(rows: list[dict]) -> dict[str, dict]:
    return {row["name"]: row for row in rows}


def test_run_visibility_matches_hand_computed_figures(api, run) -> None:
    body = api.get(f"/api/runs/{run.id}/visibility/").json()
    assert (body["run"], body["analysis_version"], body["answers"], body["failed"]) == (str(run.id), 1, 4, 1)
    brands = by_name(body["brands"])
    assert [b["name"] for b in body["brands"]] == ["Acme", "Globex", "Monday"]  # own brand first
    # Acme: answers 1, 2 ("ACME"), 4 ("Acme Corp"); ranks 1, 2, 2; cited by blog.acme.com and acme.com.
    assert brands["Acme"] == {
        "id": brands["Acme"]["id"],
        "name": "Acme",
        "is_own": True,
        "mentioned": 3,
        "visibility": 0.75,
        "visibility_low": 0.3006,
        "visibility_high": 0.9544,
        "share_of_voice": 0.5,
        "avg_rank": 1.6667,
        "cited": 2,
        "citation_rate": 0.5,
    }
    # Globex: answers 1 (rank 2) and 2 (rank 1); cited only by answer 3's www.globex.com (no "cited" key).
    assert (brands["Globex"]["mentioned"], brands["Globex"]["avg_rank"], brands["Globex"]["cited"]) == (2, 1.5, 1)
    assert brands["Globex"]["share_of_voice"] == 0.3333
    # Monday: only the capitalised one in answer 4, first there; "monday" in answer 3 is not it.
    assert (brands["Monday"]["mentioned"], brands["Monday"]["avg_rank"], brands["Monday"]["share_of_voice"]) == (
        1,
        1.0,
        0.1667,
    )
    # g2.com was only found, never cited; www. is dropped.
    assert body["top_domains"] == [
        {"domain": d, "answers": 1, "share": 0.25} for d in ("acme.com", "blog.acme.com", "globex.com", "notacme.com")
    ]
    chatgpt, perplexity = body["by_provider"]["chatgpt"], body["by_provider"]["perplexity"]
    assert (chatgpt["answers"], chatgpt["failed"], perplexity["answers"], perplexity["failed"]) == (3, 0, 1, 1)
    assert by_name(chatgpt["brands"])["Acme"]["visibility"] == 0.6667
    assert by_name(perplexity["brands"])["Acme"]["avg_rank"] == 2.0
    assert len(body["by_prompt"]) == 3
    third = body["by_prompt"][2]
    assert set(third["by_provider"]) == {"chatgpt", "perplexity"}
    assert by_name(third["by_provider"]["chatgpt"]["brands"])["Acme"]["mentioned"] == 0


def test_run_without_mentions_gives_zero_share_of_voice(api, workspace, brands) -> None:
    group = JobGroupFactory(workspace=workspace, providers=["chatgpt"])
    answers_write(group, PromptFactory(workspace=workspace), [("chatgpt", "ok", "No brand at all.", [])])
    body = api.get(f"/api/runs/{group.id}/visibility/").json()
    assert [(b["mentioned"], b["share_of_voice"], b["avg_rank"]) for b in body["brands"]] == [(0, 0.0, None)] * 3


def test_run_visibility_csv_has_numerators_denominators_and_no_formulas(api, run, brands) -> None:
    Brand.objects.filter(id=brands["globex"].id).update(name='=HYPERLINK("x")')
    response = api.get(f"/api/runs/{run.id}/visibility/?format=csv")
    assert response.status_code == 200 and response["Content-Type"].startswith("text/csv")
    rows = list(csv.DictReader(io.StringIO(response.content.decode("utf-8-sig"))))
    assert len(rows) == 3 * 3  # (all, chatgpt, perplexity) × 3 brands
    acme_all = next(r for r in rows if r["provider"] == "all" and r["brand"] == "Acme")
    assert (acme_all["mentioned"], acme_all["answers"], acme_all["mentioned_all_brands"], acme_all["rank_sum"]) == (
        "3",
        "4",
        "6",
        "5",
    )
    assert any(r["brand"] == '\'=HYPERLINK("x")' for r in rows)


def test_trend_has_one_point_per_finished_run_and_provider_oldest_first(api, workspace, brands) -> None:
    prompt = PromptFactory(workspace=workspace)
    old = JobGroupFactory(workspace=workspace, providers=["chatgpt", "gemini"])
    new = JobGroupFactory(workspace=workspace, providers=["chatgpt", "gemini"])
    JobGroup.objects.filter(id=old.id).update(created_at=timezone.now() - dt.timedelta(days=3))
    old.refresh_from_db()
    answers_write(old, prompt, [("chatgpt", "ok", "Globex only", []), ("gemini", "ok", "Acme", [])])
    answers_write(new, prompt, [("chatgpt", "ok", "Acme and Globex", []), ("gemini", "failed", "", [])])
    unfinished = JobGroupFactory(workspace=workspace, providers=["chatgpt"], status=JobGroup.Status.RUNNING)
    answers_write(unfinished, prompt, [("chatgpt", "ok", "Acme", [])])
    for group in (old, new):
        job_group_visibility_aggregate(group=group)

    series = api.get(f"/api/workspaces/{workspace.id}/visibility/").json()["series"]
    assert [(p["run"], p["provider"], p["answers"]) for p in series] == [
        (str(old.id), "all", 2),
        (str(old.id), "chatgpt", 1),
        (str(old.id), "gemini", 1),
        (str(new.id), "all", 1),
        (str(new.id), "chatgpt", 1),
        (str(new.id), "gemini", 0),
    ]
    assert series[5]["failed"] == 1
    assert by_name(series[0]["brands"])["Acme"]["visibility"] == 0.5
    assert by_name(series[3]["brands"])["Acme"]["share_of_voice"] == 0.5

    since = (timezone.now() - dt.timedelta(days=1)).date().isoformat()
    narrowed = api.get(
        f"/api/workspaces/{workspace.id}/visibility/?from={since}&provider=chatgpt&brand={brands['acme'].id}"
    ).json()
    assert [(p["run"], p["provider"]) for p in narrowed["series"]] == [(str(new.id), "chatgpt")]
    # Share of voice stays over every tracked brand even when one brand is asked for.
    assert [(b["name"], b["share_of_voice"]) for b in narrowed["series"][0]["brands"]] == [("Acme", 0.5)]

    exported = api.get(f"/api/workspaces/{workspace.id}/visibility/?format=csv&brand={brands['acme'].id}")
    rows = list(csv.DictReader(io.StringIO(exported.content.decode("utf-8-sig"))))
    assert [(r["run"], r["provider"], r["mentioned"], r["answers"]) for r in rows] == [
        (str(old.id), "all", "1", "2"),
        (str(old.id), "chatgpt", "0", "1"),
        (str(old.id), "gemini", "1", "1"),
        (str(new.id), "all", "1", "1"),
        (str(new.id), "chatgpt", "1", "1"),
        (str(new.id), "gemini", "0", "0"),
    ]


@pytest.mark.parametrize(
    "query, field",
    [
        ("from=yesterday", "from"),
        ("to=2025-02-30", "to"),
        ("from=2025-03-02&to=2025-03-01", "from"),
        ("provider=bard", "provider"),
        ("brand=999999", "brand"),
        ("brand=x", "brand"),
    ],
)
def test_bad_trend_filters_are_400_naming_the_field(api, workspace, query: str, field: str) -> None:
    response = api.get(f"/api/workspaces/{workspace.id}/visibility/?{query}")
    assert response.status_code == 400 and field in response.json()


def test_brand_edit_is_pending_until_the_sweep_reanalyses_stored_answers_and_run_figures(
    api, run, brands, django_capture_on_commit_callbacks
) -> None:
    job_group_visibility_aggregate(group=run)
    globex = brands["globex"]
    with django_capture_on_commit_callbacks(execute=True):
        response = api.patch(f"/api/brands/{globex.id}/", {"aliases": ["Nothing about"]}, format="json")
    assert response.status_code == 200 and response.json()["aliases"] == ["Nothing about"]
    assert response.json()["reanalysis"] == "pending"
    # The request only marked the workspace: the figures change when the sweep has run.
    assert by_name(api.get(f"/api/runs/{run.id}/visibility/").json()["brands"])["Globex"]["mentioned"] == 2
    assert api.get(f"/api/workspaces/{run.workspace_id}/visibility/").json()["reanalysis_pending"] is True
    report = visibility_sweep()
    assert [r.answers for r in report.reanalysed] == [4]
    assert api.get(f"/api/workspaces/{run.workspace_id}/visibility/").json()["reanalysis_pending"] is False
    body = api.get(f"/api/runs/{run.id}/visibility/").json()
    assert by_name(body["brands"])["Globex"]["mentioned"] == 3  # answer 3 now mentions it
    trend = api.get(f"/api/workspaces/{run.workspace_id}/visibility/?provider=all").json()
    assert by_name(trend["series"][0]["brands"])["Globex"]["mentioned"] == 3

    with django_capture_on_commit_callbacks(execute=True):
        assert api.delete(f"/api/brands/{brands['acme'].id}/").status_code == 204
    visibility_sweep()
    body = api.get(f"/api/runs/{run.id}/visibility/").json()
    assert [b["name"] for b in body["brands"]] == ["Globex", "Monday"]
    assert by_name(body["brands"])["Monday"]["avg_rank"] == 1.0  # Acme no longer counts as earlier
    assert by_name(body["brands"])["Globex"]["share_of_voice"] == 0.75


def test_reanalyse_command_refreshes_answers_analysed_with_old_brands(run, brands, workspace) -> None:
    Brand.objects.filter(id=brands["monday"].id).update(match_case=False)  # behind the services' back
    out = io.StringIO()
    call_command("visibility_reanalyse", str(workspace.id), stdout=out)
    assert "4 answers re-analysed" in out.getvalue()
    monday = brands["monday"].id
    items = JobItem.objects.filter(group=run, status="ok")
    assert sum(brand_findings(item).get(monday, {}).get("mentioned", False) for item in items) == 2


def test_brands_crud(api, workspace) -> None:
    url = f"/api/workspaces/{workspace.id}/brands/"
    created = api.post(
        url,
        {"name": " HubSpot ", "aliases": ["HubSpot CRM"], "domains": ["WWW.HubSpot.com"], "is_own": True},
        format="json",
    )
    assert created.status_code == 201, created.content
    brand = created.json()
    assert (brand["name"], brand["domains"], brand["is_own"], brand["match_case"]) == (
        "HubSpot",
        ["hubspot.com"],
        True,
        False,
    )
    assert api.get(url).json()["count"] == 1
    assert api.get(f"/api/brands/{brand['id']}/").json()["aliases"] == ["HubSpot CRM"]
    assert api.patch(f"/api/brands/{brand['id']}/", {"match_case": True}, format="json").json()["match_case"] is True
    assert api.delete(f"/api/brands/{brand['id']}/").status_code == 204
    assert api.get(f"/api/brands/{brand['id']}/").status_code == 404


def test_members_who_are_not_owners_may_edit_brands(api, user, workspace) -> None:
    workspace.memberships.filter(user=user).update(role="member")
    assert api.post(f"/api/workspaces/{workspace.id}/brands/", {"name": "Acme"}, format="json").status_code == 201


@pytest.mark.parametrize(
    "body, field, words",
    [
        ({"name": "  "}, "name", "empty"),
        ({"name": "Acme", "aliases": ["Acme Inc", ""]}, "aliases", "Alias 2"),
        ({"name": "Acme", "domains": ["acme.com", "https://acme.com/"]}, "domains", "Domain 2"),
        ({"name": "Acme", "domains": ["acme com"]}, "domains", "not a host name"),
        ({"name": "Acme", "domains": ["localhost"]}, "domains", "not a host name"),
        ({"name": "Acme", "domains": [" "]}, "domains", "Domain 1"),
        ({"name": "Acme", "aliases": "Acme Inc"}, "aliases", ""),
        ({}, "name", ""),
    ],
)
def test_bad_brand_input_is_400_naming_it(api, workspace, body: dict, field: str, words: str) -> None:
    response = api.post(f"/api/workspaces/{workspace.id}/brands/", body, format="json")
    assert response.status_code == 400, response.content
    assert words in str(response.json()[field])
    assert not Brand.objects.filter(workspace=workspace).exists()


def test_second_own_brand_and_fifty_first_brand_are_refused(api, workspace) -> None:
    url = f"/api/workspaces/{workspace.id}/brands/"
    assert api.post(url, {"name": "Mine", "is_own": True}, format="json").status_code == 201
    response = api.post(url, {"name": "Also mine", "is_own": True}, format="json")
    assert response.status_code == 400 and "is_own" in response.json()
    for n in range(MAX_BRANDS_PER_WORKSPACE - 1):
        assert api.post(url, {"name": f"Rival {n}"}, format="json").status_code == 201
    response = api.post(url, {"name": "One too many"}, format="json")
    assert response.status_code == 400 and "50" in response.json()["name"][0]


def test_strangers_get_404_everywhere(stranger_api, run, brands, workspace) -> None:
    brand = brands["acme"]
    assert stranger_api.get(f"/api/workspaces/{workspace.id}/brands/").status_code == 404
    assert stranger_api.post(f"/api/workspaces/{workspace.id}/brands/", {"name": "X"}, format="json").status_code == 404
    for method in ("get", "delete"):
        assert getattr(stranger_api, method)(f"/api/brands/{brand.id}/").status_code == 404
    assert stranger_api.patch(f"/api/brands/{brand.id}/", {"name": "X"}, format="json").status_code == 404
    assert stranger_api.get(f"/api/runs/{run.id}/visibility/").status_code == 404
    assert stranger_api.get(f"/api/runs/{run.id}/visibility/?format=csv").status_code == 404
    assert stranger_api.get(f"/api/workspaces/{workspace.id}/visibility/").status_code == 404
    assert stranger_api.get("/api/brands/not-a-number/").status_code == 404
    assert Brand.objects.get(id=brand.id).name == "Acme"


def test_reanalysis_in_small_batches_across_runs_gives_the_same_figures(api, run, brands, workspace) -> None:
    from visibility.services.analysis import workspace_reanalyse

    other = JobGroupFactory(workspace=workspace, providers=["chatgpt"])
    answers_write(other, PromptFactory(workspace=workspace), [("chatgpt", "ok", "Monday and Globex", [])])
    before = api.get(f"/api/runs/{run.id}/visibility/").json()
    ok = JobItem.objects.filter(group__workspace=workspace, status="ok")
    ok.update(findings={"other_app": {"kept": True}})  # visibility's findings lost, another app's there
    assert by_name(api.get(f"/api/runs/{run.id}/visibility/").json()["brands"])["Acme"]["mentioned"] == 0
    result = workspace_reanalyse(workspace_id=workspace.id, batch_size=2)
    assert (result.answers, result.finished) == (5, True)
    assert all(item_findings(item) is not None for item in ok)
    assert {JobItem.objects.get(id=item.id).findings["other_app"]["kept"] for item in ok} == {True}
    assert api.get(f"/api/runs/{run.id}/visibility/").json() == before
    assert by_name(api.get(f"/api/runs/{other.id}/visibility/").json()["brands"])["Monday"]["avg_rank"] == 1.0


def test_cached_run_and_trend_figures_follow_brand_edits_and_late_answers(
    api, run, brands, django_capture_on_commit_callbacks
) -> None:
    """A finished run's visibility and the trend are served from the cache; every change that alters
    their figures is seen on the very next read."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    job_group_visibility_aggregate(group=run)
    first = api.get(f"/api/runs/{run.id}/visibility/").json()
    trend_first = api.get(f"/api/workspaces/{run.workspace_id}/visibility/").json()
    with CaptureQueriesContext(connection) as queries:
        again = api.get(f"/api/runs/{run.id}/visibility/")
        trend_again = api.get(f"/api/workspaces/{run.workspace_id}/visibility/")
    assert again.json() == first and trend_again.json() == trend_first
    assert again["Content-Type"] == "application/json"
    assert not any("findings" in query["sql"].lower() for query in queries.captured_queries)  # not recomputed

    globex = brands["globex"]
    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/brands/{globex.id}/", {"name": "Globex Inc", "aliases": ["Globex"]}, format="json")
    assert "Globex Inc" in by_name(api.get(f"/api/runs/{run.id}/visibility/").json()["brands"])
    trend = api.get(f"/api/workspaces/{run.workspace_id}/visibility/").json()
    assert trend["reanalysis_pending"] is True and "Globex Inc" in by_name(trend["series"][0]["brands"])

    with django_capture_on_commit_callbacks(execute=True):
        api.patch(f"/api/brands/{globex.id}/", {"aliases": ["Globex", "Nothing about"]}, format="json")
    pending = api.get(f"/api/runs/{run.id}/visibility/").json()  # read (and kept) while the re-analysis is pending
    assert by_name(pending["brands"])["Globex Inc"]["mentioned"] == 2
    visibility_sweep()
    assert by_name(api.get(f"/api/runs/{run.id}/visibility/").json()["brands"])["Globex Inc"]["mentioned"] == 3
    trend = api.get(f"/api/workspaces/{run.workspace_id}/visibility/?provider=all").json()
    assert trend["reanalysis_pending"] is False
    assert by_name(trend["series"][0]["brands"])["Globex Inc"]["mentioned"] == 3

    # An answer stored without findings counts, analysed, as soon as the run's figures are written again.
    late = JobItemFactory(group=run, prompt=PromptFactory(workspace=run.workspace), text="Globex Inc again")
    assert item_raw_findings(late) is None
    job_group_visibility_aggregate(group=run)
    assert item_findings(late) is not None
    body = api.get(f"/api/runs/{run.id}/visibility/").json()
    assert body["answers"] == 5 and by_name(body["brands"])["Globex Inc"]["mentioned"] == 4
    trend = api.get(f"/api/workspaces/{run.workspace_id}/visibility/?provider=all").json()
    assert trend["series"][0]["answers"] == 5

