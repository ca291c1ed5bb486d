"""A member's access, cached across processes, follows membership changes at once."""
from __future__ import annotations

import pytest
from django.core.cache import cache
from django.db import connection
from django.test.utils import CaptureQueriesContext

from agent.services.submit import job_group_submit
from tests.factories import MembershipFactory, workspace_with_prompts
from workspaces.access import member_of_cache_key, workspace_ids_of_user_cached
from workspaces.models import Membership

pytestmark = pytest.mark.django_db(transaction=True)


def test_status_of_a_removed_member_is_404_at_once(api, user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1)
    group = job_group_submit(workspace=workspace, user=user).job_group
    assert api.get(f"/api/runs/{group.id}/status/").status_code == 200  # now cached
    Membership.objects.filter(user=user, workspace=workspace).delete()
    assert api.get(f"/api/runs/{group.id}/status/").status_code == 404


def test_status_of_a_new_member_is_200_at_once(api, user, stranger, stranger_api) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1)
    group = job_group_submit(workspace=workspace, user=user).job_group
    assert stranger_api.get(f"/api/runs/{group.id}/status/").status_code == 404  # "member of nothing" is cached
    MembershipFactory(user=stranger, workspace=workspace)
    assert stranger_api.get(f"/api/runs/{group.id}/status/").status_code == 200


def test_repeated_status_reads_run_no_membership_query(api, user) -> None:
    group = job_group_submit(workspace=workspace_with_prompts(user=user, prompts=1), user=user).job_group
    cache.delete(member_of_cache_key(user.id))  # the "just changed" mark of the setup, as once it has expired
    api.get(f"/api/runs/{group.id}/status/")
    with CaptureQueriesContext(connection) as queries:
        assert api.get(f"/api/runs/{group.id}/status/").status_code == 200
    assert not [q for q in queries.captured_queries if "membership" in q["sql"]]


def test_a_reader_that_saw_old_memberships_cannot_cache_them_after_a_change(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0)
    stale = frozenset({workspace.id})
    Membership.objects.filter(user=user).delete()  # marks the entry changed
    # A reader that loaded the memberships before the delete committed now tries to fill the cache.
    cache.add(member_of_cache_key(user.id), stale, 600)
    assert workspace_ids_of_user_cached(user_id=user.id) == frozenset()
