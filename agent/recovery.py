"""At-least-once delivery with exactly-once effects: the recovery sweep and its runner.

Huey's Redis queue pops a message and keeps no acknowledgement, so a killed consumer loses the
items it held, and a Redis restarted empty loses queues and progress. The database knows every
item's state, so a sweep that runs inside the live consumers (one at a time, by a Redis lock):
- fails items of groups past AGENT_GROUP_DEADLINE_SECONDS ("deadline exceeded"),
- records results a worker received but could not record (held in Redis during a database outage),
- puts back on the queue running items whose heartbeat stopped, and queued items overdue by
  AGENT_RECOVERY_SECONDS that their queue no longer holds (in a cancelled group they end
  cancelled instead: cancelling means nothing new starts),
- reconciles each unfinished group's progress object with the rows (idempotent merge), and
- closes groups whose items are all finished.
A paused queue's items are waiting, not lost: they are never pushed again while it is paused,
and its patience restarts when it is resumed; the deadline names the pause when it ends them.
Pushing an item twice is harmless: only a queued item starts, and recording succeeds once.

Every step works in bounded batches: at most AGENT_RECOVERY_BATCH items per step and sweep, at
most UPDATE_CHUNK ids per statement (far below any SQLite's bound-variable limit, and short write
locks), and the items put back are shared fairly between workspaces, then between their runs
(smallest share first), so a workspace with a backlog of hundreds of thousands never holds up
another's few lost items.
"""
from __future__ import annotations

import itertools
import logging
import random
import threading
import time
import uuid
from collections import defaultdict
from dataclasses import dataclass, field
from datetime import datetime, timedelta

import redis
from django.conf import settings
from django.db import close_old_connections, connection
from django.db.models import Count, Exists, F, Min, OuterRef, Q, QuerySet
from django.db.models.functions import Coalesce, Lower
from django.utils import timezone

from agent import progress
from agent.connections import redis_client
from agent.fair_shares import fair_shares_nested
from agent.held_results import held_results_drop, held_results_get
from agent.models import JobGroup, JobItem, ProviderQueue
from agent.queue_ops import queue_pause_mirror_sync
from agent.queues import queue_key
from agent.services.closing import job_group_finalize
from agent.services.items import item_result_record
from agent.tasks import QueuedItem, item_messages_push_on
from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS
from oneglanse.provider_ids import PROVIDER_IDS

logger = logging.getLogger(__name__)

SWEEP_LOCK_KEY = "oneglanse:recovery:lock"
# The lock is held while a sweep runs (up to this long, so a sweeper that dies frees it), then
# kept until one interval has passed since the sweep began: one sweep at a time, one per interval.
SWEEP_LOCK_HOLD_SECONDS = 300
# A queued item overdue by this many recovery windows is pushed again even while its queue
# still has a backlog: the backlog may be new work while the item itself was lost.
BACKLOG_PATIENCE_WINDOWS = 10
# A running item lost this many times more than the attempts allow is failed, so an item
# that kills its worker (say, out of memory) cannot crash-loop the consumers forever.
EXTRA_LOSSES_ALLOWED = 2
UPDATE_CHUNK = 500  # ids per UPDATE statement and per Redis read of held results
GROUPS_PER_SWEEP = 200  # progress rebuilds, and closes, per sweep


@dataclass
class SweepReport:
    requeued: dict[str, int] = field(default_factory=dict)
    deadline_failed: int = 0
    lost_too_often: int = 0
    cancelled: int = 0
    held_recorded: int = 0
    progress_rebuilt: int = 0
    groups_closed: int = 0

    def __bool__(self) -> bool:
        return bool(sum(self.requeued.values()) or self.deadline_failed or self.lost_too_often or self.cancelled
                    or self.held_recorded or self.progress_rebuilt or self.groups_closed)


def _open_groups() -> Q:
    return Q(status__in=JobGroup.UNFINISHED) | Q(status=JobGroup.Status.CANCELLED, finished_at__isnull=True)


def recovery_sweep(*, now: datetime | None = None) -> SweepReport:
    """One bounded pass over the unfinished groups; safe to run beside live workers and other sweeps."""
    now = now or timezone.now()
    report = SweepReport()
    budget = settings.AGENT_RECOVERY_BATCH
    window = timedelta(seconds=settings.AGENT_RECOVERY_SECONDS)
    if not JobGroup.objects.filter(_open_groups()).exists():
        return report

    queues = list(ProviderQueue.objects.select_related("paused_by"))
    paused = {q.provider: q for q in queues if q.paused}
    resumed_at = {q.provider: q.resumed_at for q in queues if not q.paused and q.resumed_at}
    report.deadline_failed = _deadline_fail(now=now, budget=budget, paused=paused)
    report.cancelled = _cancelled_groups_settle(now=now, window=window, budget=budget)
    _lost_items_recover(now=now, window=window, budget=budget, report=report, paused=paused, resumed_at=resumed_at)
    if report.requeued:
        logger.warning("recovery: put lost items back on their queues: %s", report.requeued)

    groups = _open_groups_fair_order()
    report.progress_rebuilt = _progress_reconcile(groups)
    report.groups_closed = _groups_close()
    return report


