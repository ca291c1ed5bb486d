"""Roles: owners change the workspace and its members; members get 403; a workspace keeps an owner."""
from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission
from django.test import Client
from rest_framework.test import APIClient

from tests.factories import MembershipFactory, UserFactory, WorkspaceFactory
from workspaces.members import NotOwner, membership_require_owner
from workspaces.models import Membership, Workspace

pytestmark = pytest.mark.django_db(transaction=True)


def client_of(user) -> APIClient:
    client = APIClient()
    client.force_authenticate(user)
    return client


@pytest.fixture
def team():
    workspace = WorkspaceFactory(name="Acme", enabled_providers=["chatgpt"])
    owner, member, outsider = UserFactory(username="olivia"), UserFactory(username="mike"), UserFactory(username="zed")
    MembershipFactory(user=owner, workspace=workspace, role="owner")
    MembershipFactory(user=member, workspace=workspace, role="member")
    return workspace, owner, member, outsider


def members_url(workspace: Workspace, username: str = "") -> str:
    return f"/api/workspaces/{workspace.id}/members/" + (f"{username}/" if username else "")


def test_the_creator_of_a_workspace_is_its_owner(api, user) -> None:
    created = api.post("/api/workspaces/", {"name": "Mine", "enabled_providers": ["chatgpt"]}, format="json").json()
    listed = api.get(f"/api/workspaces/{created['id']}/members/").json()
    assert listed["results"] == [{"username": user.username, "role": "owner", "created_at": listed["results"][0]["created_at"]}]


def test_members_cannot_change_the_workspace_owners_can(team) -> None:
    workspace, owner, member, _ = team
    for body in ({"name": "Hijacked"}, {"enabled_providers": ["chatgpt", "claude"]}):
        refused = client_of(member).patch(f"/api/workspaces/{workspace.id}/", body, format="json")
        assert refused.status_code == 403 and "owner" in refused.json()["detail"]
    workspace.refresh_from_db()
    assert (workspace.name, workspace.enabled_providers) == ("Acme", ["chatgpt"])
    # A member still reads it; the owner changes it.
    assert client_of(member).get(f"/api/workspaces/{workspace.id}/").status_code == 200
    assert client_of(owner).patch(f"/api/workspaces/{workspace.id}/", {"name": "Acme 2"}, format="json").status_code == 200


def test_owner_adds_changes_and_removes_members(team) -> None:
    workspace, owner, member, outsider = team
    api = client_of(owner)
    added = api.post(members_url(workspace), {"username": "zed"}, format="json")
    assert added.status_code == 201 and added.json()["role"] == "member"
    assert client_of(outsider).get(f"/api/workspaces/{workspace.id}/").status_code == 200
    assert api.post(members_url(workspace), {"username": "zed"}, format="json").status_code == 409
    unknown = api.post(members_url(workspace), {"username": "nobody"}, format="json")
    assert unknown.status_code == 400 and "nobody" in unknown.json()["username"][0]
    assert api.post(members_url(workspace), {"username": "x", "role": "admin"}, format="json").status_code == 400

    promoted = api.patch(members_url(workspace, "mike"), {"role": "owner"}, format="json")
    assert promoted.status_code == 200 and promoted.json() == {**promoted.json(), "username": "mike", "role": "owner"}
    assert api.delete(members_url(workspace, "zed")).status_code == 204
    assert client_of(outsider).get(f"/api/workspaces/{workspace.id}/").status_code == 404
    assert api.delete(members_url(workspace, "zed")).status_code == 404
    roles = dict(Membership.objects.filter(workspace=workspace).values_list("user__username", "role"))
    assert roles == {"olivia": "owner", "mike": "owner"}


def test_members_cannot_change_members(team) -> None:
    workspace, owner, member, outsider = team
    api = client_of(member)
    assert api.get(members_url(workspace)).status_code == 200  # they see who is in
    attempts = [
        api.post(members_url(workspace), {"username": "zed", "role": "owner"}, format="json"),
        api.patch(members_url(workspace, "mike"), {"role": "owner"}, format="json"),  # promote themselves
        api.patch(members_url(workspace, "olivia"), {"role": "member"}, format="json"),
        api.delete(members_url(workspace, "olivia")),
    ]
    assert [r.status_code for r in attempts] == [403] * 4
    roles = dict(Membership.objects.filter(workspace=workspace).values_list("user__username", "role"))
    assert roles == {"olivia": "owner", "mike": "member"}
    # Someone outside the workspace gets 404 for all of it.
    assert client_of(outsider).get(members_url(workspace)).status_code == 404
    assert client_of(outsider).delete(members_url(workspace, "mike")).status_code == 404


