"""An answer's analysis is stored with the answer, by the one UPDATE that records it: no row, write or
commit of its own. A brand or run deleted meanwhile never costs an answer; a run's close analyses
again only the answers whose findings are missing or outdated, and its figures are counted from the
findings."""
from __future__ import annotations

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.models import JobGroup, JobItem
from agent.providers.base import Answer
from agent.services.items import answer_record
from agent.tasks import QueuedItem
from prompts.models import Prompt
from tests.factories import JobGroupFactory, JobItemFactory, MembershipFactory, PromptFactory
from tests.visibility.findings import brand_findings, item_findings, item_raw_findings
from visibility.detection import ANALYSIS_VERSION
from visibility.models import AnalysisState, Brand, RunStat
from visibility.services.analysis import findings_unpack, runs_findings_complete
from visibility.services.brands import brand_create, brand_delete


def _record(item: JobItem, text: str, sources=()) -> bool:
    return answer_record(item=QueuedItem.of(item), backend="simulated", answer=Answer(text=text, sources=list(sources)))


def _running_group_with_items(count: int):
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"], expected_responses=count)
    acme = brand_create(workspace=group.workspace, name="Acme", domains=["acme.com"], is_own=True)
    globex = brand_create(workspace=group.workspace, name="Globex")
    items = [JobItemFactory(group=group, status=JobItem.Status.RUNNING, text="") for _ in range(count)]
    return group, acme, globex, items


def _writes(queries: CaptureQueriesContext) -> list[str]:
    return [q["sql"] for q in queries.captured_queries
            if q["sql"].lstrip().split(" ", 1)[0].upper() in ("INSERT", "UPDATE", "DELETE", "REPLACE")]


def _tables_read(queries: CaptureQueriesContext, *models) -> list[str]:
    return [q["sql"] for q in queries.captured_queries if any(m._meta.db_table in q["sql"] for m in models)]


def _brand_figures(group: JobGroup, provider: str = "all") -> dict[int, tuple[int, int, int]]:
    stat = RunStat.objects.get(group=group, provider=provider)
    return {brand_id: (mentioned, rank_sum, cited)
            for brand_id, mentioned, rank_sum, cited in stat.brand_stats.values_list("brand_id", "mentioned", "rank_sum",
                                                                                     "cited")}


@pytest.mark.django_db
def test_the_findings_are_stored_by_the_update_that_records_the_answer(api, user, settings) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600  # so the second answer is within it however slow the machine
    group, acme, globex, (item, second, _third) = _running_group_with_items(3)
    MembershipFactory(user=user, workspace=group.workspace)
    with CaptureQueriesContext(connection) as queries:
        assert _record(item, "Globex first, then Acme and Acme.", [{"url": "https://blog.acme.com/x", "cited": True}])

    item.refresh_from_db()
    assert item.status == JobItem.Status.OK and item.text == "Globex first, then Acme and Acme."
    revision = AnalysisState.objects.get(workspace=group.workspace).revision
    assert item.findings == {"visibility": {
        "version": ANALYSIS_VERSION,
        "revision": revision,
        # [brand, mentions, first offset, rank, citations], in brand order
        "brands": sorted([[acme.id, 2, 19, 2, 1], [globex.id, 1, 0, 1, 0]]),
        "domains": ["blog.acme.com"],
    }}
    # One write for the answer and its analysis together: no row, update or commit of the analysis's own.
    writes = _writes(queries)
    assert len(writes) == 1, writes
    assert writes[0].lstrip().upper().startswith("UPDATE") and JobItem._meta.db_table in writes[0]
    assert "findings" in writes[0]

    # The next answer of the workspace reuses this process's brands: not one read of them per answer.
    with CaptureQueriesContext(connection) as queries:
        assert _record(second, "Acme only.")
    assert _tables_read(queries, Brand, AnalysisState) == []
    assert len(_writes(queries)) == 1
    assert brand_findings(second) == {
        acme.id: {"mentions": 1, "first_offset": 0, "rank": 1, "citations": 0, "mentioned": True, "cited": False}
    }

    # Visible at once in the run's live figures, while it still runs.
    body = api.get(f"/api/runs/{group.id}/visibility/").json()
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.RUNNING
    assert body["answers"] == 2
    figures = {b["name"]: (b["mentioned"], b["cited"], b["avg_rank"]) for b in body["brands"]}
    assert figures == {"Acme": (2, 1, 1.5), "Globex": (1, 0, 1.0)}
    assert body["top_domains"] == [{"domain": "blog.acme.com", "answers": 1, "share": 0.5}]