def _items_by_id(ids: list[int], statuses: tuple[str, ...], condition: Q | None = None) -> QuerySet:
    """The items among `ids` still in one of `statuses` (and meeting `condition`), found by primary key.

    Without ANALYZE statistics SQLite prefers the status index for `status = ?` over a few hundred
    primary-key lookups, and so scans every queued item of the table for each statement (38 ms
    per statement at 260,000 lost items); comparing the status through a function leaves it no
    index to prefer, so each statement touches its own rows only.
    """
    items = JobItem.objects.filter(condition or Q(), id__in=ids)
    return items.alias(state=Lower("status")).filter(state__in=statuses)


def _update_in_chunks(
    *, group_id, statuses: tuple[str, ...], condition: Q | None = None, limit: int, **changes
) -> int:
    """Apply `changes` to at most `limit` of a group's items in `statuses`, UPDATE_CHUNK ids per statement."""
    candidates = JobItem.objects.filter(condition or Q(), group_id=group_id, status__in=statuses).order_by("id")
    done = 0
    while done < limit:
        ids = list(candidates.values_list("id", flat=True)[: min(UPDATE_CHUNK, limit - done)])
        if not ids:
            break
        changed = _items_by_id(ids, statuses, condition).update(**changes)
        if not changed:  # every row changed under us (a worker was quicker): the next sweep looks again
            break
        done += changed
    return done


def _deadline_fail(*, now: datetime, budget: int, paused: dict[str, ProviderQueue]) -> int:
    deadline = now - timedelta(seconds=settings.AGENT_GROUP_DEADLINE_SECONDS)
    failed = 0
    # A delayed run's deadline counts from the time it was due, not from when it was submitted.
    expired = (JobGroup.objects.filter(_open_groups()).annotate(due_at=Coalesce("run_at", "created_at"))
               .filter(due_at__lt=deadline).order_by("due_at"))
    for group_id in expired.values_list("id", flat=True)[:GROUPS_PER_SWEEP]:
        for provider_id, queue in paused.items():
            if failed >= budget:
                return failed
            by = f" by {queue.paused_by.username}" if queue.paused_by_id else ""
            failed += _update_in_chunks(
                group_id=group_id, statuses=(JobItem.Status.QUEUED,), condition=Q(provider=provider_id),
                limit=budget - failed, status=JobItem.Status.FAILED, finished_at=now,
                error=f"deadline exceeded: queue paused ({provider_id}, paused{by}) (AGENT_GROUP_DEADLINE_SECONDS)",
            )
        if failed >= budget:
            break
        failed += _update_in_chunks(
            group_id=group_id, statuses=JobItem.UNFINISHED, limit=budget - failed, status=JobItem.Status.FAILED,
            finished_at=now, error="deadline exceeded (AGENT_GROUP_DEADLINE_SECONDS)",
        )
    return failed


def _cancelled_groups_settle(*, now: datetime, window: timedelta, budget: int) -> int:
    """Items of cancelled groups that a retry put back, or whose worker was lost, end cancelled."""
    cancelled = 0
    open_cancelled = JobGroup.objects.filter(status=JobGroup.Status.CANCELLED, finished_at__isnull=True)
    for group_id in open_cancelled.order_by("created_at").values_list("id", flat=True)[:GROUPS_PER_SWEEP]:
        for statuses, condition, error in (
            ((JobItem.Status.QUEUED,), Q(), "cancelled before it started"),
            ((JobItem.Status.RUNNING,), Q(heartbeat_at__lt=now - window),
             "cancelled: the worker running it was lost after the group was cancelled"),
        ):
            if cancelled >= budget:
                return cancelled
            cancelled += _update_in_chunks(group_id=group_id, statuses=statuses, condition=condition,
                                           limit=budget - cancelled, status=JobItem.Status.CANCELLED,
                                           finished_at=now, error=error)
    return cancelled


