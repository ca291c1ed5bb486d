"""The seed's progress updater, kept only to be measured: read the JSON, change it, write it back.

Two workers that read the same version both write back "their" +1, and one count is lost;
the group then never reaches expectedResponses and stays pending. Scenario 7 counts this.
"""
from __future__ import annotations

import json

import redis

SEED_TTL_SECONDS = 3600


def seed_progress_key(group_id) -> str:
    return f"bench:seed:job:{group_id}:result"


def seed_progress_create(client: redis.Redis, *, group_id, expected_by_provider: dict[str, int], total_prompts: int) -> None:
    providers = list(expected_by_provider)
    progress = {
        "status": "pending",
        "updateId": 0,
        "providers": dict.fromkeys(providers, "pending"),
        "results": dict.fromkeys(providers, 0),
        "failed": dict.fromkeys(providers, 0),
        "expectedByProvider": expected_by_provider,
        "stats": {"totalPrompts": total_prompts, "expectedResponses": sum(expected_by_provider.values()),
                  "actualResponses": 0, "failedResponses": 0, "cancelledResponses": 0},
    }
    client.set(seed_progress_key(group_id), json.dumps(progress), ex=SEED_TTL_SECONDS)


def seed_progress_item_finished(client: redis.Redis, *, group_id, provider: str, ok: bool = True) -> None:
    key = seed_progress_key(group_id)
    progress = json.loads(client.get(key))
    stats = progress["stats"]
    if ok:
        progress["results"][provider] += 1
        stats["actualResponses"] += 1
    else:
        progress["failed"][provider] += 1
        stats["failedResponses"] += 1
    done = progress["results"][provider] + progress["failed"][provider]
    progress["providers"][provider] = "completed" if done >= progress["expectedByProvider"][provider] else "processing"
    if stats["actualResponses"] + stats["failedResponses"] >= stats["expectedResponses"]:
        progress["status"] = "completed"
    progress["updateId"] += 1
    client.set(key, json.dumps(progress), ex=SEED_TTL_SECONDS)


def seed_progress_read(client: redis.Redis, *, group_id) -> dict:
    return json.loads(client.get(seed_progress_key(group_id)))
