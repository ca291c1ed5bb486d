"""Schedules API: owners create, change and delete; members read; strangers get 404."""
from __future__ import annotations

from datetime import datetime

import pytest

from agent.models import Schedule
from tests.factories import MembershipFactory, UserFactory, workspace_with_prompts
from workspaces.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(user):
    return workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])


def test_owner_creates_a_schedule_and_sees_its_next_run(api, workspace) -> None:
    response = api.post(f"/api/workspaces/{workspace.id}/schedules/",
                        {"cron": "0 6 * * 1-5", "timezone": "Europe/Berlin"}, format="json")
    assert response.status_code == 201, response.content
    body = response.json()
    assert body["cron"] == "0 6 * * 1-5" and body["timezone"] == "Europe/Berlin"
    assert body["priority"] == "low" and body["is_active"] is True
    next_run = datetime.fromisoformat(body["next_run_at"])
    assert next_run.astimezone(__import__("zoneinfo").ZoneInfo("Europe/Berlin")).hour == 6
    assert body["last_run_at"] is None

    listed = api.get(f"/api/workspaces/{workspace.id}/schedules/").json()
    assert [s["id"] for s in listed["results"]] == [body["id"]]


@pytest.mark.parametrize("payload, field", [
    ({"cron": "0 25 * * *"}, "cron"),
    ({"cron": "every day"}, "cron"),
    ({"cron": "0 6 * * *", "timezone": "Mars/Olympus"}, "timezone"),
    ({"cron": "0 6 * * *", "priority": "urgent"}, "priority"),
    ({}, "cron"),
])
def test_bad_schedule_input_is_400_naming_the_field(api, workspace, payload, field) -> None:
    response = api.post(f"/api/workspaces/{workspace.id}/schedules/", payload, format="json")
    assert response.status_code == 400
    assert field in response.json()


def test_patch_pauses_and_changes_the_time(api, workspace) -> None:
    created = api.post(f"/api/workspaces/{workspace.id}/schedules/", {"cron": "0 6 * * *"}, format="json").json()
    paused = api.patch(f"/api/schedules/{created['id']}/", {"is_active": False}, format="json")
    assert paused.status_code == 200 and paused.json()["is_active"] is False
    moved = api.patch(f"/api/schedules/{created['id']}/", {"cron": "30 7 * * *", "is_active": True}, format="json").json()
    assert datetime.fromisoformat(moved["next_run_at"]).strftime("%H:%M") == "07:30"
    bad = api.patch(f"/api/schedules/{created['id']}/", {"timezone": "Nowhere/Land"}, format="json")
    assert bad.status_code == 400 and "timezone" in bad.json()


def test_delete_removes_the_schedule_but_keeps_its_runs(api, workspace) -> None:
    created = api.post(f"/api/workspaces/{workspace.id}/schedules/", {"cron": "0 6 * * *"}, format="json").json()
    assert api.delete(f"/api/schedules/{created['id']}/").status_code == 204
    assert not Schedule.objects.filter(id=created["id"]).exists()
    assert api.get(f"/api/schedules/{created['id']}/").status_code == 404


def test_member_reads_schedules_but_cannot_change_them(api, workspace) -> None:
    created = api.post(f"/api/workspaces/{workspace.id}/schedules/", {"cron": "0 6 * * *"}, format="json").json()
    member = UserFactory()
    MembershipFactory(user=member, workspace=workspace, role=Membership.Role.MEMBER)
    api.force_authenticate(member)
    assert api.get(f"/api/schedules/{created['id']}/").status_code == 200
    assert api.post(f"/api/workspaces/{workspace.id}/schedules/", {"cron": "0 7 * * *"}, format="json").status_code == 403
    assert api.patch(f"/api/schedules/{created['id']}/", {"is_active": False}, format="json").status_code == 403
    assert api.delete(f"/api/schedules/{created['id']}/").status_code == 403


def test_strangers_get_404_for_schedules_of_other_workspaces(api, stranger_api, workspace) -> None:
    created = api.post(f"/api/workspaces/{workspace.id}/schedules/", {"cron": "0 6 * * *"}, format="json").json()
    assert stranger_api.get(f"/api/workspaces/{workspace.id}/schedules/").status_code == 404
    created_by_stranger = stranger_api.post(f"/api/workspaces/{workspace.id}/schedules/", {"cron": "0 6 * * *"}, format="json")
    assert created_by_stranger.status_code == 404
    assert stranger_api.get(f"/api/schedules/{created['id']}/").status_code == 404
    assert stranger_api.delete(f"/api/schedules/{created['id']}/").status_code == 404
    assert api.get("/api/schedules/not-an-id/").status_code == 404
