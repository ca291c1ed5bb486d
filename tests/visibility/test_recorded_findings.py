"""An answer's analysis is stored with the answer, in the same write, and becomes mention rows in
batches: a consumer writes them about every quarter second, a run that closes first writes what is
still pending, and one answer that cannot be written never costs the others theirs."""
from __future__ import annotations

import time

import pytest

from agent.models import JobGroup, JobItem
from agent.providers.base import Answer
from agent.services.items import answer_record
from agent.tasks import QueuedItem
from tests.factories import JobGroupFactory, JobItemFactory
from visibility.detection import ANALYSIS_VERSION
from visibility.models import AnalysedAnswer, AnalysisState, Brand, CitedDomain, Mention, RunStat
from visibility.services import recorded
from visibility.services.analysis import RecordedFindings, findings_unpack, findings_write
from visibility.services.brands import brand_create


def _record(item: JobItem, text: str, sources=()) -> None:
    assert answer_record(item=QueuedItem.of(item), backend="simulated", answer=Answer(text=text, sources=list(sources)))


def _running_group_with_items(count: int):
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"], expected_responses=count)
    acme = brand_create(workspace=group.workspace, name="Acme", domains=["acme.com"], is_own=True)
    globex = brand_create(workspace=group.workspace, name="Globex")
    items = [JobItemFactory(group=group, status=JobItem.Status.RUNNING, text="") for _ in range(count)]
    return group, acme, globex, items


@pytest.mark.django_db
def test_the_analysis_is_stored_on_the_answer_row_and_written_as_rows_at_once_outside_a_consumer() -> None:
    group, acme, globex, (item, _other) = _running_group_with_items(2)
    _record(item, "Globex first, then Acme and Acme.", [{"url": "https://blog.acme.com/x", "cited": True}])

    item.refresh_from_db()
    stored = item.findings["visibility"]
    revision = AnalysisState.objects.get(workspace=group.workspace).revision
    assert stored == {
        "version": ANALYSIS_VERSION,
        "revision": revision,
        # [brand, mentions, first offset, rank, citations], in brand order
        "brands": sorted([[acme.id, 2, 19, 2, 1], [globex.id, 1, 0, 1, 0]]),
        "domains": ["blog.acme.com"],
    }
    # No consumer's writer runs in this process: the rows are there as soon as the answer is.
    assert set(Mention.objects.filter(item_id=item.id).values_list("brand_id", "mentions", "rank", "citations")) == {
        (acme.id, 2, 2, 1), (globex.id, 1, 1, 0)
    }
    assert list(CitedDomain.objects.filter(item_id=item.id).values_list("domain", flat=True)) == ["blog.acme.com"]
    assert AnalysedAnswer.objects.get(item_id=item.id).revision == revision


@pytest.mark.django_db(transaction=True)
def test_a_consumer_writes_the_rows_of_recorded_answers_in_batches(monkeypatch) -> None:
    writer = recorded.FindingsWriter()
    monkeypatch.setattr(recorded, "findings_writer", writer)
    group, acme, _globex, items = _running_group_with_items(4)
    writer.start()
    try:
        for item in items[:3]:
            _record(item, "Acme is what most teams pick.")
        # Held for the next batch (a quarter second at most), not written by the recording worker.
        deadline = time.monotonic() + 10
        while AnalysedAnswer.objects.filter(group=group).count() < 3:
            assert time.monotonic() < deadline, "the writer thread never wrote the batch"
            time.sleep(0.05)
        assert Mention.objects.filter(group=group, brand=acme, mentioned=True).count() == 3
        assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.RUNNING
    finally:
        writer.stop()  # as a consumer's graceful shutdown: writes what is pending, ends the thread
    assert not writer._thread.is_alive()


@pytest.mark.django_db(transaction=True)
def test_a_run_that_closes_while_answers_are_pending_in_another_process_writes_them_before_its_figures(
    monkeypatch,
) -> None:
    other_process = recorded.FindingsWriter()
    other_process._thread = object()  # a writer whose batch has not been written yet
    monkeypatch.setattr(recorded, "findings_writer", other_process)
    group, acme, globex, items = _running_group_with_items(3)
    _record(items[0], "Acme.")
    _record(items[1], "Globex, then Acme.")
    assert not AnalysedAnswer.objects.filter(group=group).exists()  # all still pending
    monkeypatch.setattr(recorded, "findings_writer", recorded.FindingsWriter())  # the closing process's own
    _record(items[2], "Nothing to see.")  # the last answer closes the run

    assert JobGroup.objects.get(id=group.id).status == JobGroup.Status.COMPLETED
    assert AnalysedAnswer.objects.filter(group=group).count() == 3
    stat = RunStat.objects.get(group=group, provider="all")
    assert stat.answers == 3
    assert dict(stat.brand_stats.values_list("brand_id", "mentioned")) == {acme.id: 2, globex.id: 1}
    # The other process's batch is written later: it finds every row there and changes nothing.
    before = sorted(Mention.objects.filter(group=group).values_list("item_id", "brand_id", "mentions", "rank"))
    assert other_process.flush() == 2
    assert sorted(Mention.objects.filter(group=group).values_list("item_id", "brand_id", "mentions", "rank")) == before


@pytest.mark.django_db(transaction=True)
def test_one_answer_that_cannot_be_written_costs_only_its_own_rows() -> None:
    group, acme, globex, (good, bad) = _running_group_with_items(2)
    JobItem.objects.filter(id__in=[good.id, bad.id]).update(status=JobItem.Status.OK)
    version_and_revision = {"version": ANALYSIS_VERSION, "revision": 1, "domains": []}
    entries = [
        RecordedFindings(item_id=bad.id, group_id=str(group.id), provider="chatgpt",
                         findings={**version_and_revision, "brands": [[globex.id, 1, 0, 1, 0]]}),
        RecordedFindings(item_id=good.id, group_id=str(group.id), provider="chatgpt",
                         findings={**version_and_revision, "brands": [[acme.id, 1, 0, 1, 0]]}),
    ]
    Brand.objects.filter(id=globex.id).delete()  # behind the services' back: the bad entry's brand is gone

    assert findings_write(entries) == 1
    assert list(Mention.objects.filter(item_id=good.id).values_list("brand_id", flat=True)) == [acme.id]
    assert AnalysedAnswer.objects.filter(item_id=good.id).exists()
    # Left without a marker, so the sweep analyses it again from its text.
    assert not AnalysedAnswer.objects.filter(item_id=bad.id).exists()
    assert not Mention.objects.filter(item_id=bad.id).exists()


def test_findings_of_another_analysis_version_are_not_used() -> None:
    current = {"version": ANALYSIS_VERSION, "revision": 3, "brands": [], "domains": []}
    assert findings_unpack({"visibility": current}) == current
    assert findings_unpack({"visibility": {**current, "version": ANALYSIS_VERSION + 1}}) is None
    assert findings_unpack(None) is None and findings_unpack({"other-app": {}}) is None
