"""Analysis of each recorded answer without a lock: an answer analysed with brands a consumer still had
cached is analysed again with the current brands when its run closes, a failed analysis leaves the
answer intact and is redone by the run's close (or, when the close failed too, by the sweep), and a
re-analysis gives the same findings every time and rewrites nothing but visibility's own key."""
from __future__ import annotations

import time
from datetime import timedelta

import pytest

from agent.models import JobGroup, JobItem
from agent.providers.base import Answer
from agent.services.closing import job_group_cancel
from agent.services.items import answer_record
from agent.tasks import QueuedItem
from tests.factories import JobGroupFactory, JobItemFactory, workspace_with_prompts
from tests.visibility.findings import brand_findings, cited_domains, item_findings, item_raw_findings, mentioned_names
from visibility.detection import ANALYSIS_VERSION, BrandTerms, Matcher
from visibility.models import AnalysisState, Brand, RunStat
from visibility.selectors import counts_and_outdated
from visibility.services.analysis import items_analyse, runs_findings_complete
from visibility.services.brands import brand_create, brand_update
from visibility.services.sweep import visibility_sweep


def _running_run(count: int, *, queued: int = 0) -> tuple[JobGroup, list[JobItem]]:
    """A running run whose answers are being asked (`count` items running, `queued` not started): it
    closes when its last answer is recorded, not before."""
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"], expected_responses=count + queued)
    items = [JobItemFactory(group=group, status=JobItem.Status.RUNNING, text="") for _ in range(count)]
    items += [JobItemFactory(group=group, status=JobItem.Status.QUEUED, text="") for _ in range(queued)]
    return group, items


def _record(item: JobItem, text: str) -> None:
    assert answer_record(item=QueuedItem.of(item), backend="simulated", answer=Answer(text=text, sources=[]))


def _revision(group: JobGroup) -> int:
    return AnalysisState.objects.get(workspace=group.workspace).revision


def _figures(group: JobGroup, provider: str = "all") -> tuple[int, int, dict[str, tuple[int, int, int]]]:
    """The run's stored figures: (answers, failed, {brand name: (mentioned, rank sum, cited)})."""
    stat = RunStat.objects.get(group=group, provider=provider)
    brands = {
        name: (mentioned, rank_sum, cited)
        for name, mentioned, rank_sum, cited in stat.brand_stats.values_list("brand__name", "mentioned", "rank_sum", "cited")
    }
    return stat.answers, stat.failed, brands


@pytest.mark.django_db
def test_an_answer_analysed_with_outdated_brands_is_analysed_again_when_its_run_closes(
    settings, django_capture_on_commit_callbacks
) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group, (first, late, last) = _running_run(3)
    acme = brand_create(workspace=group.workspace, name="Acme", is_own=True)
    _record(first, "Acme is fine.")  # this process now holds the workspace's brands
    # An edit made by another process: this one keeps analysing with what it holds, within its TTL
    # (the edit's own on-commit forgetting does not run in this test's transaction, as in another process).
    globex = brand_create(workspace=group.workspace, name="Globex")
    assert visibility_sweep().reanalysed[0].finished  # the edit's full re-analysis ran already
    current = _revision(group)
    assert item_findings(first)["revision"] == current

    _record(late, "Acme or Globex.")  # recorded after that re-analysis, with the brands still cached
    assert mentioned_names(late) == {"Acme"}
    assert item_findings(late)["revision"] < current
    # Stamped with its older revision, the answer is one its run's close will analyse again.
    assert counts_and_outdated(group_ids=[group.id], by=("provider",), revision=current)[1] == [late.id]

    with django_capture_on_commit_callbacks(execute=True):
        _record(last, "Globex leads here.")  # the last answer closes the run
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.COMPLETED
    assert mentioned_names(late) == {"Acme", "Globex"} and mentioned_names(last) == {"Globex"}
    assert mentioned_names(first) == {"Acme"}
    assert brand_findings(late)[globex.id]["rank"] == 2 and brand_findings(late)[acme.id]["rank"] == 1
    assert {item_findings(item)["revision"] for item in (first, late, last)} == {current}
    # The run's figures count Globex in both answers naming it, each at its rank.
    assert _figures(group) == (3, 0, {"Acme": (2, 2, 0), "Globex": (2, 3, 0)})
    # Nothing outdated is left.
    assert runs_findings_complete(workspace_id=group.workspace_id, group_ids=[group.id], by=("provider",))[1] == 0


