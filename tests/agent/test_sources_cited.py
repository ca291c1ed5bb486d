"""Cited or only found, as a user sees it: the run page's answer card, the answers API and the CSV."""
from __future__ import annotations

import csv
import io
import re

import pytest
from django.test import Client

from agent.models import JobItem
from agent.providers.base import Answer
from agent.services.items import answer_record
from agent.services.submit import job_group_submit
from agent.tasks import QueuedItem
from tests.factories import workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)

SOURCES = [
    {"url": "https://www.g2.com/crm", "title": "G2 CRM", "domain": "g2.com", "cited": True},
    {"url": "https://www.capterra.com/crm", "title": "Capterra CRM", "domain": "capterra.com", "cited": False},
]


@pytest.fixture
def group(user):
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["claude"])
    group = job_group_submit(workspace=workspace, user=user).job_group
    item = JobItem.objects.get(group=group)
    answer_record(
        item=QueuedItem.of(item), backend="live",
        answer=Answer(text="HubSpot, per G2.", sources=SOURCES, latency_ms=5, model="claude-test"), error="",
    )
    return group


def test_run_page_marks_each_source_cited_or_found_only(user, group) -> None:
    client = Client()
    client.force_login(user)
    html = client.get(f"/runs/{group.id}/").content.decode()
    g2 = re.search(r'<li><a href="https://www.g2.com/crm".*?</li>', html).group()
    capterra = re.search(r'<li><a href="https://www.capterra.com/crm".*?</li>', html).group()
    assert '<span class="badge cited"' in g2 and ">cited<" in g2 and "found only" not in g2
    assert '<span class="badge found"' in capterra and ">found only<" in capterra


def test_answers_api_returns_cited_on_every_source(api, group) -> None:
    (result,) = api.get(f"/api/runs/{group.id}/answers/").json()["results"]
    assert result["sources"] == SOURCES


def test_csv_has_the_cited_urls_beside_all_source_urls(api, group) -> None:
    response = api.get(f"/api/runs/{group.id}/answers/?format=csv")
    (row,) = csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode("utf-8-sig")))
    assert row["source_urls"] == "https://www.g2.com/crm https://www.capterra.com/crm"
    assert row["cited_urls"] == "https://www.g2.com/crm"
