"""Queue tasks and their messages: the only place that registers tasks and builds Huey messages.

A message carries a `QueuedItem`; the task is a thin adapter that checks it and calls the
service (imported inside the task: services import this module to enqueue).
"""
from __future__ import annotations

import dataclasses
import logging
import pickle
import struct
import threading
import uuid
from dataclasses import dataclass

import redis
from django.conf import settings
from django.db import close_old_connections
from huey import RedisHuey
from huey.api import TaskWrapper
from huey.registry import Message
from huey.serializer import Serializer

from agent.queues import QUEUE_PRIORITY, huey_for
from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS, database_outage_wait_out

logger = logging.getLogger(__name__)

ITEM_RUN_TASK_NAME = "agent.item_run"


@dataclass(frozen=True)
class QueuedItem:
    """What a queue message says: run this item of this group on this provider's queue.

    `group_id` is "" only in messages queued by an older release, which sent the item id alone.
    """

    item_id: int
    group_id: str
    provider_id: str
    # The run's priority name; an older release's message has none and reads the class default.
    priority: str = "normal"

    @classmethod
    def of(cls, item, priority: str = "normal") -> QueuedItem:
        """The message value of a JobItem row."""
        return cls(item_id=item.id, group_id=str(item.group_id), provider_id=item.provider, priority=priority)


_register_lock = threading.Lock()


class TaskLinesFilter(logging.Filter):
    """Drops Huey's own per-task lines ("Executing …", "… 5 retries executed in 0.5s"), which read
    as if every item was retried five times: the item service logs what happened instead
    (answered, failed or retried, attempts, time)."""

    HIDDEN = ("Executing %s", "%s executed in %0.3fs")

    def filter(self, record: logging.LogRecord) -> bool:
        return record.msg not in self.HIDDEN


def item_run_task(provider_id: str) -> TaskWrapper:
    """The item task registered on the provider's Huey (registered on first use, once per instance)."""
    huey = huey_for(provider_id)
    task = getattr(huey, "item_run_task", None)
    if task is None:
        with _register_lock:
            task = getattr(huey, "item_run_task", None) or _item_run_task_register(huey, provider_id)
    return task


def consumer_huey(provider_id: str) -> RedisHuey:
    """The provider's Huey with its tasks registered, for the consumer to serve."""
    item_run_task(provider_id)
    return huey_for(provider_id)


def item_messages_push_on(pipeline: redis.client.Pipeline, *, provider_id: str, items: list[QueuedItem]) -> None:
    """Queue one item-run message per item on the caller's pipeline: one ZADD per queue and priority,
    the items of a priority in the given order.

    The priority travels in the message too, so Huey's own retries and delayed re-runs keep it.
    """
    by_priority: dict[int, list[QueuedItem]] = {}
    for item in items:
        by_priority.setdefault(QUEUE_PRIORITY.get(item.priority, QUEUE_PRIORITY["normal"]), []).append(item)
    huey, builders = huey_for(provider_id), {}
    for queue_priority, queued in by_priority.items():
        prefix = _message_id_prefix(queue_priority)
        messages = []
        for n, item in enumerate(queued):
            key = (item.group_id, item.priority)
            builder = builders.get(key) or builders.setdefault(key, ItemMessages(provider_id, *key))
            messages.append(builder.message(f"{prefix}{n}", item.item_id))
        huey.storage.enqueue_many_on(pipeline, messages, priority=queue_priority)


def group_messages_push_on(
    pipeline: redis.client.Pipeline, *, provider_id: str, groups: list[tuple[str, str, list[int]]],
) -> None:
    """`item_messages_push_on` for whole groups given as (group id, priority, item ids): a submit's
    runs, without an object per item. Within a priority the groups keep the given order."""
    by_priority: dict[int, list[tuple[str, str, list[int]]]] = {}
    for group in groups:
        by_priority.setdefault(QUEUE_PRIORITY.get(group[1], QUEUE_PRIORITY["normal"]), []).append(group)
    huey = huey_for(provider_id)
    for queue_priority, runs in by_priority.items():
        prefix, messages = _message_id_prefix(queue_priority), []
        for group_id, priority, item_ids in runs:
            messages += ItemMessages(provider_id, group_id, priority).messages(prefix, item_ids, start=len(messages))
        huey.storage.enqueue_many_on(pipeline, messages, priority=queue_priority)