@pytest.mark.django_db
def test_an_alias_a_consumer_had_not_seen_yet_is_counted_once_its_cancelled_run_closes(
    settings, django_capture_on_commit_callbacks
) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group, (early, late, never_asked) = _running_run(2, queued=1)
    acme = brand_create(workspace=group.workspace, name="Acme", is_own=True)
    _record(early, "Acme, also sold as Roadrunner Kit.")  # this process now holds the brands
    assert brand_findings(early)[acme.id]["mentions"] == 1
    brand_update(brand=acme, aliases=["Roadrunner Kit"])  # by another process, as above
    visibility_sweep()  # the edit's re-analysis counts the alias in the answers stored so far
    current = _revision(group)
    assert brand_findings(early)[acme.id]["mentions"] == 2 and item_findings(early)["revision"] == current

    _record(late, "Roadrunner Kit, or Acme.")  # this process, still without the alias
    assert brand_findings(late)[acme.id] == {
        "mentions": 1, "first_offset": 19, "rank": 1, "citations": 0, "mentioned": True, "cited": False
    }
    assert item_findings(late)["revision"] == current - 1

    with django_capture_on_commit_callbacks(execute=True):
        job_group_cancel(group=group)  # the user cancels: the unasked item ends cancelled and the run closes
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.CANCELLED
    assert JobItem.objects.get(id=never_asked.id).status == JobItem.Status.CANCELLED
    assert brand_findings(late)[acme.id] == {
        "mentions": 2, "first_offset": 0, "rank": 1, "citations": 0, "mentioned": True, "cited": False
    }
    assert item_findings(late)["revision"] == current
    assert brand_findings(early)[acme.id]["mentions"] == 2  # unchanged
    assert _figures(group) == (2, 1, {"Acme": (2, 2, 0)})


@pytest.mark.django_db
def test_a_failed_analysis_leaves_the_answer_intact_and_its_run_close_analyses_it(
    settings, django_capture_on_commit_callbacks
) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group, (item, last) = _running_run(2)
    acme = Brand.objects.create(workspace=group.workspace, name="Acme", is_own=True)
    globex = Brand.objects.create(workspace=group.workspace, name="Globex")
    # Broken in a shell, behind the services' back (aliases are a list of names): no matcher can be built.
    Brand.objects.filter(id=globex.id).update(aliases=5)
    _record(item, "Globex, then Acme.")

    item.refresh_from_db()
    assert item.status == JobItem.Status.OK and item.text == "Globex, then Acme."
    assert item.findings is None  # no analysis, nothing half-written
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.RUNNING

    Brand.objects.filter(id=globex.id).update(aliases=[])  # repaired, in the shell again
    with django_capture_on_commit_callbacks(execute=True):
        _record(last, "Acme.")  # the last answer closes the run
    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.COMPLETED
    assert mentioned_names(item) == {"Acme", "Globex"}
    assert {brand_id: f["rank"] for brand_id, f in brand_findings(item).items()} == {globex.id: 1, acme.id: 2}
    assert item_findings(item)["revision"] == _revision(group)
    assert _figures(group) == (2, 0, {"Acme": (2, 3, 0), "Globex": (1, 1, 0)})


@pytest.mark.django_db
def test_a_run_whose_close_failed_gets_its_figures_from_the_sweep_after_a_grace_minute(
    settings, django_capture_on_commit_callbacks
) -> None:
    settings.VISIBILITY_MATCHER_TTL = 600
    group, (item,) = _running_run(1)
    Brand.objects.create(workspace=group.workspace, name="Acme", is_own=True)
    globex = Brand.objects.create(workspace=group.workspace, name="Globex")
    Brand.objects.filter(id=globex.id).update(aliases=5)  # broken in a shell, as above
    with django_capture_on_commit_callbacks(execute=True):
        _record(item, "Globex, then Acme.")  # its only answer: the run closes, and its close fails too

    group.refresh_from_db()
    assert group.status == JobGroup.Status.COMPLETED and group.finished_at is not None
    item.refresh_from_db()
    assert item.status == JobItem.Status.OK and item.text == "Globex, then Acme." and item.findings is None
    assert not RunStat.objects.filter(group=group).exists()

    Brand.objects.filter(id=globex.id).update(aliases=[])  # repaired
    # Within the grace minute its close may still be writing them: the sweep leaves the run alone.
    assert not visibility_sweep(now=group.finished_at + timedelta(seconds=30))
    assert not RunStat.objects.filter(group=group).exists()

    report = visibility_sweep(now=group.finished_at + timedelta(minutes=2))
    assert report.runs_refreshed == 1 and report.reanalysed == []
    assert mentioned_names(item) == {"Acme", "Globex"}
    assert item_findings(item)["revision"] == _revision(group)
    assert _figures(group) == (1, 0, {"Acme": (1, 2, 0), "Globex": (1, 1, 0)})
    # Written once: the next passes find the run with its figures.
    assert visibility_sweep(now=group.finished_at + timedelta(minutes=3)).runs_refreshed == 0
    # A day later it is out of the sweep's window whatever it has.
    RunStat.objects.filter(group=group).delete()
    assert visibility_sweep(now=group.finished_at + timedelta(days=1, minutes=1)).runs_refreshed == 0


