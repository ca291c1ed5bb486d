"""What other apps derive from an answer (the `answer_findings` signal) is stored with it, exactly."""
from __future__ import annotations

import pytest

from agent.models import JobGroup, JobItem
from agent.providers.base import Answer
from agent.services.items import answer_record
from agent.signals import answer_findings
from agent.tasks import QueuedItem
from tests.factories import JobGroupFactory, JobItemFactory


@pytest.mark.django_db
def test_every_receivers_findings_are_stored_with_the_answer_whatever_json_they_hold() -> None:
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"], expected_responses=2)
    item = JobItemFactory(group=group, provider="chatgpt", status=JobItem.Status.RUNNING, text="")
    derived = {
        # orjson encodes most; an integer past 64 bits it cannot, and the field's own encoder does.
        "other-app": {"words": 3, "huge": 2**70, "label": "Zoë’s “CRM”", "none": None, "flags": [True, False]},
    }

    def receiver(sender, *, text: str, **kwargs) -> dict:
        return {"other-app": {**derived["other-app"], "words": len(text.split())}}

    answer_findings.connect(receiver, dispatch_uid="test.other-app")
    try:
        assert answer_record(item=QueuedItem.of(item), backend="simulated",
                             answer=Answer(text="Acme is good.", sources=[]))
    finally:
        answer_findings.disconnect(dispatch_uid="test.other-app")
    stored = JobItem.objects.get(id=item.id).findings
    assert stored["other-app"] == derived["other-app"]
    assert set(stored) >= {"other-app", "visibility"}  # visibility's own key beside it


@pytest.mark.django_db
def test_findings_orjson_encodes_are_stored_as_the_same_json() -> None:
    group = JobGroupFactory(status=JobGroup.Status.RUNNING, providers=["chatgpt"], expected_responses=2)
    item = JobItemFactory(group=group, provider="chatgpt", status=JobItem.Status.RUNNING, text="")
    derived = {"other-app": {"label": "Zoë’s “CRM”", "ratio": 0.25, "nested": [[1, None, "x"]]}}
    answer_findings.connect(lambda sender, **kwargs: derived, dispatch_uid="test.other-app", weak=False)
    try:
        assert answer_record(item=QueuedItem.of(item), backend="simulated", answer=Answer(text="Hi.", sources=[]))
    finally:
        answer_findings.disconnect(dispatch_uid="test.other-app")
    assert JobItem.objects.get(id=item.id).findings["other-app"] == derived["other-app"]
    # Readable as JSON by the database itself, not stored as a string.
    assert JobItem.objects.filter(id=item.id, findings__has_key="other-app").exists()
    assert JobItem.objects.filter(id=item.id, **{"findings__other-app__ratio": 0.25}).exists()