def _message_id_prefix(queue_priority: int) -> str:
    # Message ids are unique: one random prefix per push, numbered within it.
    return f"{uuid.uuid4().hex}-{queue_priority}-"


class ItemMessages:
    """The item-run messages of one group's items on one queue, as Huey would serialize them.

    Huey builds each message from a Task object with a fresh uuid4 and pickles it; for a run of
    100,000 items that was most of the submit. Here one message is built Huey's way and the
    others are spliced from its pickle with their own id and item (`MessageSplice`); where the
    splice cannot be proved equal to Huey's bytes, every message is pickled Huey's way.
    """

    def __init__(self, provider_id: str, group_id: str, priority: str) -> None:
        self.huey = huey_for(provider_id)
        item = QueuedItem(item_id=0, group_id=group_id, provider_id=provider_id, priority=priority)
        self.template = self.huey._registry.create_message(
            item_run_task(provider_id).s(item, priority=QUEUE_PRIORITY.get(priority, QUEUE_PRIORITY["normal"]))
        )
        self.splice = MessageSplice.of(self.huey.serializer, self.template)

    def message(self, message_id: str, item_id: int) -> bytes:
        if self.splice is not None:
            return self.splice.message(message_id, item_id)
        item = dataclasses.replace(self.template.args[0], item_id=item_id)
        return self.huey.serializer.serialize(self.template._replace(id=message_id, args=(item,)))

    def messages(self, prefix: str, item_ids: list[int], start: int = 0) -> list[bytes]:
        """The message of every item, its id `prefix` followed by its number (from `start`)."""
        if self.splice is not None:
            return self.splice.messages(prefix, item_ids, start)
        return [self.message(f"{prefix}{n}", item_id) for n, item_id in enumerate(item_ids, start)]


class MessageSplice:
    """Huey's pickled message of one item, cut around its id and item id so other items' messages
    are spliced together from bytes instead of pickled one by one.

    Only what the pickle format fixes is assumed (protocol 4+: one frame with its length, the
    message id a short string, the item id an int; memo references are positional, so they do
    not change); `of` checks the splice against Huey's own serializer and gives None otherwise.
    """

    ID_MARK = "m" * 32
    ITEM_MARK = 0x7FFF_FFF1  # a 4-byte BININT, unlikely elsewhere in a message
    FRAME_HEADER = struct.Struct("<BBBQ")  # PROTO n, FRAME, frame length
    PROOF_ITEM_IDS = (0, 255, 256, 65_535, 65_536, 2**31 - 1, 2**31, 2**63 - 1)

    def __init__(self, protocol: int, head: bytes, middle: bytes, tail: bytes) -> None:
        self.protocol, self.head, self.middle, self.tail = protocol, head, middle, tail

    @classmethod
    def of(cls, serializer: Serializer, message: Message) -> MessageSplice | None:
        item = message.args[0]
        data = serializer.serialize(message._replace(id=cls.ID_MARK, args=(dataclasses.replace(item, item_id=cls.ITEM_MARK),)))
        if len(data) < cls.FRAME_HEADER.size or data[0] != pickle.PROTO[0] or data[2] != pickle.FRAME[0]:
            return None
        _, protocol, _, length = cls.FRAME_HEADER.unpack_from(data)
        id_mark, item_mark = _pickled_str(cls.ID_MARK), _pickled_int(cls.ITEM_MARK)
        if length != len(data) - cls.FRAME_HEADER.size or data.count(id_mark) != 1 or data.count(item_mark) != 1:
            return None
        head, rest = data[cls.FRAME_HEADER.size:].split(id_mark)
        middle, tail = rest.split(item_mark)
        if not middle or not tail:
            return None  # the item id after the message id, as Message's field order has it
        splice = cls(protocol, head, middle, tail)
        # The proof: spliced messages are byte for byte Huey's, for item ids of every width pickle
        # writes differently and for an id of this message's shape.
        for item_id in cls.PROOF_ITEM_IDS:
            proof = message._replace(id=f"{message.id}-{item_id}", args=(dataclasses.replace(item, item_id=item_id),))
            if splice.message(proof.id, item_id) != serializer.serialize(proof):
                return None
        return splice

    def message(self, message_id: str, item_id: int) -> bytes:
        """The message of one item."""
        return self.messages(message_id, [item_id], numbered=False)[0]

    def messages(self, prefix: str, item_ids: list[int], start: int = 0, *, numbered: bool = True) -> list[bytes]:
        """The message of every item, its id `prefix` followed by its number from `start` (or `prefix` alone)."""
        head, middle, tail, header = self.head, self.middle, self.tail, self.FRAME_HEADER.pack
        proto, frame, protocol = pickle.PROTO[0], pickle.FRAME[0], self.protocol
        fixed = len(head) + len(middle) + len(tail)
        join, pickled_int = b"".join, _pickled_int
        messages = []
        for n, item_id in enumerate(item_ids, start):
            message_id = _pickled_str(f"{prefix}{n}" if numbered else prefix)
            item = pickled_int(item_id)
            messages.append(join((header(proto, protocol, frame, fixed + len(message_id) + len(item)),
                                  head, message_id, middle, item, tail)))
        return messages


