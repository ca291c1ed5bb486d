"""`manage.py run_group`: submit from the shell, and follow the group with --wait to a meaningful exit code."""
from __future__ import annotations

import io
import os
import re
import subprocess
import sys

import pytest
from django.core.management import CommandError, call_command

from agent.models import JobGroup
from tests.conftest import PROJECT_DIR, database_url
from tests.factories import WorkspaceFactory, workspace_with_prompts

pytestmark = pytest.mark.django_db(transaction=True)


def run_group(*args: str) -> tuple[int, str, str]:
    """Call the command in-process; returns (exit code, stdout, stderr) as a shell would see them."""
    out, err = io.StringIO(), io.StringIO()
    try:
        call_command("run_group", *args, stdout=out, stderr=err)
        code = 0
    except SystemExit as exc:
        code = exc.code
    return code, out.getvalue(), err.getvalue()


def test_submits_by_id_without_waiting(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "claude"])
    code, out, _ = run_group(str(workspace.id))
    group = JobGroup.objects.get(workspace=workspace)
    assert code == 0
    assert f"Submitted run {group.id}" in out and "3 prompts x 2 providers = 6 items" in out
    assert group.status == "queued" and group.triggered_by is None


def test_submits_by_name_and_records_the_user(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["gemini"], name="Acme Corp")
    code, out, _ = run_group("Acme Corp", "--user", "alice")
    assert code == 0
    assert JobGroup.objects.get(workspace=workspace).triggered_by == user


def test_unknown_or_ambiguous_workspace_is_a_clear_error(user) -> None:
    with pytest.raises(CommandError, match="No workspace has the id or name 'Nope'") as unknown:
        run_group("Nope")
    assert unknown.value.returncode == 3
    first, second = WorkspaceFactory(name="Twin"), WorkspaceFactory(name="Twin")
    with pytest.raises(CommandError, match="2 workspaces are named 'Twin'") as ambiguous:
        run_group("Twin")
    assert str(first.id) in str(ambiguous.value) and str(second.id) in str(ambiguous.value)
    assert not JobGroup.objects.exists()


def test_no_active_prompts_submits_nothing(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"])
    code, out, _ = run_group(str(workspace.id), "--wait")
    assert code == 0 and "Nothing to run" in out
    assert not JobGroup.objects.exists()


def test_no_enabled_providers_exits_3_with_the_reason(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["chatgpt"])
    workspace.enabled_providers = []
    workspace.save()
    with pytest.raises(CommandError, match="has no enabled providers") as error:
        run_group(str(workspace.id))
    assert error.value.returncode == 3


def test_wait_times_out_with_exit_2_when_no_consumer_runs(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"])
    code, out, err = run_group(str(workspace.id), "--wait", "--timeout", "1.5")
    group = JobGroup.objects.get(workspace=workspace)
    assert code == 2
    assert re.search(rf"Run {group.id} timed out after [12] s with 0/2 finished .*; it keeps running\.", out)
    assert "ChatGPT" in err and "0/2" in err  # the provider's bar


@pytest.mark.consumers
def test_wait_shows_a_bar_per_provider_and_exits_0_when_all_answered(user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=4, providers=["chatgpt", "gemini"])
    consumers.start("chatgpt", workers=2)
    consumers.start("gemini", workers=2)
    code, out, err = run_group(str(workspace.id), "--wait", "--timeout", "60")
    group = JobGroup.objects.get(workspace=workspace)
    assert code == 0, out + err + consumers.logs()
    assert f"Run {group.id} completed in" in out and "8 answered, 0 failed, 0 cancelled of 8" in out
    assert "ChatGPT" in err and "Gemini" in err and "4/4" in err and "completed, 4 ok, 0 failed" in err


@pytest.mark.consumers
def test_wait_exits_1_and_names_the_failing_provider(user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "gemini"])
    consumers.start("chatgpt", workers=2, AGENT_SIMULATED_FAILURE_RATE="gemini=1.0")
    consumers.start("gemini", workers=2, AGENT_SIMULATED_FAILURE_RATE="gemini=1.0")
    code, out, err = run_group(str(workspace.id), "--wait", "--timeout", "60")
    assert code == 1, out + err + consumers.logs()
    assert "3 answered, 3 failed, 0 cancelled of 6" in out
    assert "gemini: " in out and "simulated failure" in out
    assert len(out.strip().splitlines()) == 2  # the "Submitted" line and a one-line summary


@pytest.mark.consumers
def test_exit_codes_reach_the_shell(user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["claude"])
    consumers.start("claude", workers=1)
    env = consumers.env()
    done = subprocess.run(
        [sys.executable, "manage.py", "run_group", workspace.name, "--wait", "--timeout", "60"],
        cwd=PROJECT_DIR, env=env, capture_output=True, text=True, timeout=120,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    assert "1 answered, 0 failed, 0 cancelled of 1" in done.stdout
    missing = subprocess.run(
        [sys.executable, "manage.py", "run_group", "No such brand"],
        cwd=PROJECT_DIR, env={**os.environ, **env, "DATABASE_URL": database_url()}, capture_output=True, text=True, timeout=60,
    )
    assert missing.returncode == 3 and "No workspace has the id or name 'No such brand'" in missing.stderr
