"""Local stand-ins for the providers' HTTP APIs, speaking their documented wire formats.

A server answers each request with the next scripted behaviour, then with a default
("ok" unless scripted otherwise), and records every request it got:

    server = FakeProviderServer("claude").start()
    server.script(["rate_limited", {"kind": "stall", "seconds": 3}], then="ok")
    server.script_prompt("Which CRM?", ["quota_exhausted"])  # only requests asking this prompt
    os.environ["ANTHROPIC_BASE_URL"] = server.url
    ...
    server.requests[0]["headers"]["x-api-key"]; server.stop()

Behaviours are JSON-friendly (a kind, or a dict with "kind" and options), so another process
can script a running server too: POST {"behaviours": [...], "then": "ok"} (or
{"prompt": "...", "behaviours": [...]}) to `{url}/_fake/script`, GET `{url}/_fake/requests`,
POST `{url}/_fake/reset`. A prompt's own script is used before the shared one, so tests
with several concurrent workers can say which item meets which behaviour. Run one
standalone with `python -m tests.agent.providers.fake_servers claude --port 8101`.

Kinds: ok (options: text; perplexity: without_search_results), recorded (file: a body in
recorded/, as a provider really sent it; see recorded/README.md), odd (an answer whose
`model` is 5,000 characters and whose source titles are an object and a number), rate_limited (retry_after
seconds, default 7; retry_after_http_date: true), quota_exhausted, server_error, overloaded,
unauthorized (echoes the key it was sent, as a careless upstream might), malformed, empty,
stall (seconds, default 5; then answers ok), error (status, message).
"""
from __future__ import annotations

import argparse
import json
import threading
import time
from collections import deque
from email.utils import formatdate
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

RECORDED_DIR = Path(__file__).resolve().parent / "recorded"
ODD_MODEL = "m" * 5000
ODD_TITLES = ({"text": "Best CRM tools", "lang": "en"}, 2025)  # what the odd behaviour sends as titles

Behaviour = str | dict[str, Any]

BASE_PATHS = {"chatgpt": "/v1", "perplexity": "", "gemini": "/v1beta", "claude": "/v1"}
SOURCES = [  # the third repeats the first, so adapters' de-duplication shows
    ("https://www.example.com/best-crm", "Best CRM tools in 2025"),
    ("https://reviews.example.org/crm", "CRM reviews"),
    ("https://www.example.com/best-crm", "Best CRM tools in 2025 (again)"),
]


def expected_sources(provider: str) -> list[dict]:
    """SOURCES as each adapter should return them: normalised, de-duplicated, cited first.

    The Claude fake cites only the first source and merely retrieves the second; the other
    fakes cite both."""
    return [
        {"url": "https://www.example.com/best-crm", "title": "Best CRM tools in 2025", "domain": "example.com",
         "cited": True},
        {"url": "https://reviews.example.org/crm", "title": "CRM reviews", "domain": "reviews.example.org",
         "cited": provider != "claude"},
    ]


def recorded_body(name: str) -> dict:
    """The provider's body kept in recorded/`name` (without the note saying where it came from)."""
    return json.loads((RECORDED_DIR / name).read_text())["body"]


def answer_text(provider: str, prompt: str) -> str:
    return f"{provider} answers: {prompt}"


