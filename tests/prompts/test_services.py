"""The active-prompt cap holds under parallel adds and activations (SQLite and PostgreSQL)."""
from __future__ import annotations

import multiprocessing

import pytest
from django.db import connections

from oneglanse.exceptions import InvalidInput
from prompts.models import Prompt
from prompts.services import MAX_ACTIVE_PROMPTS_PER_WORKSPACE, prompt_create, prompt_update
from tests.factories import UserFactory, workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)

PARALLEL = 40
ROOM = 10  # free places under the cap when the parallel writers start


def _in_parallel(calls: list) -> list[bool]:
    """Run every call at once, each in its own process (and database connection); True where it succeeded.

    Processes, not threads: the race is between database clients, and threads of one process
    interleave too politely (the GIL) to show it on SQLite.
    """
    connections.close_all()  # each child opens its own connection
    context = multiprocessing.get_context("fork")
    barrier, results = context.Barrier(len(calls)), context.Queue()

    def run(index: int, call) -> None:
        try:
            barrier.wait()
            call()
            results.put((index, True))
        except InvalidInput:
            results.put((index, False))
        except Exception as exc:  # reported to the test, which fails on it
            results.put((index, repr(exc)))
        finally:
            connections.close_all()

    processes = [context.Process(target=run, args=(index, call)) for index, call in enumerate(calls)]
    for process in processes:
        process.start()
    outcome = dict(results.get(timeout=120) for _ in processes)
    for process in processes:
        process.join(timeout=30)
    assert all(value in (True, False) for value in outcome.values()), outcome
    return [outcome[index] for index in range(len(calls))]


def _nearly_full_workspace():
    workspace = workspace_with_prompts(user=UserFactory(), prompts=0)
    Prompt.objects.bulk_create(
        [Prompt(workspace=workspace, text=f"q{i}") for i in range(MAX_ACTIVE_PROMPTS_PER_WORKSPACE - ROOM)]
    )
    return workspace


def test_parallel_adds_never_pass_the_active_prompt_cap() -> None:
    workspace = _nearly_full_workspace()

    added = _in_parallel([lambda n=n: prompt_create(workspace=workspace, text=f"new {n}") for n in range(PARALLEL)])

    assert Prompt.objects.filter(workspace=workspace, is_active=True).count() == MAX_ACTIVE_PROMPTS_PER_WORKSPACE
    assert added.count(True) == ROOM


def test_parallel_adds_and_activations_never_pass_the_active_prompt_cap() -> None:
    workspace = _nearly_full_workspace()
    parked = Prompt.objects.bulk_create(
        [Prompt(workspace=workspace, text=f"parked {i}", is_active=False) for i in range(PARALLEL // 2)]
    )

    calls = [lambda p=p: prompt_update(prompt=p, is_active=True) for p in parked]
    calls += [lambda n=n: prompt_create(workspace=workspace, text=f"new {n}") for n in range(PARALLEL // 2)]
    succeeded = _in_parallel(calls)

    assert Prompt.objects.filter(workspace=workspace, is_active=True).count() == MAX_ACTIVE_PROMPTS_PER_WORKSPACE
    assert succeeded.count(True) == ROOM


def test_a_prompt_in_another_workspace_does_not_count_against_the_cap() -> None:
    workspace = _nearly_full_workspace()
    other = workspace_with_prompts(user=UserFactory(), prompts=0)

    added = _in_parallel([lambda n=n: prompt_create(workspace=other, text=f"elsewhere {n}") for n in range(PARALLEL)])

    assert added == [True] * PARALLEL
    assert Prompt.objects.filter(workspace=workspace, is_active=True).count() == MAX_ACTIVE_PROMPTS_PER_WORKSPACE - ROOM