@pytest.mark.django_db
def test_an_answer_naming_a_brand_deleted_meanwhile_is_recorded_and_counted_without_it(
    settings, django_capture_on_commit_callbacks
) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group, acme, globex, (first, second, last) = _running_group_with_items(3)
    assert _record(first, "Acme.")  # this process now holds both brands
    # Deleted by another process (the deletion's on-commit forgetting does not run in this test's
    # transaction): this one still analyses with Globex for a while.
    globex_id = globex.id
    brand_delete(brand=globex)
    assert _record(second, "Globex, then Acme.")
    second.refresh_from_db()
    assert second.status == JobItem.Status.OK and second.text == "Globex, then Acme."
    assert set(brand_findings(second)) == {acme.id, globex_id}  # analysed with the brands it held

    with django_capture_on_commit_callbacks(execute=True):
        assert _record(last, "Nothing to see.")  # the last answer closes the run
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.COMPLETED
    # Its close analysed it again without the deleted brand: Acme is now its first brand.
    assert brand_findings(second) == {
        acme.id: {"mentions": 1, "first_offset": 13, "rank": 1, "citations": 0, "mentioned": True, "cited": False}
    }
    assert RunStat.objects.get(group=group, provider="all").answers == 3
    assert _brand_figures(group) == {acme.id: (2, 2, 0)}


@pytest.mark.django_db
def test_a_brand_deleted_behind_the_services_back_costs_no_answer_and_no_figures(
    api, user, settings, django_capture_on_commit_callbacks
) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group, acme, globex, (first, last) = _running_group_with_items(2)
    MembershipFactory(user=user, workspace=group.workspace)
    assert _record(first, "Acme.")  # this process now holds both brands
    Brand.objects.filter(id=globex.id).delete()  # from a shell: the brand revision does not move
    with django_capture_on_commit_callbacks(execute=True):
        assert _record(last, "Globex, then Acme.")  # closes the run
    last.refresh_from_db()
    assert last.status == JobItem.Status.OK and last.text == "Globex, then Acme."
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.COMPLETED
    # The run's figures and its page name only the brands it tracks.
    assert RunStat.objects.get(group=group, provider="all").answers == 2
    assert set(_brand_figures(group)) == {acme.id}
    assert _brand_figures(group)[acme.id][0] == 2
    response = api.get(f"/api/runs/{group.id}/visibility/")
    assert response.status_code == 200
    assert [(b["name"], b["mentioned"]) for b in response.json()["brands"]] == [("Acme", 2)]


@pytest.mark.django_db
def test_an_answer_of_a_run_deleted_meanwhile_is_dropped_without_an_error() -> None:
    group, _acme, _globex, (first, second, _third) = _running_group_with_items(3)
    assert _record(first, "Acme.")  # this process now knows the run and its workspace's brands
    unseen = JobItemFactory(group=JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"]),
                            status=JobItem.Status.RUNNING, text="")
    # Deleted from a shell (the app itself never deletes a run) while these answers are being asked.
    JobGroup.objects.filter(id__in=[group.id, unseen.group_id]).delete()

    assert _record(second, "Acme again.") is False
    assert _record(unseen, "Acme, from a run this process never saw.") is False
    assert not JobItem.objects.filter(id__in=[first.id, second.id, unseen.id]).exists()


@pytest.mark.django_db
def test_a_runs_close_analyses_again_only_answers_whose_findings_are_missing_or_outdated() -> None:
    group = JobGroupFactory(providers=["chatgpt"])
    acme = brand_create(workspace=group.workspace, name="Acme", is_own=True)
    current = AnalysisState.objects.get(workspace=group.workspace).revision

    def answer(findings, **fields):
        return JobItemFactory(group=group, text="Acme.", findings=findings, **fields)

    def packed(**changes):
        return {"version": ANALYSIS_VERSION, "revision": current, "brands": [], "domains": [], **changes}

    missing = answer(None)  # its analysis failed when it was recorded
    other_apps_only = answer({"other-app": {"x": 1}})
    other_version = answer({"visibility": packed(version=ANALYSIS_VERSION + 1)})
    older_brands = answer({"visibility": packed(revision=current - 1), "other-app": {"x": 2}})
    # Current, though not what its text says: left as it is shows it was not analysed again.
    up_to_date = answer({"visibility": packed(brands=[[acme.id, 9, 0, 1, 0]])})
    failed = answer(None, status=JobItem.Status.FAILED, error="timeout")
    elsewhere = JobItemFactory(group=JobGroupFactory(workspace=group.workspace), text="Acme.", findings=None)

    counts, analysed_again, _ = runs_findings_complete(
        workspace_id=group.workspace_id, group_ids=[group.id], by=("provider",))
    assert analysed_again == 4
    # Counted after: every one of the five answers names Acme once now, the up-to-date one as stored.
    assert counts[("chatgpt",)].answers == 5 and counts[("chatgpt",)].brands[acme.id] == [5, 5, 0]
    for item in (missing, other_apps_only, other_version, older_brands):
        assert item_findings(item) == {
            "version": ANALYSIS_VERSION, "revision": current, "brands": [[acme.id, 1, 0, 1, 0]], "domains": []
        }, item.text
    assert JobItem.objects.get(id=other_apps_only.id).findings["other-app"] == {"x": 1}
    assert JobItem.objects.get(id=older_brands.id).findings["other-app"] == {"x": 2}
    assert item_raw_findings(up_to_date) == packed(brands=[[acme.id, 9, 0, 1, 0]])
    assert JobItem.objects.get(id=failed.id).findings is None
    assert JobItem.objects.get(id=elsewhere.id).findings is None  # another run's answers are its own close's
    assert runs_findings_complete(workspace_id=group.workspace_id, group_ids=[group.id], by=("provider",))[1] == 0


