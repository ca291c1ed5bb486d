"""PostgreSQL stops for 20 s in the middle of a live-mode run: no answer is lost, none is asked twice.

Everything runs as it would in production: a PostgreSQL server of the test's own (initdb +
pg_ctl in a temporary folder, on a free port), gunicorn, one consumer per provider queue in
live mode against the local fake provider APIs, which count the requests for every prompt.
The test process reaches the service only over HTTP.
"""
from __future__ import annotations

import subprocess
import sys
import time
from collections import Counter
from collections.abc import Iterator

import pytest
import requests

from oneglanse.processes import processes_stop
from tests.agent.providers.fake_servers import FakeProviderServer, answer_text
from tests.agent.test_live_group import KEYS, live_env
from tests.conftest import PROJECT_DIR
from tests.factories import ALL_PROVIDERS
from tests.faults.support import record_recovery, wait_until
from tests.postgres_server import PostgresServer, postgres_unavailable_reason
from tests.redis_server import free_port

UNAVAILABLE = postgres_unavailable_reason()
pytestmark = [
    pytest.mark.consumers,
    pytest.mark.skipif(UNAVAILABLE is not None, reason=f"needs a throwaway PostgreSQL server: {UNAVAILABLE}"),
]

PROMPTS = 40
ITEMS = PROMPTS * len(ALL_PROVIDERS)
OUTAGE_SECONDS = 20.0
PROVIDER_SECONDS = 0.4  # every fake answer takes this long, so calls are in flight when the database stops
PASSWORD = "correct horse battery staple"

SETUP = f"""
from django.contrib.auth import get_user_model
from rest_framework.authtoken.models import Token
from tests.factories import workspace_with_prompts
user = get_user_model().objects.create_user("operator", password={PASSWORD!r})
workspace = workspace_with_prompts(user=user, prompts={PROMPTS})
print(Token.objects.create(user=user).key, workspace.id)
"""


@pytest.fixture
def postgres() -> Iterator[PostgresServer]:
    server = PostgresServer().start()
    yield server
    server.destroy()


@pytest.fixture
def fakes() -> Iterator[dict[str, FakeProviderServer]]:
    started = {p: FakeProviderServer(p, api_key=KEYS[p]).start() for p in ALL_PROVIDERS}
    for fake in started.values():
        fake.script([], then={"kind": "stall", "seconds": PROVIDER_SECONDS})
    yield started
    for fake in started.values():
        fake.stop()


class Web:
    """gunicorn serving the project against the test's PostgreSQL."""

    def __init__(self, env: dict[str, str], log_path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = open(log_path, "wb")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "gunicorn", "oneglanse.wsgi", "--bind", f"127.0.0.1:{self.port}", "--workers", "1",
             "--threads", "4", "--worker-class", "gthread"],
            cwd=PROJECT_DIR, env=env, stdout=self.log, stderr=subprocess.STDOUT,
        )
        wait_until(self._up, what="gunicorn to answer", timeout=60)

    def _up(self) -> bool:
        try:
            return requests.get(f"{self.url}/login/", timeout=5).status_code == 200
        except requests.RequestException:  # not listening yet, or still loading the project
            return False

    def stop(self) -> None:
        processes_stop([self.process], timeout=15)
        self.log.close()


