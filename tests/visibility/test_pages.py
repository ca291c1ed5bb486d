"""The visibility parts of the workspace and run pages: brands section forms, samples setting, run summary."""
from __future__ import annotations

import pytest

from agent.models import JobGroup
from tests.factories import JobGroupFactory, JobItemFactory, MembershipFactory
from visibility.models import Brand
from visibility.services.aggregates import job_group_visibility_aggregate
from visibility.services.analysis import items_analyse
from workspaces.models import Membership

pytestmark = pytest.mark.django_db


@pytest.fixture
def workspace(user):
    return MembershipFactory(user=user).workspace


def test_brands_are_added_edited_and_deleted_from_the_workspace_page(client, user, workspace) -> None:
    client.force_login(user)
    page = client.get(f"/workspaces/{workspace.id}/").content.decode()
    assert 'id="brands"' in page and f"/workspaces/{workspace.id}/visibility/" in page
    response = client.post(f"/workspaces/{workspace.id}/brands/", {
        "name": "HubSpot", "aliases": "HubSpot CRM, , Hub", "domains": "www.hubspot.com", "is_own": "on"}, follow=True)
    brand = Brand.objects.get(workspace=workspace)
    assert (brand.name, brand.aliases, brand.domains, brand.is_own) == ("HubSpot", ["HubSpot CRM", "Hub"],
                                                                      ["hubspot.com"], True)
    assert "re-analysed in a few seconds" in response.content.decode()
    response = client.post(f"/brands/{brand.id}/edit/", {"name": "HubSpot", "domains": "not a host"}, follow=True)
    assert "not a host name" in response.content.decode()
    client.post(f"/brands/{brand.id}/edit/", {"name": "Hubspot", "domains": "hubspot.com", "match_case": "on"})
    brand.refresh_from_db()
    assert (brand.name, brand.match_case, brand.is_own, brand.aliases) == ("Hubspot", True, False, [])
    client.post(f"/brands/{brand.id}/delete/")
    assert not Brand.objects.filter(id=brand.id).exists()


def test_only_owners_change_samples_per_run_on_the_page(client, user, workspace, django_user_model) -> None:
    client.force_login(user)
    client.post(f"/workspaces/{workspace.id}/samples/", {"samples_per_run": "4"})
    workspace.refresh_from_db()
    assert workspace.samples_per_run == 4
    response = client.post(f"/workspaces/{workspace.id}/samples/", {"samples_per_run": "11"}, follow=True)
    workspace.refresh_from_db()
    assert workspace.samples_per_run == 4 and "1 to 10" in response.content.decode()
    member = django_user_model.objects.create_user("bob", password="pw-123456789")
    Membership.objects.create(user=member, workspace=workspace, role=Membership.Role.MEMBER)
    client.force_login(member)
    response = client.post(f"/workspaces/{workspace.id}/samples/", {"samples_per_run": "2"}, follow=True)
    workspace.refresh_from_db()
    assert workspace.samples_per_run == 4 and "Only an owner" in response.content.decode()


def test_a_finished_run_page_shows_its_visibility_summary(client, user, workspace) -> None:
    Brand.objects.create(workspace=workspace, name="Acme", is_own=True)
    Brand.objects.create(workspace=workspace, name="Globex")
    group = JobGroupFactory(workspace=workspace, providers=["chatgpt"], status=JobGroup.Status.RUNNING)
    items_analyse(item_ids=[JobItemFactory(group=group, text=text).id
                            for text in ("Acme then Globex", "Globex only", "Neither")])
    client.force_login(user)
    assert "Visibility in this run" not in client.get(f"/runs/{group.id}/").content.decode()
    JobGroup.objects.filter(id=group.id).update(status=JobGroup.Status.COMPLETED)
    group.refresh_from_db()
    job_group_visibility_aggregate(group=group)
    page = client.get(f"/runs/{group.id}/").content.decode()
    assert "Visibility in this run" in page
    assert "1 of 3" in page and "2 of 3" in page  # Acme in one answer, Globex in two
    assert "33 %" in page and "67 %" in page


def test_a_run_page_header_counts_its_samples(client, user, workspace) -> None:
    group = JobGroupFactory(workspace=workspace, providers=["chatgpt", "claude"], samples=3, total_prompts=5,
                            expected_responses=30)
    client.force_login(user)
    page = " ".join(client.get(f"/runs/{group.id}/").content.decode().split())
    assert "5 prompts × 2 providers × 3 samples = 30 provider calls" in page