@pytest.mark.django_db
def test_a_closed_runs_figures_are_the_counts_of_its_answers_findings(
    api, user, django_capture_on_commit_callbacks
) -> None:
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt", "perplexity"], expected_responses=4)
    MembershipFactory(user=user, workspace=group.workspace)
    acme = brand_create(workspace=group.workspace, name="Acme", domains=["acme.com"], is_own=True)
    globex = brand_create(workspace=group.workspace, name="Globex", domains=["globex.com"])
    first, second = PromptFactory.create_batch(2, workspace=group.workspace)

    def item(provider: str, prompt: Prompt) -> JobItem:
        return JobItemFactory(group=group, provider=provider, prompt=prompt, status=JobItem.Status.RUNNING, text="")

    items = [item("chatgpt", first), item("chatgpt", second), item("perplexity", first), item("perplexity", second)]
    assert _record(items[0], "Globex first, then Acme and Acme.", [
        {"url": "https://blog.acme.com/x", "cited": True}, {"url": "https://globex.com/y", "cited": False},
    ])
    assert _record(items[1], "Acme only.", [{"url": "https://www.example.org/a", "cited": True}])
    assert _record(items[2], "Nothing relevant.", [
        {"url": "https://acme.com/pricing", "cited": True}, {"domain": "example.org"},  # cited: stored before "cited"
    ])
    with django_capture_on_commit_callbacks(execute=True):
        assert answer_record(item=QueuedItem.of(items[3]), backend="simulated", error="provider timed out")
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.COMPLETED

    # By hand: chatgpt's answers name Globex (rank 1) then Acme (rank 2, cited via blog.acme.com), and
    # Acme alone (rank 1); perplexity's one answer cites acme.com without naming any brand; one failed.
    expected = {
        "chatgpt": (2, 0, {acme.id: (2, 3, 1), globex.id: (1, 1, 0)}, {"blog.acme.com": 1, "example.org": 1}),
        "perplexity": (1, 1, {acme.id: (0, 0, 1), globex.id: (0, 0, 0)}, {"acme.com": 1, "example.org": 1}),
        "all": (3, 1, {acme.id: (2, 3, 2), globex.id: (1, 1, 0)},
                {"blog.acme.com": 1, "example.org": 2, "acme.com": 1}),
    }
    stats = RunStat.objects.filter(group=group)
    assert {stat.provider for stat in stats} == set(expected)
    for stat in stats:
        answers, failed, brands, domains = expected[stat.provider]
        assert (stat.answers, stat.failed, stat.analysis_version) == (answers, failed, ANALYSIS_VERSION), stat.provider
        assert _brand_figures(group, stat.provider) == brands, stat.provider
        assert dict(stat.domain_stats.values_list("domain", "answers")) == domains, stat.provider
    # The user's trend shows those figures, and the run's page agrees with them.
    trend = api.get(f"/api/workspaces/{group.workspace_id}/visibility/?provider=all").json()
    point = {b["name"]: (b["mentioned"], b["cited"], b["avg_rank"]) for b in trend["series"][0]["brands"]}
    assert point == {"Acme": (2, 2, 1.5), "Globex": (1, 0, 1.0)}
    run = api.get(f"/api/runs/{group.id}/visibility/").json()
    assert (run["answers"], run["failed"]) == (3, 1)
    assert {b["name"]: (b["mentioned"], b["cited"], b["avg_rank"]) for b in run["brands"]} == point
    assert {d["domain"]: d["answers"] for d in run["top_domains"]} == expected["all"][3]


def test_findings_of_another_analysis_version_are_not_used() -> None:
    current = {"version": ANALYSIS_VERSION, "revision": 3, "brands": [], "domains": []}
    assert findings_unpack({"visibility": current}) == current
    assert findings_unpack({"visibility": {**current, "version": ANALYSIS_VERSION + 1}}) is None
    assert findings_unpack(None) is None and findings_unpack({"other-app": {}}) is None