class FakeProviderServer:
    """One provider's fake API on 127.0.0.1, in a background thread of this process."""

    def __init__(self, provider: str, *, port: int = 0, api_key: str | None = None) -> None:
        if provider not in BASE_PATHS:
            raise ValueError(f"unknown provider {provider!r}")
        self.provider = provider
        self.api_key = api_key  # when set, any other key gets the provider's 401
        self._port = port
        self._lock = threading.Lock()
        self._queue: deque[Behaviour] = deque()
        self._then: Behaviour = "ok"
        self._by_prompt: dict[str, deque[Behaviour]] = {}
        self._requests: list[dict] = []
        self._stopping = threading.Event()
        self._server: ThreadingHTTPServer | None = None

    @property
    def url(self) -> str:
        """The base URL to put in the provider's *_BASE_URL variable."""
        assert self._server is not None, "start() the server first"
        return f"http://127.0.0.1:{self._server.server_address[1]}{BASE_PATHS[self.provider]}"

    @property
    def requests(self) -> list[dict]:
        """Every provider request so far, in arrival order: {"method", "path", "headers" (lower-case
        names), "json", "prompt", "at" (time.time() when it arrived, comparable across processes),
        "behaviour" (the kind it was answered with)}."""
        with self._lock:
            return list(self._requests)

    def start(self) -> FakeProviderServer:
        fake = self

        class Handler(_Handler):
            server_fake = fake

        self._stopping.clear()
        self._server = ThreadingHTTPServer(("127.0.0.1", self._port), Handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, name=f"fake-{self.provider}", daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server is not None:
            self._stopping.set()  # wakes stalled handlers
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def script(self, behaviours: list[Behaviour], *, then: Behaviour = "ok") -> None:
        """Answer the next requests with `behaviours`, in order, and every later one with `then`."""
        with self._lock:
            self._queue = deque(behaviours)
            self._then = then

    def script_prompt(self, prompt: str, behaviours: list[Behaviour]) -> None:
        """Answer the next requests asking exactly `prompt` with `behaviours`, before any shared script."""
        with self._lock:
            self._by_prompt[prompt] = deque(behaviours)

    def reset(self) -> None:
        with self._lock:
            self._queue.clear()
            self._then = "ok"
            self._by_prompt.clear()
            self._requests.clear()

    def _next(self, record: dict, *, rejected: bool = False) -> dict[str, Any]:
        with self._lock:
            own = self._by_prompt.get(record["prompt"])
            if rejected:  # a wrong key consumes no scripted behaviour
                behaviour: Behaviour = "unauthorized"
            elif own:
                behaviour = own.popleft()
            else:
                behaviour = self._queue.popleft() if self._queue else self._then
            behaviour = {"kind": behaviour} if isinstance(behaviour, str) else dict(behaviour)
            record["behaviour"] = behaviour["kind"]
            self._requests.append(record)
        return behaviour

    def __enter__(self) -> FakeProviderServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the adapters' pooled session expects
    server_fake: FakeProviderServer

    def log_message(self, format: str, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        if self.path.endswith("/_fake/requests"):
            return self._send(200, self.server_fake.requests)
        self._send(404, {"error": {"message": f"no route {self.path}"}})

    def do_POST(self) -> None:
        arrived = time.time()
        fake = self.server_fake
        raw = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        try:
            body = json.loads(raw or b"null")
        except ValueError:
            body = None
        if self.path.endswith("/_fake/script"):
            if "prompt" in body:
                fake.script_prompt(body["prompt"], body["behaviours"])
            else:
                fake.script(body["behaviours"], then=body.get("then", "ok"))
            return self._send(200, {"ok": True})
        if self.path.endswith("/_fake/reset"):
            fake.reset()
            return self._send(200, {"ok": True})
        headers = {name.lower(): value for name, value in self.headers.items()}
        wire = WIRE[fake.provider]
        try:
            prompt = wire.prompt(body)
        except (KeyError, IndexError, TypeError):
            prompt = None
        sent_key = wire.sent_key(headers)
        behaviour = fake._next(
            {"method": "POST", "path": self.path, "headers": headers, "json": body, "prompt": prompt, "at": arrived},
            rejected=fake.api_key is not None and sent_key != fake.api_key,
        )
        kind = behaviour["kind"]
        if kind == "stall":
            if fake._stopping.wait(float(behaviour.get("seconds", 5))):
                return
            kind = "ok"
        try:
            if kind == "ok":
                self._send(200, wire.answer(self.path, body or {}, behaviour))
            elif kind == "recorded":
                self._send(200, recorded_body(behaviour["file"]))
            elif kind == "odd":
                self._send(200, wire.odd(self.path, body or {}, behaviour))
            elif kind == "malformed":
                self._send_raw(200, b'{"choices": [{"message": {"content": "cut of', "application/json")
            elif kind == "empty":
                self._send(200, wire.empty(self.path, body or {}))
            elif kind == "unauthorized":
                self._send(401, wire.error(401, f"Incorrect API key provided: {sent_key}.", "unauthorized"))
            elif kind == "rate_limited":
                self._rate_limited(wire, behaviour)
            elif kind == "quota_exhausted":
                status, payload = wire.quota_exhausted()
                self._send(status, payload)
            elif kind == "server_error":
                message = "The server had an error while processing your request."
                self._send(500, wire.error(500, message, "server_error"))
            elif kind == "overloaded":
                status = wire.overloaded_status
                self._send(status, wire.error(status, "Overloaded", "overloaded"))
            elif kind == "error":
                status = int(behaviour["status"])
                self._send(status, wire.error(status, behaviour.get("message", "scripted error"), "error"))
            else:
                self._send(500, {"error": {"message": f"fake server: unknown behaviour {kind!r}"}})
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up first, as a timing-out adapter does

    def _rate_limited(self, wire: _Wire, behaviour: dict[str, Any]) -> None:
        seconds = float(behaviour.get("retry_after", 7))
        headers = {}
        if wire.provider != "gemini":  # Gemini says when to come back in the body (RetryInfo)
            if behaviour.get("retry_after_http_date"):
                headers["Retry-After"] = formatdate(time.time() + seconds, usegmt=True)
            else:
                headers["Retry-After"] = f"{seconds:g}"
            if wire.provider == "claude":
                headers["retry-after-ms"] = f"{seconds * 1000:g}"
        self._send(429, wire.rate_limited(seconds), headers)

    def _send(self, status: int, payload: Any, headers: dict[str, str] | None = None) -> None:
        self._send_raw(status, json.dumps(payload).encode(), "application/json", headers)

    def _send_raw(self, status: int, data: bytes, content_type: str, headers: dict[str, str] | None = None) -> None:
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)


class _Wire:
    """One provider's JSON shapes; subclasses override what differs from OpenAI's."""

    provider = ""
    overloaded_status = 503

    def sent_key(self, headers: dict[str, str]) -> str:
        return headers.get("authorization", "").removeprefix("Bearer ")

    def prompt(self, body: dict) -> str:
        # The user's message: a continued Claude turn ends with the assistant's paused content.
        return [message for message in body["messages"] if message["role"] == "user"][-1]["content"]

    def answer(self, path: str, body: dict, behaviour: dict[str, Any]) -> dict:
        raise NotImplementedError

    def empty(self, path: str, body: dict) -> dict:
        return {"model": body.get("model"), "choices": [{"index": 0, "message": {"role": "assistant", "content": ""}}]}

    def odd(self, path: str, body: dict, behaviour: dict[str, Any]) -> dict:
        """An ordinary answer whose model is 5,000 characters and whose titles are not strings."""
        payload = json.loads(json.dumps(self.answer(path, body, behaviour)))
        payload["model" if self.provider != "gemini" else "modelVersion"] = ODD_MODEL
        odd_titles = iter(ODD_TITLES * 2)

        def retitle(node: Any) -> None:
            if isinstance(node, dict):
                for key in list(node):
                    if key == "title" and isinstance(node[key], str):
                        node[key] = next(odd_titles)
                    else:
                        retitle(node[key])
            elif isinstance(node, list):
                for child in node:
                    retitle(child)

        retitle(payload)
        return payload

    def error(self, status: int, message: str, kind: str) -> dict:
        kinds = {"unauthorized": "invalid_request_error", "server_error": "server_error", "overloaded": "server_error"}
        code = {"unauthorized": "invalid_api_key"}.get(kind)
        kind = kinds.get(kind, "invalid_request_error")
        return {"error": {"message": message, "type": kind, "param": None, "code": code}}

    def rate_limited(self, seconds: float) -> dict:
        message = "Rate limit reached for requests. Please try again later."
        return {"error": {"message": message, "type": "requests", "param": None, "code": "rate_limit_exceeded"}}

    def quota_exhausted(self) -> tuple[int, dict]:
        message = "You exceeded your current quota, please check your plan and billing details."
        error = {"message": message, "type": "insufficient_quota", "param": None, "code": "insufficient_quota"}
        return 429, {"error": error}


class _OpenAIWire(_Wire):
    provider = "chatgpt"

    def answer(self, path: str, body: dict, behaviour: dict[str, Any]) -> dict:
        text = behaviour.get("text") or answer_text(self.provider, self.prompt(body))
        annotations = [
            {
                "type": "url_citation",
                "url_citation": {"start_index": 0, "end_index": len(text), "url": url, "title": title},
            }
            for url, title in SOURCES
        ]
        return {
            "id": "chatcmpl-fake",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": f"{body.get('model')}-2025-03-11",
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": text, "refusal": None, "annotations": annotations},
                    "finish_reason": "stop",
                }
            ],
            "usage": {"prompt_tokens": 12, "completion_tokens": 34, "total_tokens": 46},
        }


