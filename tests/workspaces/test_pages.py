"""The workspace settings and members pages: owners change them, members read them, rules hold."""
from __future__ import annotations

import pytest
from django.test import Client

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.django_db


@pytest.fixture
def client_of():
    def make(user) -> Client:
        client = Client()
        client.force_login(user)
        return client
    return make


def test_new_workspace_page_creates_it_with_the_creator_as_owner(user, client_of) -> None:
    response = client_of(user).post("/workspaces/new/", {"name": "Acme", "enabled_providers": ["gemini", "chatgpt"]})
    workspace = Workspace.objects.get(name="Acme")
    assert response.status_code == 302 and response["Location"] == f"/workspaces/{workspace.id}/"
    assert workspace.enabled_providers == ["chatgpt", "gemini"]
    assert Membership.objects.get(workspace=workspace, user=user).role == "owner"


def test_new_workspace_without_providers_says_to_enable_one(user, client_of) -> None:
    response = client_of(user).post("/workspaces/new/", {"name": "Acme"})
    assert response.status_code == 400
    assert "Enable at least one provider" in response.content.decode()
    assert not Workspace.objects.filter(name="Acme").exists()


def test_owner_edits_name_and_providers(user, client_of) -> None:
    membership = MembershipFactory(user=user, role="owner")
    settings_url = f"/workspaces/{membership.workspace_id}/settings/"
    response = client_of(user).post(settings_url, {"name": "Renamed", "enabled_providers": ["claude"]})
    assert response.status_code == 302
    membership.workspace.refresh_from_db()
    assert (membership.workspace.name, membership.workspace.enabled_providers) == ("Renamed", ["claude"])


def test_member_reads_settings_but_cannot_change_them(user, client_of) -> None:
    membership = MembershipFactory(user=user, role="member", workspace__name="Acme")
    page = client_of(user).get(f"/workspaces/{membership.workspace_id}/settings/")
    assert page.status_code == 200 and "Only an owner" in page.content.decode() and "Save settings" not in page.content.decode()
    settings_url = f"/workspaces/{membership.workspace_id}/settings/"
    response = client_of(user).post(settings_url, {"name": "Mine now", "enabled_providers": ["claude"]})
    assert response.status_code == 403
    membership.workspace.refresh_from_db()
    assert membership.workspace.name == "Acme"


def test_stranger_gets_404_on_settings_and_members(stranger, client_of) -> None:
    workspace = WorkspaceFactory()
    for path in ("settings", "members"):
        assert client_of(stranger).get(f"/workspaces/{workspace.id}/{path}/").status_code == 404


def test_owner_invites_by_username_and_changes_the_role(user, client_of) -> None:
    membership = MembershipFactory(user=user, role="owner")
    bob = UserFactory(username="bob")
    client = client_of(user)
    added = client.post(f"/workspaces/{membership.workspace_id}/members/", {"username": "bob", "role": "member"})
    assert added.status_code == 302
    assert Membership.objects.get(workspace=membership.workspace, user=bob).role == "member"
    client.post(f"/workspaces/{membership.workspace_id}/members/bob/", {"action": "role", "role": "owner"})
    assert Membership.objects.get(workspace=membership.workspace, user=bob).role == "owner"


def test_inviting_an_unknown_username_says_so(user, client_of) -> None:
    membership = MembershipFactory(user=user, role="owner")
    response = client_of(user).post(f"/workspaces/{membership.workspace_id}/members/", {"username": "nobody", "role": "member"})
    assert response.status_code == 400 and "No user named" in response.content.decode()


def test_the_last_owner_cannot_demote_themselves(user, client_of) -> None:
    membership = MembershipFactory(user=user, role="owner")
    member_url = f"/workspaces/{membership.workspace_id}/members/alice/"
    response = client_of(user).post(member_url, {"action": "role", "role": "member"}, follow=True)
    assert "last owner" in response.content.decode()
    membership.refresh_from_db()
    assert membership.role == "owner"


def test_member_sees_the_members_read_only_and_cannot_invite(user, client_of) -> None:
    membership = MembershipFactory(user=user, role="member")
    UserFactory(username="carol")
    page = client_of(user).get(f"/workspaces/{membership.workspace_id}/members/").content.decode()
    assert "only an owner can invite" in page and "Add member" not in page and "<select" not in page
    response = client_of(user).post(f"/workspaces/{membership.workspace_id}/members/", {"username": "carol", "role": "owner"})
    assert response.status_code == 403
    assert not Membership.objects.filter(user__username="carol").exists()