@pytest.mark.django_db
def test_analysing_an_answer_again_gives_the_same_findings_as_when_it_was_recorded() -> None:
    group, (item, _other) = _running_run(2)
    acme = brand_create(workspace=group.workspace, name="Acme", domains=["acme.com"], is_own=True)
    assert answer_record(item=QueuedItem.of(item), backend="simulated", answer=Answer(
        text="See acme.com: Acme, Acme.", sources=[{"url": "https://www.acme.com/x", "cited": True}]
    ))
    recorded = item_raw_findings(item)
    assert recorded == {
        "version": ANALYSIS_VERSION,
        "revision": _revision(group),
        "brands": [[acme.id, 3, 4, 1, 1]],  # the domain in the text counts as a mention
        "domains": ["acme.com"],
    }
    assert items_analyse(item_ids=[item.id]) == {group.id}
    assert item_raw_findings(item) == recorded
    items_analyse(item_ids=[item.id])
    assert item_raw_findings(item) == recorded
    assert brand_findings(item) == {
        acme.id: {"mentions": 3, "first_offset": 4, "rank": 1, "citations": 1, "mentioned": True, "cited": True}
    }
    assert cited_domains(item) == ["acme.com"]


@pytest.mark.django_db
def test_a_reanalysis_rewrites_only_visibilitys_key_of_the_answer() -> None:
    group = JobGroupFactory(providers=["chatgpt"])
    acme = brand_create(workspace=group.workspace, name="Acme", is_own=True)
    item = JobItemFactory(
        group=group, text="Acme and Globex.", sources=[{"url": "https://globex.com/a", "cited": False}],
        usage={"input_tokens": 12, "output_tokens": 34}, findings={"other-app": {"score": 7}},
    )
    failed = JobItemFactory(group=group, status=JobItem.Status.FAILED, error="timeout", findings={"other-app": {}})
    before = JobItem.objects.values("text", "sources", "usage", "status", "finished_at", "heartbeat_at").get(id=item.id)

    # Re-analysed on demand (a run's close) ...
    assert items_analyse(item_ids=[item.id, failed.id]) == {group.id}
    stored = JobItem.objects.get(id=item.id).findings
    assert stored["other-app"] == {"score": 7} and set(stored) == {"other-app", "visibility"}
    assert mentioned_names(item) == {"Acme"}
    # ... and by the full re-analysis of a brand edit.
    globex = brand_create(workspace=group.workspace, name="Globex", domains=["globex.com"])
    assert visibility_sweep().reanalysed[0].answers == 1
    stored = JobItem.objects.get(id=item.id).findings
    assert stored["other-app"] == {"score": 7}
    assert brand_findings(item)[globex.id] == {
        "mentions": 1, "first_offset": 9, "rank": 2, "citations": 0, "mentioned": True, "cited": False
    }
    assert brand_findings(item)[acme.id]["rank"] == 1
    assert cited_domains(item) == []  # a source the answer does not cite is no citation
    # Nothing else of the answer changed; a failed answer is never analysed.
    assert JobItem.objects.values("text", "sources", "usage", "status", "finished_at", "heartbeat_at").get(
        id=item.id
    ) == before
    assert JobItem.objects.get(id=failed.id).findings == {"other-app": {}}


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
    analysed = JobItem.objects.filter(group_id=group_id, status=JobItem.Status.OK, findings__visibility__isnull=False)
    deadline = time.monotonic() + 60
    while not analysed.exists():
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
        current = JobItem.objects.filter(
            group_id=group_id, findings__visibility__version=ANALYSIS_VERSION, findings__visibility__revision=revision
        ).count()
        trend = api.get(f"/api/workspaces/{workspace.id}/visibility/?provider=all").json()
        if (group.status == JobGroup.Status.COMPLETED and current == 72 and not trend["reanalysis_pending"]
                and RunStat.objects.filter(group_id=group_id).exists()):
            break
        assert time.monotonic() < deadline, f"{group.status} {current}/72 analysed\n{consumers.logs()}"
        time.sleep(0.3)
    brands = {b.id: b for b in Brand.objects.filter(workspace=workspace)}
    matcher = Matcher([BrandTerms(brand_id=b.id, terms=(b.name, *b.aliases), domains=tuple(b.domains),
                                  match_case=b.match_case) for b in brands.values()])
    for item in JobItem.objects.filter(group_id=group_id):
        assert item.status == JobItem.Status.OK and item.text
        expected = {f.brand_id: (f.mentions, f.rank, f.citations)
                    for f in matcher.analyse(item.text, item.sources).findings}
        stored = {brand_id: (f["mentions"], f["rank"], f["citations"]) for brand_id, f in brand_findings(item).items()}
        assert stored == expected, item.id
        assert stored[rival.id][0] >= 1
    # Visible to the user: the run and its trend count Globex in every answer.
    figures = {b["name"]: b for b in api.get(f"/api/runs/{group_id}/visibility/").json()["brands"]}
    assert figures["Globex"]["mentioned"] == 72
    assert {b["name"]: b["mentioned"] for b in trend["series"][0]["brands"]}["Globex"] == 72