def _pickled_str(value: str) -> bytes:
    """How pickle (protocol 4+) writes a str the first time it meets it."""
    data = value.encode("utf-8", "surrogatepass")
    if len(data) < 256:
        return pickle.SHORT_BINUNICODE + bytes((len(data),)) + data + pickle.MEMOIZE
    return pickle.BINUNICODE + struct.pack("<I", len(data)) + data + pickle.MEMOIZE


def _pickled_int(value: int) -> bytes:
    """How pickle (protocol 2+) writes an int."""
    if 0 <= value <= 0xFF:
        return pickle.BININT1 + bytes((value,))
    if 0 <= value <= 0xFFFF:
        return pickle.BININT2 + struct.pack("<H", value)
    if -0x8000_0000 <= value <= 0x7FFF_FFFF:
        return pickle.BININT + struct.pack("<i", value)
    data = value.to_bytes((value.bit_length() >> 3) + 1, "little", signed=True)
    return pickle.LONG1 + bytes((len(data),)) + data


def item_schedule(item: QueuedItem, *, delay: float) -> None:
    """Put one item's message on its queue to run in `delay` seconds (Huey's schedule), at its priority."""
    priority = QUEUE_PRIORITY.get(item.priority, QUEUE_PRIORITY["normal"])
    item_run_task(item.provider_id).schedule(args=(item,), delay=delay, priority=priority)


def _queued_item_from(provider_id: str, args: tuple, kwargs: dict) -> QueuedItem | None:
    """The message's item, or None for a payload of any other shape (logged and dropped once)."""
    if len(args) != 1 or kwargs:
        return None
    value = args[0]
    if isinstance(value, QueuedItem):
        valid = (
            isinstance(value.item_id, int) and not isinstance(value.item_id, bool)
            and isinstance(value.group_id, str) and value.provider_id == provider_id
        )
        return value if valid else None
    if isinstance(value, int) and not isinstance(value, bool):
        return QueuedItem(item_id=value, group_id="", provider_id=provider_id)  # an older release's message
    return None


def _item_run_task_register(huey: RedisHuey, provider_id: str) -> TaskWrapper:
    def item_run_task(*args, **kwargs) -> None:
        item = _queued_item_from(provider_id, args, kwargs)
        if item is None:
            logger.error("dropped a %s task with a malformed payload: args=%r kwargs=%r", provider_id, args, kwargs)
            return
        from agent.services.items import item_run

        # Worker threads live long; stale or broken DB connections must not fail an item.
        close_old_connections()
        try:
            item_run(item=item)
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            # Wait for the database in this thread rather than spinning every queued message through
            # Huey's retries: a consumer of W workers holds W messages and pops no more meanwhile.
            # Running the item again is safe: only a queued item starts, a result is recorded once.
            database_outage_wait_out(lambda: item_run(item=item), patience=settings.AGENT_DB_OUTAGE_SECONDS,
                                     what=f"item {item.item_id}", first_error=exc)
        finally:
            close_old_connections()

    # An exception escaping the service (Redis briefly unavailable, the database away for longer
    # than AGENT_DB_OUTAGE_SECONDS) retries the task; recording is idempotent, so a retry can
    # never produce a second answer, and the recovery sweep puts back what Huey gives up on.
    huey.item_run_task = huey.task(name=ITEM_RUN_TASK_NAME, retries=5, retry_delay=3)(item_run_task)
    return huey.item_run_task