def _lost_condition(*, now: datetime, window: timedelta, paused: dict, resumed_at: dict) -> Q:
    """An item no worker holds: running with a stopped heartbeat, or queued and overdue (with more
    patience while its queue has a backlog, which may be the item itself). A paused queue's queued
    items are waiting, not lost, and a resumed queue's are due no earlier than the resume."""
    backlog = _queue_lengths()
    overdue = Q(pk__in=[])
    for provider_id in PROVIDER_IDS:
        cutoff = now - window * (BACKLOG_PATIENCE_WINDOWS if backlog[provider_id] else 1)
        resumed = resumed_at.get(provider_id)
        if provider_id in paused or (resumed is not None and resumed >= cutoff):
            continue
        overdue |= Q(provider=provider_id) & (Q(next_attempt_at__isnull=True) | Q(next_attempt_at__lt=cutoff))
    return (Q(status=JobItem.Status.QUEUED) & overdue) | Q(status=JobItem.Status.RUNNING, heartbeat_at__lt=now - window)


def _lost_items_recover(
    *, now: datetime, window: timedelta, budget: int, report: SweepReport, paused: dict, resumed_at: dict
) -> None:
    lost = _lost_condition(now=now, window=window, paused=paused, resumed_at=resumed_at)
    # One aggregate finds who lost what, oldest first (the order the leftovers of the fair split follow).
    demands: dict = defaultdict(dict)
    priority_of = {}
    running_groups = JobGroup.objects.filter(status__in=JobGroup.UNFINISHED).values("id")
    for row in (JobItem.objects.filter(lost, group_id__in=running_groups)
                .values("group_id", "group__workspace_id", "group__priority")
                .annotate(n=Count("id"), first=Min("id")).order_by("first")):
        demands[row["group__workspace_id"]][row["group_id"]] = row["n"]
        priority_of[row["group_id"]] = row["group__priority"]
    if not demands:
        return
    shares = fair_shares_nested(demands, budget)
    # Smallest share first, each chunk pushed as soon as it is marked: a run that lost a few items
    # has them back on the queue at the start of the sweep, ahead of any backlog's share.
    for group_id, share in sorted(shares.items(), key=lambda pair: pair[1]):
        if not share:
            continue
        # Longest overdue first: an item never put back goes before one pushed a while ago that is
        # still waiting behind a long queue, so a backlog larger than the budget is worked through.
        rows = list(JobItem.objects.filter(lost, group_id=group_id)
                    .order_by(F("next_attempt_at").asc(nulls_first=True), "id")
                    .values_list("id", "provider", "status", "attempts")[:share])
        for start in range(0, len(rows), UPDATE_CHUNK):
            pushed = _lost_chunk_recover(rows[start:start + UPDATE_CHUNK], now=now, window=window, report=report)
            _push(group_id, priority_of[group_id], pushed, report)


def _lost_chunk_recover(rows: list[tuple], *, now: datetime, window: timedelta, report: SweepReport) -> list[tuple[int, str]]:
    """Record held results, fail items lost too often, and mark the rest due now; returns what to push."""
    held = held_results_get([item_id for item_id, *_ in rows])
    for result in held.values():
        # Received by a worker while the database was away: recorded now, the provider is not asked again.
        report.held_recorded += item_result_record(result=result, wait_out_outage=False)
    held_results_drop(list(held))
    if held:
        logger.warning("recovery: %d held results recorded once the database was back", len(held))

    stale = Q(heartbeat_at__lt=now - window)
    give_up = settings.AGENT_MAX_ATTEMPTS + EXTRA_LOSSES_ALLOWED
    too_often = [item_id for item_id, _, status, attempts in rows
                 if item_id not in held and status == JobItem.Status.RUNNING and attempts >= give_up]
    running = [item_id for item_id, _, status, attempts in rows
               if item_id not in held and status == JobItem.Status.RUNNING and attempts < give_up]
    queued = [item_id for item_id, _, status, _ in rows if item_id not in held and status == JobItem.Status.QUEUED]
    if too_often:
        report.lost_too_often += _items_by_id(too_often, (JobItem.Status.RUNNING,), stale).update(
            status=JobItem.Status.FAILED, finished_at=now,
            error=f"the worker running this item was lost {give_up} times or more; giving up",
        )
    # Due again from now, so the next sweeps give the pushed message a full window.
    if running:
        _items_by_id(running, (JobItem.Status.RUNNING,), stale).update(status=JobItem.Status.QUEUED, next_attempt_at=now)
    if queued:
        _items_by_id(queued, (JobItem.Status.QUEUED,)).update(next_attempt_at=now)
    pushed = set(running) | set(queued)
    return [(item_id, provider_id) for item_id, provider_id, _, _ in rows if item_id in pushed]


def _push(group_id, priority: str, items: list[tuple[int, str]], report: SweepReport) -> None:
    """Push one chunk of a group's items (one round trip), counting them per provider."""
    if not items:
        return
    by_provider: dict[str, list[QueuedItem]] = defaultdict(list)
    for item_id, provider_id in items:
        by_provider[provider_id].append(QueuedItem(item_id, str(group_id), provider_id, priority))
    pipeline = redis_client().pipeline(transaction=False)
    for provider_id, queued in by_provider.items():
        item_messages_push_on(pipeline, provider_id=provider_id, items=queued)
        report.requeued[provider_id] = report.requeued.get(provider_id, 0) + len(queued)
    pipeline.execute()


