"""A lost backlog of any size, built in a few statements (one INSERT ... SELECT for the items)."""
from __future__ import annotations

from datetime import datetime

from django.db import connection

from agent.models import JobGroup, JobGroupProvider, JobItem
from prompts.models import Prompt
from tests.factories import WorkspaceFactory
from workspaces.models import Workspace


def lost_backlog(*, runs: int, prompts: int, lost_at: datetime, provider: str = "chatgpt") -> tuple[Workspace, int]:
    """`runs` runs of `prompts` prompts on one provider in a new workspace, every item lost at `lost_at`:
    queued with no message anywhere, and the first prompt's item of each run running with a dead
    worker. Returns the workspace and the number of items."""
    workspace = WorkspaceFactory(name=f"Backlog of {runs} runs", enabled_providers=[provider])
    Prompt.objects.bulk_create([Prompt(workspace=workspace, text=f"Backlog question {i}?") for i in range(prompts)])
    groups = JobGroup.objects.bulk_create([
        JobGroup(workspace=workspace, providers=[provider], total_prompts=prompts, expected_responses=prompts)
        for _ in range(runs)
    ])
    JobGroup.objects.filter(workspace=workspace).update(created_at=lost_at, status=JobGroup.Status.RUNNING)
    JobGroupProvider.objects.bulk_create([JobGroupProvider(group=g, provider=provider) for g in groups])

    item, prompt, group = JobItem._meta, Prompt._meta, JobGroup._meta
    quote = connection.ops.quote_name
    prepared = {
        "provider": provider, "sample": 1, "status": JobItem.Status.QUEUED.value, "attempts": 0,
        "next_attempt_at": item.get_field("next_attempt_at").get_db_prep_save(lost_at, connection),
        "backend": "", "model": "", "text": "", "error": "",
        "sources": item.get_field("sources").get_db_prep_save([], connection),
        "usage": item.get_field("usage").get_db_prep_save({}, connection),
    }
    columns = ["group_id", "prompt_id", "prompt_text", *prepared]
    workspace_id = group.get_field("workspace").get_db_prep_value(workspace.id, connection)
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {quote(item.db_table)} ({', '.join(quote(c) for c in columns)}) "
            f"SELECT g.{quote('id')}, p.{quote('id')}, p.{quote('text')}, {', '.join(['%s'] * len(prepared))} "
            f"FROM {quote(group.db_table)} g CROSS JOIN {quote(prompt.db_table)} p "
            f"WHERE g.{quote('workspace_id')} = %s AND p.{quote('workspace_id')} = %s",
            [*prepared.values(), workspace_id, workspace_id],
        )
        inserted = cursor.rowcount
    first_prompt = Prompt.objects.filter(workspace=workspace).order_by("id").values_list("id", flat=True).first()
    JobItem.objects.filter(group__workspace=workspace, prompt_id=first_prompt).update(
        status=JobItem.Status.RUNNING, attempts=1, heartbeat_at=lost_at, next_attempt_at=None
    )
    return workspace, inserted
