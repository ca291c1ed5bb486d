"""HTTP plumbing shared by the live adapters: one pooled session per process, one POST that
turns every failure into a Transient/Permanent provider error, and the adapters' base class."""
from __future__ import annotations

import os
import threading
import time
from email.utils import parsedate_to_datetime
from typing import Any, NamedTuple

import requests
from django.conf import settings
from requests.adapters import HTTPAdapter

from agent.providers.base import (
    MODEL_MAX_LENGTH,
    Answer,
    PermanentProviderError,
    ProviderError,
    TransientProviderError,
    bounded_text,
    sources_build,
)
from agent.providers.redact import credentials_redact

CONNECT_TIMEOUT_SECONDS = 5.0
DEFAULT_READ_TIMEOUT_SECONDS = 120.0
POOL_SIZE = 32  # one kept-alive connection per worker thread of a busy consumer
MESSAGE_LIMIT = 300
TRANSIENT_STATUSES = frozenset({408, 409, 429})  # plus every 5xx, which includes Anthropic's 529

_session: requests.Session | None = None
_session_lock = threading.Lock()


def _session_forget() -> None:
    # A forked worker must not share the parent's sockets (or inherit a held lock).
    global _session, _session_lock
    _session, _session_lock = None, threading.Lock()


os.register_at_fork(after_in_child=_session_forget)


def http_session() -> requests.Session:
    """The process's one session, created on first use; requests' Session is thread-safe for this use."""
    global _session
    if _session is None:
        with _session_lock:
            if _session is None:
                session = requests.Session()
                # max_retries=0: one call is one attempt; retrying is the task layer's job.
                adapter = HTTPAdapter(pool_connections=8, pool_maxsize=POOL_SIZE, max_retries=0)
                session.mount("https://", adapter)
                session.mount("http://", adapter)
                _session = session
    return _session


def read_timeout() -> float:
    """AGENT_PROVIDER_TIMEOUT (settings), read at every call so an overridden setting takes effect."""
    return float(getattr(settings, "AGENT_PROVIDER_TIMEOUT", DEFAULT_READ_TIMEOUT_SECONDS))


def provider_post_json(*, provider: str, url: str, headers: dict[str, str], body: dict, secret: str) -> dict:
    """POST `body` once and return the JSON object of a 2xx answer, or raise a ProviderError.

    `secret` and anything shaped like a credential are scrubbed from every message, in case an
    upstream echoes the key (or the request's headers) back; no header is ever put in a message."""
    timeout = read_timeout()
    try:
        # No redirects: requests would carry x-api-key / x-goog-api-key to whatever host they name.
        response = http_session().post(
            url, json=body, headers=headers, timeout=(CONNECT_TIMEOUT_SECONDS, timeout), allow_redirects=False
        )
    except requests.ConnectTimeout:
        raise TransientProviderError(provider, f"timed out connecting (after {CONNECT_TIMEOUT_SECONDS:g} s)") from None
    except requests.Timeout:
        message = f"timed out waiting for the answer (AGENT_PROVIDER_TIMEOUT={timeout:g} s)"
        raise TransientProviderError(provider, message) from None
    except requests.RequestException as exc:
        raise TransientProviderError(provider, _scrub(f"connection failed: {_truncate(str(exc))}", secret)) from None
    try:
        payload = response.json()
    except ValueError:
        payload = None
    if 200 <= response.status_code < 300:
        if not isinstance(payload, dict):
            raise PermanentProviderError(provider, f"HTTP {response.status_code} with a body that is not a JSON object")
        return payload
    raise _status_error(provider, response, payload, secret)


def _status_error(provider: str, response: requests.Response, payload: Any, secret: str) -> ProviderError:
    status = response.status_code
    payload = payload if isinstance(payload, dict) else {}
    error = payload.get("error")
    error = error if isinstance(error, dict) else {"message": error}
    labels = [error[k] for k in ("status", "type", "code") if isinstance(error.get(k), str)]
    detail = error.get("message") or payload.get("detail") or response.text
    cause = f"{' '.join(dict.fromkeys(labels))}: " if labels else ""
    message = _scrub(f"HTTP {status} {cause}{_truncate(str(detail)) or response.reason}", secret)

    if "insufficient_quota" in labels:  # OpenAI: the account is out of credit, not busy
        return PermanentProviderError(provider, message)
    per_day, retry_delay = _google_quota(error)
    if per_day:
        return PermanentProviderError(provider, f"daily quota exhausted; {message}")
    if status in TRANSIENT_STATUSES or status >= 500:
        retry_after = _retry_after_header(response.headers)
        return TransientProviderError(provider, message, retry_after if retry_after is not None else retry_delay)
    return PermanentProviderError(provider, message)


