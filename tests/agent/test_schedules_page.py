"""The workspace page's Schedules section: owners add, pause and delete; members only see."""
from __future__ import annotations

from datetime import UTC, datetime

import pytest

from agent.models import Schedule
from agent.services.schedules import schedule_create, schedules_fire_due
from tests.factories import MembershipFactory, UserFactory, workspace_with_prompts
from workspaces.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def page(client, user):
    client.force_login(user)
    return client


def test_owner_adds_a_schedule_and_sees_its_next_run_in_its_time_zone(page, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    response = page.post(f"/workspaces/{workspace.id}/schedules/",
                         {"cron": "30 7 * * *", "timezone": "Asia/Tokyo", "priority": "low"}, follow=True)
    assert response.status_code == 200
    schedule = Schedule.objects.get(workspace=workspace)
    body = response.content.decode()
    assert "Schedule added" in body and "<code>30 7 * * *</code>" in body and "Asia/Tokyo" in body
    assert f"{schedule.next_run_at.astimezone(__import__('zoneinfo').ZoneInfo('Asia/Tokyo')):%Y-%m-%d} 07:30" in body


def test_bad_cron_on_the_page_is_shown_beside_the_field(page, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    response = page.post(f"/workspaces/{workspace.id}/schedules/", {"cron": "0 25 * * *", "timezone": "UTC", "priority": "low"})
    assert response.status_code == 400
    assert 'id="schedule-cron-errors"' in response.content.decode()
    assert not Schedule.objects.exists()


def test_pause_and_delete_from_the_page(page, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    schedule = schedule_create(workspace=workspace, user=user, cron="0 6 * * *")
    page.post(f"/schedules/{schedule.id}/active/", {"is_active": "false"})
    schedule.refresh_from_db()
    assert schedule.is_active is False
    assert "paused" in page.get(f"/workspaces/{workspace.id}/").content.decode()
    page.post(f"/schedules/{schedule.id}/delete/")
    assert not Schedule.objects.filter(id=schedule.id).exists()


def test_page_shows_why_a_slot_did_not_run_and_the_runs_a_schedule_started(page, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"])
    schedule = schedule_create(workspace=workspace, user=user, cron="0 6 * * *")
    Schedule.objects.filter(id=schedule.id).update(next_run_at=datetime(2025, 1, 6, 6, tzinfo=UTC))
    schedules_fire_due(now=datetime(2025, 1, 6, 6, 0, 5, tzinfo=UTC))
    body = page.get(f"/workspaces/{workspace.id}/").content.decode()
    assert "Did not run at 2025-01-06 06:00: the workspace has no active prompts" in body


def test_member_sees_schedules_but_no_form_and_cannot_change_them(client, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    schedule = schedule_create(workspace=workspace, user=user, cron="0 6 * * *")
    member = UserFactory()
    MembershipFactory(user=member, workspace=workspace, role=Membership.Role.MEMBER)
    client.force_login(member)
    body = client.get(f"/workspaces/{workspace.id}/").content.decode()
    assert "<code>0 6 * * *</code>" in body and "Add schedule" not in body
    client.post(f"/schedules/{schedule.id}/delete/")
    assert Schedule.objects.filter(id=schedule.id).exists()


def test_strangers_get_404_for_schedule_pages(client, user, stranger) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    schedule = schedule_create(workspace=workspace, user=user, cron="0 6 * * *")
    client.force_login(stranger)
    assert client.post(f"/schedules/{schedule.id}/delete/").status_code == 404
    assert client.post(f"/workspaces/{workspace.id}/schedules/", {"cron": "0 6 * * *"}).status_code == 404