def test_the_last_owner_cannot_be_removed_or_demoted(team) -> None:
    workspace, owner, member, _ = team
    api = client_of(owner)
    demote = api.patch(members_url(workspace, "olivia"), {"role": "member"}, format="json")
    assert demote.status_code == 409 and "last owner" in demote.json()["detail"]
    assert api.delete(members_url(workspace, "olivia")).status_code == 409
    assert Membership.objects.get(workspace=workspace, user=owner).role == "owner"
    # With a second owner, the first may step down.
    assert api.patch(members_url(workspace, "mike"), {"role": "owner"}, format="json").status_code == 200
    assert api.patch(members_url(workspace, "olivia"), {"role": "member"}, format="json").status_code == 200
    assert client_of(owner).patch(f"/api/workspaces/{workspace.id}/", {"name": "x"}, format="json").status_code == 403


def test_membership_require_owner_is_the_reusable_check(team) -> None:
    workspace, owner, member, outsider = team
    membership_require_owner(user=owner, workspace=workspace)
    for who in (member, outsider):
        with pytest.raises(NotOwner):
            membership_require_owner(user=who, workspace=workspace)


# --- the admin follows the same rule for staff who are not superusers ---

@pytest.fixture
def staff_member(team):
    workspace, owner, member, _ = team
    member.is_staff = True
    member.save()
    codenames = ["view_workspace", "change_workspace", "view_membership", "add_membership", "change_membership",
                 "delete_membership", "view_prompt", "add_prompt", "change_prompt"]
    member.user_permissions.set(Permission.objects.filter(codename__in=codenames))
    return member


def _change_form(workspace: Workspace, memberships: list[tuple[Membership, str]], **fields) -> dict:
    form = {"name": workspace.name, "enabled_providers": workspace.enabled_providers,
            "memberships-TOTAL_FORMS": len(memberships), "memberships-INITIAL_FORMS": len(memberships),
            "prompts-TOTAL_FORMS": 0, "prompts-INITIAL_FORMS": 0, **fields}
    for n, (membership, role) in enumerate(memberships):
        form.update({f"memberships-{n}-id": membership.id, f"memberships-{n}-workspace": workspace.id,
                     f"memberships-{n}-user": membership.user_id, f"memberships-{n}-role": role})
    return form


def test_staff_member_cannot_make_themselves_owner_nor_change_the_workspace_in_the_admin(team, staff_member) -> None:
    workspace, owner, member, _ = team
    client = Client()
    client.force_login(staff_member)
    url = f"/admin/workspaces/workspace/{workspace.id}/change/"
    page = client.get(url)
    assert page.status_code == 200
    mine = Membership.objects.get(workspace=workspace, user=member)
    theirs = Membership.objects.get(workspace=workspace, user=owner)
    client.post(url, _change_form(workspace, [(theirs, "member"), (mine, "owner")], name="Hijacked",
                                  enabled_providers=["chatgpt", "claude"]))
    workspace.refresh_from_db()
    assert (workspace.name, workspace.enabled_providers) == ("Acme", ["chatgpt"])
    roles = dict(Membership.objects.filter(workspace=workspace).values_list("user__username", "role"))
    assert roles == {"olivia": "owner", "mike": "member"}


def test_admin_refuses_to_leave_a_workspace_without_an_owner(team) -> None:
    workspace, owner, member, _ = team
    owner.is_staff = owner.is_superuser = True
    owner.save()
    client = Client()
    client.force_login(owner)
    url = f"/admin/workspaces/workspace/{workspace.id}/change/"
    theirs = Membership.objects.get(workspace=workspace, user=owner)
    mine = Membership.objects.get(workspace=workspace, user=member)
    response = client.post(url, _change_form(workspace, [(theirs, "member"), (mine, "member")]))
    assert response.status_code == 200 and "at least one owner" in response.content.decode()
    assert Membership.objects.get(id=theirs.id).role == "owner"
    response = client.post(url, _change_form(workspace, [(theirs, "member"), (mine, "owner")]))
    assert response.status_code == 302
    assert Membership.objects.get(id=mine.id).role == "owner"