def _queue_lengths() -> dict[str, int]:
    pipeline = redis_client().pipeline(transaction=False)
    for provider_id in PROVIDER_IDS:
        pipeline.zcard(queue_key(provider_id))
    return dict(zip(PROVIDER_IDS, pipeline.execute(), strict=True))


def _open_groups_fair_order() -> list:
    """Ids of the unfinished groups, one workspace after another (oldest run first in each)."""
    by_workspace: dict = defaultdict(list)
    for group_id, workspace_id in JobGroup.objects.filter(_open_groups()).order_by("created_at").values_list(
        "id", "workspace_id"
    ):
        by_workspace[workspace_id].append(group_id)
    return [group_id for batch in itertools.zip_longest(*by_workspace.values()) for group_id in batch
            if group_id is not None]


def _progress_reconcile(group_ids: list) -> int:
    """Merge the rows into progress objects that are missing or count fewer items than the rows (a few per sweep)."""
    finished = dict(
        JobItem.objects.filter(group_id__in=JobGroup.objects.filter(_open_groups()).values("id"),
                               status__in=JobItem.FINISHED)
        .values_list("group_id").annotate(n=Count("id")).order_by()
    )
    rebuilt = 0
    client = redis_client()
    for start in range(0, len(group_ids), UPDATE_CHUNK):
        chunk = group_ids[start:start + UPDATE_CHUNK]
        pipeline = client.pipeline(transaction=False)
        for group_id in chunk:
            pipeline.hget(progress.progress_key(group_id), "n")
        for group_id, counted in zip(chunk, pipeline.execute(), strict=True):
            if counted is None or int(counted) < finished.get(group_id, 0):
                progress.progress_rebuild(group_id)
                rebuilt += 1
                if rebuilt >= GROUPS_PER_SWEEP:
                    return rebuilt
    return rebuilt


def _groups_close() -> int:
    unfinished = JobItem.objects.filter(group_id=OuterRef("id"), status__in=JobItem.UNFINISHED)
    closable = JobGroup.objects.filter(_open_groups()).filter(~Exists(unfinished)).order_by("created_at")
    return sum(job_group_finalize(group_id=group_id)  # it settles the providers too
               for group_id in closable.values_list("id", flat=True)[:GROUPS_PER_SWEEP])


class RecoverySweeper(threading.Thread):
    """Runs the sweep about every AGENT_RECOVERY_INTERVAL seconds in whichever consumers are alive.

    Every consumer ticks at half the interval (with jitter); a tick sweeps only if it can take
    a Redis lock, held while the sweep runs and until one interval has passed since it began,
    so across all hosts one sweep runs at a time, and one per interval.
    """

    def __init__(self) -> None:
        super().__init__(name="recovery-sweeper", daemon=True)
        self.stop_event = threading.Event()
        self.token = uuid.uuid4().hex

    def run(self) -> None:
        interval = settings.AGENT_RECOVERY_INTERVAL
        while not self.stop_event.wait(interval / 2 * random.uniform(0.8, 1.2)):
            self.tick(interval)

    def tick(self, interval: float) -> SweepReport | None:
        try:
            hold = max(interval, SWEEP_LOCK_HOLD_SECONDS)
            if not redis_client().set(SWEEP_LOCK_KEY, self.token, nx=True, px=int(hold * 1000)):
                return None
            began = time.monotonic()
            try:
                close_old_connections()
                queue_pause_mirror_sync()  # the database is the pause's truth: a lost or stale mirror heals here
                report = recovery_sweep()
            finally:
                self._lock_keep_until(began + interval)
            if report:
                logger.info("recovery sweep: %s", report)
            return report
        except redis.RedisError as exc:
            logger.warning("recovery sweep skipped: Redis unavailable (%s)", exc)
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            logger.warning("recovery sweep skipped: the database is unavailable (%s)", exc)
        except Exception:
            logger.exception("recovery sweep failed; the next tick tries again")
        finally:
            connection.close()
        return None


    def _lock_keep_until(self, deadline: float) -> None:
        """Shorten our lock to end `deadline` (monotonic); a lock that is no longer ours is left alone."""
        client = redis_client()
        if client.get(SWEEP_LOCK_KEY) == self.token.encode():
            client.pexpire(SWEEP_LOCK_KEY, max(1, int((deadline - time.monotonic()) * 1000)))


def recovery_sweeper_start() -> RecoverySweeper:
    sweeper = RecoverySweeper()
    sweeper.start()
    return sweeper
