"""`manage.py run_group`: submit from the shell, and follow the group with --wait to a meaningful exit code."""
from __future__ import annotations

import io
import os
import re
import signal
import subprocess
import sys
import time

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
    assert f"Submitted run {group.id}" in out and "3 prompts x 2 providers = 6 provider calls" in out
    assert f"http://127.0.0.1:8000/runs/{group.id}/" in out  # the run's page
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


def test_no_active_prompts_exits_3_because_nothing_was_submitted(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=0, providers=["chatgpt"])
    with pytest.raises(CommandError, match="Nothing to run") as error:
        run_group(str(workspace.id), "--wait")
    assert error.value.returncode == 3  # a cron job must not read "nothing ran" as success
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
    # Not a terminal: plain lines, no progress-bar escape codes.
    assert "ChatGPT: 0 answered, 0 failed, 0 cancelled of 2 (queued)" in out
    assert "\x1b[" not in out + err and "\r" not in out + err


@pytest.mark.consumers
def test_wait_prints_a_line_per_provider_and_exits_0_when_all_answered(user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=4, providers=["chatgpt", "gemini"])
    consumers.start("chatgpt", workers=2, DJANGO_LOG_LEVEL="INFO")
    consumers.start("gemini", workers=2, DJANGO_LOG_LEVEL="INFO")
    code, out, err = run_group(str(workspace.id), "--wait", "--timeout", "60")
    group = JobGroup.objects.get(workspace=workspace)
    assert code == 0, out + err + consumers.logs()
    assert f"Run {group.id} completed in" in out and "8 answered, 0 failed, 0 cancelled of 8" in out
    assert "ChatGPT: 4 answered, 0 failed, 0 cancelled of 4 (completed)" in out
    assert "Gemini: 4 answered, 0 failed, 0 cancelled of 4 (completed)" in out
    logs = consumers.logs()  # the consumers say what happened to each item, not Huey's "5 retries executed"
    assert re.search(r"item \d+ chatgpt run \w{8}: answered in \d+\.\d\d s \(1 attempt\)", logs), logs
    assert "retries executed" not in logs and "Executing" not in logs


@pytest.mark.consumers
def test_wait_exits_1_and_names_the_failing_provider(user, consumers) -> None:
    workspace = workspace_with_prompts(user=user, prompts=3, providers=["chatgpt", "gemini"])
    consumers.start("chatgpt", workers=2, AGENT_SIMULATED_FAILURE_RATE="gemini=1.0")
    consumers.start("gemini", workers=2, AGENT_SIMULATED_FAILURE_RATE="gemini=1.0")
    code, out, err = run_group(str(workspace.id), "--wait", "--timeout", "60")
    assert code == 1, out + err + consumers.logs()
    assert "3 answered, 3 failed, 0 cancelled of 6" in out
    assert "gemini: " in out and "simulated failure" in out
    assert "completed with failures in" in out
    assert "Gemini: 0 answered, 3 failed, 0 cancelled of 3 (failed)" in out


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


def test_run_group_takes_a_priority_and_a_start_time(user) -> None:
    from datetime import UTC, datetime, timedelta

    from agent.queues import queue_length

    workspace = workspace_with_prompts(user=user, prompts=2, providers=["chatgpt"], name="Later Inc")
    at = (datetime.now(UTC) + timedelta(hours=2)).replace(microsecond=0)
    call_command("run_group", "Later Inc", "--priority", "high", "--at", at.strftime("%Y-%m-%dT%H:%M:%S"))
    group = JobGroup.objects.get(workspace=workspace)
    assert (group.priority, group.status, group.run_at) == ("high", "scheduled", at)
    assert queue_length("chatgpt") == 0


def test_ctrl_c_while_following_says_the_run_continues_without_a_traceback(user) -> None:
    workspace = workspace_with_prompts(user=user, prompts=1, providers=["claude"])
    env = {**os.environ, "DJANGO_SETTINGS_MODULE": "tests.settings", "DATABASE_URL": database_url(),
           "REDIS_URL": os.environ["REDIS_URL"], "PYTHONUNBUFFERED": "1"}
    follower = subprocess.Popen(
        [sys.executable, "manage.py", "run_group", str(workspace.id), "--wait", "--timeout", "60"],
        cwd=PROJECT_DIR, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    first = follower.stdout.readline()  # "Submitted run ...": it is following now
    assert first.startswith("Submitted run"), first + follower.stderr.read()
    time.sleep(1.5)
    follower.send_signal(signal.SIGINT)
    out, err = follower.communicate(timeout=30)
    group = JobGroup.objects.get(workspace=workspace)
    assert follower.returncode == 130, out + err
    assert "Stopped following; the run continues" in out and f"/runs/{group.id}/" in out
    assert "Traceback" not in err
    assert group.status == "queued"  # the run itself was not touched