class _PerplexityWire(_Wire):
    provider = "perplexity"

    def answer(self, path: str, body: dict, behaviour: dict[str, Any]) -> dict:
        text = behaviour.get("text") or answer_text(self.provider, self.prompt(body))
        payload = {
            "id": "pplx-fake",
            "model": body.get("model"),
            "created": int(time.time()),
            "object": "chat.completion",
            "usage": {"prompt_tokens": 9, "completion_tokens": 21, "total_tokens": 30, "search_context_size": "low"},
            "citations": [url for url, _ in SOURCES],
            "search_results": [{"title": title, "url": url, "date": "2025-01-15"} for url, title in SOURCES],
            "choices": [{"index": 0, "finish_reason": "stop", "message": {"role": "assistant", "content": text}}],
        }
        if behaviour.get("without_search_results"):
            del payload["search_results"]
        return payload


class _GeminiWire(_Wire):
    provider = "gemini"

    def sent_key(self, headers: dict[str, str]) -> str:
        return headers.get("x-goog-api-key", "")

    def prompt(self, body: dict) -> str:
        return body["contents"][-1]["parts"][0]["text"]

    def _model(self, path: str) -> str:
        return path.rsplit("/", 1)[-1].split(":", 1)[0]

    def answer(self, path: str, body: dict, behaviour: dict[str, Any]) -> dict:
        text = behaviour.get("text") or answer_text(self.provider, self.prompt(body))
        half = len(text) // 2
        return {
            "candidates": [
                {
                    "content": {"role": "model", "parts": [{"text": text[:half]}, {"text": text[half:]}]},
                    "finishReason": "STOP",
                    "groundingMetadata": {
                        "webSearchQueries": [self.prompt(body)],
                        "groundingChunks": [{"web": {"uri": url, "title": title}} for url, title in SOURCES],
                        "groundingSupports": [
                            {"segment": {"startIndex": 0, "endIndex": half}, "groundingChunkIndices": [0, 1]}
                        ],
                    },
                }
            ],
            "usageMetadata": {
                "promptTokenCount": 8, "candidatesTokenCount": 40, "totalTokenCount": 138, "toolUsePromptTokenCount": 90
            },
            "modelVersion": self._model(path),
            "responseId": "fake-gemini",
        }

    def empty(self, path: str, body: dict) -> dict:
        return {"candidates": [{"finishReason": "SAFETY", "index": 0}], "modelVersion": self._model(path)}

    def error(self, status: int, message: str, kind: str) -> dict:
        statuses = {
            401: "UNAUTHENTICATED", 403: "PERMISSION_DENIED", 404: "NOT_FOUND", 500: "INTERNAL", 503: "UNAVAILABLE"
        }
        return {"error": {"code": status, "message": message, "status": statuses.get(status, "INVALID_ARGUMENT")}}

    def _exhausted(self, quota_id: str, seconds: float) -> dict:
        return {
            "error": {
                "code": 429,
                "message": "You exceeded your current quota, please check your plan and billing details.",
                "status": "RESOURCE_EXHAUSTED",
                "details": [
                    {
                        "@type": "type.googleapis.com/google.rpc.QuotaFailure",
                        "violations": [
                            {
                                "quotaMetric": "generativelanguage.googleapis.com/generate_content_free_tier_requests",
                                "quotaId": quota_id,
                                "quotaDimensions": {"location": "global", "model": "gemini-2.5-flash"},
                                "quotaValue": "10",
                            }
                        ],
                    },
                    {
                        "@type": "type.googleapis.com/google.rpc.Help",
                        "links": [{"url": "https://ai.google.dev/gemini-api/docs/rate-limits"}],
                    },
                    {"@type": "type.googleapis.com/google.rpc.RetryInfo", "retryDelay": f"{seconds:g}s"},
                ],
            }
        }

    def rate_limited(self, seconds: float) -> dict:
        return self._exhausted("GenerateRequestsPerMinutePerProjectPerModel-FreeTier", seconds)

    def quota_exhausted(self) -> tuple[int, dict]:
        # Google sends a RetryInfo even for a daily quota; waiting seconds will not help.
        return 429, self._exhausted("GenerateRequestsPerDayPerProjectPerModel-FreeTier", 40)


