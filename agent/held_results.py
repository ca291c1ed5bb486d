"""Results received while the database could not take them, held in Redis until it can.

A provider answer costs money and a second ask gives a different answer, so a received result
is never thrown away. The worker that got it keeps retrying to record it; it also holds it here
(one key per item) so that the recovery sweep, or the next worker that picks the item up,
records it instead of asking again, even if this worker dies before the database is back.
Only the outage path touches these keys: recording with the database up costs nothing extra.
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass

import redis

from agent.connections import redis_client
from agent.providers.base import Answer
from agent.tasks import QueuedItem

logger = logging.getLogger(__name__)

HELD_KEY_PREFIX = "oneglanse:held-result:"
# Long enough to outlive any outage an operator would sit out; an unrecorded result past it was
# also past the group's deadline (AGENT_GROUP_DEADLINE_SECONDS, 6 h by default).
HELD_TTL_SECONDS = 7 * 24 * 3600


@dataclass(frozen=True)
class ItemResult:
    """What a provider call produced for one item: an answer, or the error that ends the item."""

    item: QueuedItem
    backend: str
    answer: Answer | None = None
    error: str = ""

    def to_json(self) -> str:
        return json.dumps({
            "item": asdict(self.item), "backend": self.backend,
            "answer": asdict(self.answer) if self.answer is not None else None, "error": self.error,
        })

    @classmethod
    def from_json(cls, raw: bytes | str) -> ItemResult:
        data = json.loads(raw)
        answer = Answer(**data["answer"]) if data["answer"] is not None else None
        return cls(item=QueuedItem(**data["item"]), backend=data["backend"], answer=answer, error=data["error"])


def held_key(item_id: int) -> str:
    return f"{HELD_KEY_PREFIX}{item_id}"


def held_result_put(result: ItemResult) -> bool:
    """Hold a result until it is recorded; False when Redis is away too (the worker keeps it in memory)."""
    try:
        redis_client().set(held_key(result.item.item_id), result.to_json(), ex=HELD_TTL_SECONDS)
    except redis.RedisError as exc:
        logger.warning("item %s: could not hold its result in Redis either (%s); kept in memory",
                       result.item.item_id, exc)
        return False
    return True


def held_results_get(item_ids: list[int]) -> dict[int, ItemResult]:
    """The held results of these items (one round trip); items with none are left out."""
    if not item_ids:
        return {}
    raw = redis_client().mget([held_key(item_id) for item_id in item_ids])
    held = {}
    for item_id, value in zip(item_ids, raw, strict=True):
        if value is None:
            continue
        try:
            held[item_id] = ItemResult.from_json(value)
        except (ValueError, KeyError, TypeError):
            logger.error("item %s: the held result is unreadable; dropped", item_id)
    return held


def held_results_drop(item_ids: list[int]) -> None:
    """Forget held results once their items are recorded (best effort: the keys expire anyway)."""
    if not item_ids:
        return
    try:
        redis_client().delete(*[held_key(item_id) for item_id in item_ids])
    except redis.RedisError as exc:
        logger.warning("could not drop %d held results (%s); they expire by themselves", len(item_ids), exc)
