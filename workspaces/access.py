"""Which workspaces a user belongs to, cached in Django's cache and dropped on every membership change.

Hot read paths (the status endpoint, polled every 2 s by every open run page) ask this instead of
joining through memberships on every request. The cache is Django's, which is Redis in every
deployment (shared by every process on every host), so a membership change reaches all of them
at once: a removed member loses access on the next request, never after a timeout.

A change marks the user's entry "changed" for a few seconds (at the change and again when its
transaction commits) instead of deleting it, and readers fill the entry only with `cache.add`,
which never overwrites. A reader that loaded the old memberships just before the change
committed therefore cannot put them back: while the mark stands, readers go to the database.
"""
from __future__ import annotations

import logging
import uuid

import redis
from django.core.cache import cache
from django.db import transaction
from django.db.models.signals import post_delete, post_save

from workspaces.models import Membership

logger = logging.getLogger(__name__)

MEMBER_OF_TTL_SECONDS = 600  # only bounds memory; correctness comes from the invalidation
CHANGED_MARK_SECONDS = 5
_CHANGED = "changed"


def member_of_cache_key(user_id: int) -> str:
    return f"workspaces:member-of:{user_id}"


def workspace_ids_of_user(*, user_id: int, cached: object = None) -> frozenset[uuid.UUID]:
    """The ids of the user's workspaces; `cached` is the cache entry when the caller fetched it already
    (in one round trip with its own keys)."""
    if isinstance(cached, frozenset):
        return cached
    ids = frozenset(Membership.objects.filter(user_id=user_id).values_list("workspace_id", flat=True))
    if cached is None:  # absent (not "changed"): fill it, unless someone filled or marked it meanwhile
        try:
            cache.add(member_of_cache_key(user_id), ids, MEMBER_OF_TTL_SECONDS)
        except redis.RedisError as exc:
            logger.warning("memberships of user %s not cached (%s)", user_id, exc)
    return ids


def workspace_ids_of_user_cached(*, user_id: int) -> frozenset[uuid.UUID]:
    try:
        cached = cache.get(member_of_cache_key(user_id))
    except redis.RedisError:
        cached = _CHANGED  # without the cache, ask the database and do not try to fill it
    return workspace_ids_of_user(user_id=user_id, cached=cached)


def _mark_changed(user_id: int) -> None:
    # If the cache is unreachable the change is not lost: entries expire, and this is retried at commit.
    try:
        cache.set(member_of_cache_key(user_id), _CHANGED, CHANGED_MARK_SECONDS)
    except redis.RedisError as exc:
        logger.error("membership change of user %s not marked in the cache (%s)", user_id, exc)


def _membership_changed(sender, instance: Membership, **kwargs) -> None:
    user_id = instance.user_id
    _mark_changed(user_id)
    # Again once the change is visible to other connections: a reader between the two marks
    # saw the old rows, and its `add` fails against the second mark.
    transaction.on_commit(lambda: _mark_changed(user_id), using=kwargs.get("using"))


def membership_signals_connect() -> None:
    post_save.connect(_membership_changed, sender=Membership, dispatch_uid="workspaces.access.saved")
    post_delete.connect(_membership_changed, sender=Membership, dispatch_uid="workspaces.access.deleted")