class _AnthropicWire(_Wire):
    provider = "claude"
    overloaded_status = 529

    def sent_key(self, headers: dict[str, str]) -> str:
        return headers.get("x-api-key", "")

    def answer(self, path: str, body: dict, behaviour: dict[str, Any]) -> dict:
        prompt = self.prompt(body)
        text = behaviour.get("text") or answer_text(self.provider, prompt)
        cited, rest = SOURCES[0], SOURCES[1:]
        return {
            "id": "msg_fake",
            "type": "message",
            "role": "assistant",
            "model": f"{body.get('model')}-20250929",
            "content": [
                {"type": "server_tool_use", "id": "srvtoolu_fake", "name": "web_search", "input": {"query": prompt}},
                {
                    "type": "web_search_tool_result",
                    "tool_use_id": "srvtoolu_fake",
                    "content": [
                        {
                            "type": "web_search_result", "url": url, "title": title,
                            "encrypted_content": "EqgfCioIARgB", "page_age": "January 15, 2025",
                        }
                        for url, title in rest
                    ],
                },
                {"type": "text", "text": text[:5]},
                {
                    "type": "text",
                    "text": text[5:],
                    "citations": [
                        {
                            "type": "web_search_result_location", "url": cited[0], "title": cited[1],
                            "encrypted_index": "Eo8BCioIAhgB", "cited_text": "The best CRM tools...",
                        }
                    ],
                },
            ],
            "stop_reason": "end_turn",
            "stop_sequence": None,
            "usage": {"input_tokens": 105, "output_tokens": 39, "server_tool_use": {"web_search_requests": 1}},
        }

    def empty(self, path: str, body: dict) -> dict:
        return {
            "id": "msg_fake", "type": "message", "role": "assistant", "model": body.get("model"),
            "content": [], "stop_reason": "end_turn", "usage": {"input_tokens": 5, "output_tokens": 0},
        }

    def error(self, status: int, message: str, kind: str) -> dict:
        types = {
            401: "authentication_error", 403: "permission_error", 404: "not_found_error",
            429: "rate_limit_error", 500: "api_error", 529: "overloaded_error",
        }
        return {"type": "error", "error": {"type": types.get(status, "invalid_request_error"), "message": message}}

    def rate_limited(self, seconds: float) -> dict:
        return self.error(429, "Number of request tokens has exceeded your per-minute rate limit.", "rate_limited")

    def quota_exhausted(self) -> tuple[int, dict]:
        message = (
            "Your credit balance is too low to access the Anthropic API. "
            "Please go to Plans & Billing to upgrade or purchase credits."
        )
        return 400, self.error(400, message, "quota_exhausted")


WIRE: dict[str, _Wire] = {
    "chatgpt": _OpenAIWire(),
    "perplexity": _PerplexityWire(),
    "gemini": _GeminiWire(),
    "claude": _AnthropicWire(),
}


def main() -> None:
    parser = argparse.ArgumentParser(description="Run one fake provider API until interrupted.")
    parser.add_argument("provider", choices=sorted(BASE_PATHS))
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--api-key", default=None, help="reject any other key with a 401")
    args = parser.parse_args()
    server = FakeProviderServer(args.provider, port=args.port, api_key=args.api_key).start()
    print(server.url, flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        server.stop()


if __name__ == "__main__":
    main()
