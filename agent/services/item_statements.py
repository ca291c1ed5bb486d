"""The statements every answer runs, as SQL built once: an item's first claim and the writes of its row.

Through the ORM these were rebuilt and recompiled on every answer (a join for the run's status, an
`EXISTS` for the pause, a `COALESCE`, two JSON columns): a third of a consumer's CPU per answer in
a py-spy profile. The SQL is built once per process from the models' own table and column names,
and every value goes through its model field's `get_db_prep_save`, so rows are stored exactly as
the ORM stores them (UUIDs, datetimes, JSON) on SQLite and PostgreSQL alike.
"""
from __future__ import annotations

import functools
import uuid
from dataclasses import dataclass
from datetime import datetime

import orjson
from django.core.exceptions import ValidationError
from django.db import connection

from agent.models import JobGroup, JobItem, ProviderQueue


@dataclass(frozen=True)
class FirstClaim:
    """What the claim needs from the rows of an item it has just moved from queued to running."""

    prompt_text: str
    sample: int
    priority: str
    workspace_id: str


def _column(model, name: str) -> str:
    quote = connection.ops.quote_name
    return f"{quote(model._meta.db_table)}.{quote(model._meta.get_field(name).column)}"


def _table(model) -> str:
    return connection.ops.quote_name(model._meta.db_table)


@functools.cache
def _first_claim_sql(vendor: str) -> str:
    item, group, queue = _table(JobItem), _table(JobGroup), _table(ProviderQueue)
    item_column = functools.partial(_column, JobItem)
    status, attempts, started_at = item_column("status"), item_column("attempts"), item_column("started_at")
    of_its_group = f"FROM {group} WHERE {_column(JobGroup, 'id')} = {item_column('group')}"

    def bare(name: str) -> str:  # a SET target is never table-qualified (PostgreSQL refuses it)
        return connection.ops.quote_name(JobItem._meta.get_field(name).column)

    return (
        f"UPDATE {item} SET {bare('status')} = %s, {bare('attempts')} = {attempts} + 1, {bare('heartbeat_at')} = %s, "
        f"{bare('next_attempt_at')} = NULL, {bare('started_at')} = COALESCE({started_at}, %s) "
        f"WHERE {item_column('id')} = %s AND {item_column('provider')} = %s AND {item_column('group')} = %s "
        f"AND {status} = %s AND {attempts} = 0 "
        f"AND EXISTS (SELECT 1 {of_its_group} AND {_column(JobGroup, 'status')} NOT IN (%s, %s)) "
        f"AND NOT EXISTS (SELECT 1 FROM {queue} WHERE {_column(ProviderQueue, 'provider')} = %s "
        f"AND {_column(ProviderQueue, 'paused')} = %s) "
        f"RETURNING {item_column('prompt_text')}, {item_column('sample')}, "
        f"(SELECT {_column(JobGroup, 'priority')} {of_its_group}), (SELECT {_column(JobGroup, 'workspace')} {of_its_group})"
    )


class JSONText(str):
    """A JSON column's value already encoded (by orjson, several times faster than the field's
    json.dumps): passed as it is, and the database reads it as JSON (SQLite stores the text,
    PostgreSQL casts it to jsonb)."""


def json_text(value) -> JSONText | object:
    """`value` encoded for a JSON column, or `value` itself when orjson cannot encode it (the field's
    own encoder then does, or says why not)."""
    try:
        return JSONText(orjson.dumps(value).decode())
    except TypeError:
        return value


def _prepared(model, name: str, value):
    if isinstance(value, JSONText):
        return str(value)
    return model._meta.get_field(name).get_db_prep_save(value, connection)


def item_first_claim(*, item_id: int, group_id: str, provider_id: str, now: datetime) -> FirstClaim | None:
    """Move an item that never ran from queued to running, in one statement, when nothing stands in
    the way: it is this message's (item, group, provider), queued, never attempted, its run neither
    delayed nor cancelled, its queue not paused. None otherwise, and nothing is written: the caller's
    full claim then finds out which case it is."""
    try:
        group = _prepared(JobItem, "group", group_id)
    except ValidationError:
        return None  # not a run id at all: the full claim logs the mismatch
    moment = _prepared(JobItem, "heartbeat_at", now)
    params = [
        JobItem.Status.RUNNING, moment, moment, item_id, provider_id, group, JobItem.Status.QUEUED,
        JobGroup.Status.SCHEDULED, JobGroup.Status.CANCELLED, provider_id, True,
    ]
    with connection.cursor() as cursor:
        cursor.execute(_first_claim_sql(connection.vendor), params)
        row = cursor.fetchone()
    if row is None:
        return None
    prompt_text, sample, priority, workspace_id = row
    return FirstClaim(prompt_text=prompt_text, sample=sample, priority=priority,
                      workspace_id=str(uuid.UUID(str(workspace_id))))


@functools.cache
def _update_sql(vendor: str, names: tuple[str, ...], statuses: int) -> str:
    quote = connection.ops.quote_name
    assignments = ", ".join(f"{quote(JobItem._meta.get_field(name).column)} = %s" for name in names)
    return (
        f"UPDATE {_table(JobItem)} SET {assignments} WHERE {_column(JobItem, 'id')} = %s "
        f"AND {_column(JobItem, 'status')} IN ({', '.join(['%s'] * statuses)})"
    )


def item_update_from(*, item_id: int, statuses: tuple[str, ...], **values) -> int:
    """`JobItem.objects.filter(id=item_id, status__in=statuses).update(**values)` for plain values,
    without the ORM's per-call query building; the number of rows changed (0 or 1)."""
    names = tuple(values)
    params = [_prepared(JobItem, name, value) for name, value in values.items()]
    with connection.cursor() as cursor:
        cursor.execute(_update_sql(connection.vendor, names, len(statuses)), [*params, item_id, *statuses])
        return cursor.rowcount