def _google_quota(error: dict) -> tuple[bool, float | None]:
    """(is a per-day quota, RetryInfo delay in seconds) from a google.rpc error's details."""
    per_day, delay = False, None
    for detail in error.get("details") or []:
        if not isinstance(detail, dict):
            continue
        kind = str(detail.get("@type", ""))
        if kind.endswith("google.rpc.QuotaFailure"):
            for violation in detail.get("violations") or []:
                names = f"{violation.get('quotaId', '')} {violation.get('quotaMetric', '')}"
                per_day = per_day or "PerDay" in names
        elif kind.endswith("google.rpc.RetryInfo"):
            delay = _seconds(str(detail.get("retryDelay", "")).removesuffix("s"))
    return per_day, delay


def _retry_after_header(headers: Any) -> float | None:
    milliseconds = _seconds(headers.get("retry-after-ms", ""))
    if milliseconds is not None:
        return milliseconds / 1000
    raw = headers.get("retry-after", "")
    seconds = _seconds(raw)
    if seconds is not None or not raw:
        return seconds
    try:
        return max(0.0, parsedate_to_datetime(raw).timestamp() - time.time())
    except (TypeError, ValueError):
        return None


def _seconds(raw: str) -> float | None:
    try:
        return max(0.0, float(raw))
    except ValueError:
        return None


def _truncate(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= MESSAGE_LIMIT else text[: MESSAGE_LIMIT - 1] + "…"


def _scrub(text: str, secret: str) -> str:
    return credentials_redact(text, secret)


class Reply(NamedTuple):
    """What an adapter read from a provider's 2xx body (or from a turn continued over several)."""

    text: str
    cited: list[tuple]  # (url, title[, domain]) the answer cites, in order of first citation
    found: list[tuple]  # what the provider retrieved, in its order; cited ones are dropped later
    usage: dict  # usage_build(...): prompt + completion == total


def passages_join(passages: list[str]) -> str:
    """Passages separated by a blank line; each passage's own pieces were joined as they came."""
    return "\n\n".join(passage.strip() for passage in passages if passage and passage.strip())


class LiveProvider:
    """One provider's HTTP API; subclasses name their settings and map their wire format."""

    provider_id: str
    backend = "live"
    key_variable: str  # each *_variable names a Django setting read from the env var of the same name
    base_url_variable: str
    base_url_default: str
    model_variable: str
    model_default: str
    response_model_field = "model"

    def __init__(self) -> None:
        # Read at construction so a changed setting takes effect for the next adapter built.
        self.api_key = str(getattr(settings, self.key_variable, "") or "").strip()
        self.base_url = str(getattr(settings, self.base_url_variable, "") or self.base_url_default).rstrip("/")
        self.model = str(getattr(settings, self.model_variable, "") or self.model_default)

    def endpoint(self) -> str:
        raise NotImplementedError

    def headers(self) -> dict[str, str]:
        raise NotImplementedError

    def body(self, prompt: str) -> dict:
        raise NotImplementedError

    def parse(self, data: dict) -> Reply:
        raise NotImplementedError

    def post(self, body: dict) -> dict:
        return provider_post_json(
            provider=self.provider_id, url=self.endpoint(), headers=self.headers(), body=body, secret=self.api_key
        )

    def converse(self, prompt: str) -> tuple[dict, Reply]:
        """One request and its reply; adapters whose turns can pause override this to continue them."""
        data = self.post(self.body(prompt))
        return data, self.parse(data)

    def ask(self, prompt: str) -> Answer:
        if not self.api_key:
            raise PermanentProviderError(self.provider_id, f"{self.key_variable} is not set")
        started = time.monotonic()
        try:
            data, reply = self.converse(prompt)
        except (KeyError, IndexError, TypeError, AttributeError, ValueError) as exc:
            raise PermanentProviderError(
                self.provider_id, f"unexpected response shape ({type(exc).__name__}: {_truncate(str(exc))})"
            ) from None
        latency_ms = int((time.monotonic() - started) * 1000)
        if not reply.text.strip():
            raise PermanentProviderError(self.provider_id, "the response has no answer text")
        return Answer(
            text=reply.text,
            sources=sources_build(cited=reply.cited, found=reply.found),
            usage=reply.usage,
            latency_ms=latency_ms,
            model=bounded_text(data.get(self.response_model_field) or self.model, MODEL_MAX_LENGTH),
        )