def _manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([sys.executable, "manage.py", *args], cwd=PROJECT_DIR, env=env,
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr
    return result.stdout


def _finished(api: requests.Session, web: Web, group_id: str) -> int | None:
    """Items finished so far per the status API; None while it answers 503."""
    response = api.get(f"{web.url}/api/runs/{group_id}/status/", timeout=10)
    if response.status_code == 503:
        return None
    stats = response.json()["response"]["stats"]
    return stats["actualResponses"] + stats["failedResponses"] + stats["cancelledResponses"]


def test_a_20_s_database_outage_mid_run_loses_no_answer_and_asks_no_provider_twice(
    consumers, fault_redis, postgres, fakes, tmp_path
) -> None:
    database_url = postgres.create_database("outage")
    env = consumers.env(**live_env(fakes), DATABASE_URL=database_url, REDIS_URL=fault_redis.url,
                        AGENT_RECOVERY_SECONDS="2", AGENT_RECOVERY_INTERVAL="1")
    _manage(env, "migrate", "--noinput")
    token, workspace_id = _manage(env, "shell", "-c", SETUP).strip().splitlines()[-1].split()
    web = Web(env, tmp_path / "web.log")
    try:
        api = requests.Session()
        api.headers["Authorization"] = f"Token {token}"
        browser = requests.Session()
        browser.get(f"{web.url}/login/")
        browser.post(f"{web.url}/login/", data={"username": "operator", "password": PASSWORD,
                                                "csrfmiddlewaretoken": browser.cookies["csrftoken"]},
                     headers={"Referer": f"{web.url}/login/"})
        assert browser.get(f"{web.url}/").status_code == 200, "signed in"
        for provider in ALL_PROVIDERS:
            consumers.start(provider, workers=4, **env)

        submitted = api.post(f"{web.url}/api/workspaces/{workspace_id}/runs/", timeout=30)
        assert submitted.status_code == 202, submitted.text
        group_id = submitted.json()["jobGroupId"]
        wait_until(lambda: (_finished(api, web, group_id) or 0) >= ITEMS // 4, what="a quarter of the run",
                   logs=consumers.logs)

        down_wall, down_at = time.time(), time.monotonic()
        postgres.stop()

        # The API says so in JSON, with a time to come back; a page says so too. Never an HTML 500.
        for path in (f"/api/runs/{group_id}/status/", "/api/workspaces/", f"/api/runs/{group_id}/answers/"):
            refused = api.get(f"{web.url}{path}", timeout=30)
            assert refused.status_code == 503, (path, refused.status_code, refused.text[:300])
            assert refused.headers["Content-Type"] == "application/json", path
            assert "database" in refused.json()["detail"] and int(refused.headers["Retry-After"]) > 0
        page = browser.get(f"{web.url}/", timeout=30)
        assert page.status_code == 503 and page.headers["Retry-After"], page.text[:300]

        time.sleep(max(0.0, OUTAGE_SECONDS - (time.monotonic() - down_at)))
        alive = {p.args[4]: p.poll() for ps in consumers.processes.values() for p in ps}
        assert set(alive.values()) == {None}, f"a consumer died during the outage: {alive}\n{consumers.logs()}"
        up_at = time.monotonic()
        postgres.start()

        done_at = wait_until(lambda: _finished(api, web, group_id) == ITEMS, what="every item to be answered",
                             timeout=180, logs=consumers.logs)
        wait_until(lambda: api.get(f"{web.url}/api/runs/{group_id}/", timeout=30).json()["status"] == "completed",
                   what="the run to be closed", timeout=60, logs=consumers.logs)
        answers = api.get(f"{web.url}/api/runs/{group_id}/answers/?page_size=1000", timeout=30).json()
    finally:
        web.stop()

    assert answers["count"] == ITEMS
    assert Counter((a["provider"], a["prompt"]) for a in answers["results"]).most_common(1)[0][1] == 1
    assert {a["status"] for a in answers["results"]} == {"ok"}
    for answer in answers["results"]:
        assert answer["text"] == answer_text(answer["provider"], answer["prompt_text"]), answer

    calls = Counter()
    in_flight = 0
    for provider, fake in fakes.items():
        for request in fake.requests:
            calls[(provider, request["prompt"])] += 1
            in_flight += down_wall - PROVIDER_SECONDS < request["at"] < down_wall  # answered after the stop
    per_item = sum(calls.values()) / ITEMS
    assert len(calls) == ITEMS and max(calls.values()) == 1, f"asked twice: {[k for k, n in calls.items() if n > 1]}"
    assert in_flight > 0, "no provider call was in flight when the database stopped: the test proved nothing"
    logs = "".join(path.read_text(errors="replace") for path in tmp_path.glob("consumer-*.log"))
    assert "recorded once the database was back" in logs, "the answers in flight were kept and recorded late"
    record_recovery(
        f"11.4 PostgreSQL down {up_at - down_at:.0f} s mid-run, live mode ({len(ALL_PROVIDERS)} x {PROMPTS})",
        done_at - up_at,
        f"provider calls per item {per_item:.2f} (max {max(calls.values())}); {in_flight} calls in flight at the stop",
        since="the database's restart",
    )
