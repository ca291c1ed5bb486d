"""Analysis of each recorded answer without a lock: answers analysed with brands a consumer still had
cached are re-analysed by the sweep, two writers meeting on one answer never leave it wrong, and a
failed analysis leaves the answer intact and is retried."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest
from django.utils import timezone

from agent.models import JobGroup, JobItem
from agent.providers.base import Answer
from agent.services.items import answer_record
from agent.tasks import QueuedItem
from tests.factories import JobGroupFactory, JobItemFactory, workspace_with_prompts
from visibility.detection import BrandTerms, Matcher
from visibility.models import AnalysedAnswer, AnalysisState, Brand, Mention
from visibility.services.analysis import answer_analyse
from visibility.services.brands import brand_create, brand_update
from visibility.services.sweep import items_analyse, visibility_sweep


def _recorded(group: JobGroup, text: str) -> JobItem:
    item = JobItemFactory(group=group, status=JobItem.Status.RUNNING, text="")
    assert answer_record(item=QueuedItem.of(item), backend="simulated", answer=Answer(text=text, sources=[]))
    return item


def _mentioned(item: JobItem) -> set[str]:
    return set(Mention.objects.filter(item_id=item.id, mentioned=True).values_list("brand__name", flat=True))


@pytest.mark.django_db
def test_an_answer_analysed_with_outdated_brands_is_reanalysed_by_the_sweep_whatever_its_age(settings) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"])
    brand_create(workspace=group.workspace, name="Acme", is_own=True)
    first = _recorded(group, "Acme is fine.")  # this process now holds the workspace's brands
    # An edit made by another process: this one keeps analysing with what it holds, within its TTL
    # (the edit's own on-commit forgetting does not run in this test's transaction, as in another process).
    globex = brand_create(workspace=group.workspace, name="Globex")
    assert visibility_sweep().reanalysed[0].finished  # the edit's full re-analysis ran already
    late = _recorded(group, "Acme or Globex.")
    assert _mentioned(late) == {"Acme"}
    current = AnalysisState.objects.get(workspace=group.workspace).revision
    assert AnalysedAnswer.objects.get(item_id=late.id).revision < current
    # Older than the one-day retry window: outdated answers are found by revision, not by age.
    JobItem.objects.filter(id=late.id).update(heartbeat_at=timezone.now() - timedelta(days=3))

    report = visibility_sweep()
    assert report.stale == 1
    assert _mentioned(late) == {"Acme", "Globex"} and _mentioned(first) == {"Acme"}
    assert AnalysedAnswer.objects.get(item_id=late.id).revision == current
    assert Mention.objects.get(item_id=late.id, brand=globex).rank == 2
    assert visibility_sweep().stale == 0


@pytest.mark.django_db
def test_a_late_analysis_with_older_brands_over_a_newer_one_is_marked_outdated_and_redone(settings) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"])
    acme = brand_create(workspace=group.workspace, name="Acme", is_own=True)
    item = _recorded(group, "Acme, also sold as Roadrunner Kit.")  # this process now holds the brands
    assert _mentioned(item) == {"Acme"}
    brand_update(brand=acme, aliases=["Roadrunner Kit"])  # by another process, as above
    visibility_sweep()  # the sweep re-analyses the answer with the alias
    current = AnalysisState.objects.get(workspace=group.workspace).revision
    assert AnalysedAnswer.objects.get(item_id=item.id).revision == current
    assert Mention.objects.get(item_id=item.id).mentions == 2

    # This process, still holding the brands without the alias, analyses the answer only now.
    answer_analyse(item_id=item.id)
    # Its rows met the sweep's: the marker keeps the older revision, so nothing wrong looks current.
    assert AnalysedAnswer.objects.get(item_id=item.id).revision == current - 1
    assert visibility_sweep().stale == 1
    assert AnalysedAnswer.objects.get(item_id=item.id).revision == current
    assert Mention.objects.get(item_id=item.id).mentions == 2


@pytest.mark.django_db(transaction=True)
def test_a_failed_analysis_leaves_the_answer_intact_and_the_sweep_analyses_it_again(settings) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"])
    Brand.objects.create(workspace=group.workspace, name="Acme", is_own=True)
    globex = Brand.objects.create(workspace=group.workspace, name="Globex")
    _recorded(group, "Acme.")  # this process now holds both brands
    # Removed from a shell, behind the services' back: this process still analyses with Globex,
    # and writing a mention of a brand that no longer exists fails.
    Brand.objects.filter(id=globex.id).delete()
    item = _recorded(group, "Globex, then Acme.")

    item.refresh_from_db()
    assert item.status == JobItem.Status.OK and item.text == "Globex, then Acme."
    assert not AnalysedAnswer.objects.filter(item_id=item.id).exists()
    assert not Mention.objects.filter(item_id=item.id).exists()  # nothing half-written

    JobItem.objects.filter(id=item.id).update(heartbeat_at=timezone.now() - timedelta(minutes=2))
    report = visibility_sweep()
    assert report.retried == 1
    assert _mentioned(item) == {"Acme"} and Mention.objects.get(item_id=item.id).rank == 1
    assert AnalysedAnswer.objects.filter(item_id=item.id).exists()


@pytest.mark.django_db
def test_analysing_an_answer_twice_gives_the_same_rows() -> None:
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"])
    brand_create(workspace=group.workspace, name="Acme", domains=["acme.com"], is_own=True)
    item = JobItemFactory(group=group, text="See acme.com: Acme, Acme.",
                          sources=[{"url": "https://www.acme.com/x", "cited": True}])
    assert answer_analyse(item_id=item.id) and answer_analyse(item_id=item.id)
    items_analyse(item_ids=[item.id])
    assert list(Mention.objects.filter(item_id=item.id).values_list("mentions", "cited", "citations")) == [
        (3, True, 1)
    ]


@pytest.mark.django_db(transaction=True)
@pytest.mark.consumers
def test_a_brand_edit_while_a_run_is_recorded_ends_with_every_answer_analysed_with_the_new_brands(
    api, user, consumers
) -> None:
    workspace = workspace_with_prompts(user=user, prompts=12, providers=["chatgpt", "perplexity"], name="Acme")
    workspace.samples_per_run = 3
    workspace.save()
    brand_create(workspace=workspace, name="Acme", domains=["acme.com"], is_own=True)
    rival = brand_create(workspace=workspace, name="Globex", domains=["globex.com"])
    consumers.start_all(workers=2, VISIBILITY_SWEEP_INTERVAL="1", VISIBILITY_MATCHER_TTL="3",
                        AGENT_SIMULATED_LATENCY_MS="100")
    group_id = api.post(f"/api/workspaces/{workspace.id}/runs/").json()["jobGroupId"]
    deadline = time.monotonic() + 60
    while not AnalysedAnswer.objects.filter(group_id=group_id).exists():
        assert time.monotonic() < deadline, consumers.logs()
        time.sleep(0.05)
    # Every simulated answer says "commonly recommended": as an alias of Globex it is in all of them.
    response = api.patch(f"/api/brands/{rival.id}/", {"aliases": ["commonly recommended"]}, format="json")
    assert response.status_code == 200
    assert JobItem.objects.filter(group_id=group_id, status__in=JobItem.UNFINISHED).exists()  # mid-run

    deadline = time.monotonic() + 90
    while True:
        group = JobGroup.objects.get(id=group_id)
        revision = AnalysisState.objects.get(workspace=workspace).revision
        analysed = AnalysedAnswer.objects.filter(group_id=group_id, revision=revision).count()
        trend = api.get(f"/api/workspaces/{workspace.id}/visibility/?provider=all").json()
        if group.status == JobGroup.Status.COMPLETED and analysed == 72 and not trend["reanalysis_pending"]:
            break
        assert time.monotonic() < deadline, f"{group.status} {analysed}/72 analysed\n{consumers.logs()}"
        time.sleep(0.3)
    brands = {b.id: b for b in Brand.objects.filter(workspace=workspace)}
    matcher = Matcher([BrandTerms(brand_id=b.id, terms=(b.name, *b.aliases), domains=tuple(b.domains),
                                  match_case=b.match_case) for b in brands.values()])
    for item in JobItem.objects.filter(group_id=group_id):
        assert item.status == JobItem.Status.OK and item.text
        expected = {f.brand_id: (f.mentions, f.rank, f.citations)
                    for f in matcher.analyse(item.text, item.sources).findings}
        stored = {m.brand_id: (m.mentions, m.rank, m.citations) for m in Mention.objects.filter(item_id=item.id)}
        assert stored == expected, item.id
        assert stored[rival.id][0] >= 1
    # Visible to the user: the run and its trend count Globex in every answer.
    figures = {b["name"]: b for b in api.get(f"/api/runs/{group_id}/visibility/").json()["brands"]}
    assert figures["Globex"]["mentioned"] == 72
    assert {b["name"]: b["mentioned"] for b in trend["series"][0]["brands"]}["Globex"] == 72
