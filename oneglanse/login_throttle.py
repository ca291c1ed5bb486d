"""Brute-force throttling of log-ins, per username and per client address, in Django's cache (Redis).

Covers `/api/auth/token/`, `/login/` and `/admin/login/`. Each attempt takes a slot up front with
an atomic INCR (so parallel guesses cannot slip past the limit); a successful log-in gives its slot
back, so only failures count. The counters live in Redis, shared by every web process and host.
"""
from __future__ import annotations

import hashlib
import json
import logging

import redis
from django.conf import settings
from django.core.cache import cache
from django.core.exceptions import ImproperlyConfigured, RequestDataTooBig
from django.http import HttpRequest, HttpResponse, JsonResponse
from rest_framework.throttling import BaseThrottle

logger = logging.getLogger(__name__)

LOGIN_PATHS = ("/api/auth/token/", "/login/", "/admin/login/")
_PERIODS = {"s": 1, "sec": 1, "second": 1, "m": 60, "min": 60, "minute": 60, "h": 3600, "hour": 3600}


def login_rate_parse(rate: str, setting: str = "rate") -> tuple[int, int]:
    """'5/min' -> (5, 60); anything else stops the web server at start-up with the setting's name."""
    count, _, period = rate.partition("/")
    try:
        return int(count), _PERIODS[period.strip().lower()]
    except (ValueError, KeyError):
        raise ImproperlyConfigured(f"{setting} must look like 5/min (per s, min or hour), not {rate!r}.") from None


def _username_of(request: HttpRequest) -> str:
    if request.content_type == "application/json":
        try:
            body = json.loads(request.body or b"{}")
        except (ValueError, RecursionError, RequestDataTooBig):
            return ""
        username = body.get("username") if isinstance(body, dict) else ""
    else:
        try:
            username = request.POST.get("username", "")
        except RequestDataTooBig:
            return ""
    return username.strip().lower() if isinstance(username, str) else ""


def _succeeded(request: HttpRequest, response: HttpResponse) -> bool:
    # The token API answers 200 with a token; the log-in pages redirect (302) once signed in.
    if request.path.startswith("/api/"):
        return response.status_code == 200
    return response.status_code == 302


class LoginThrottleMiddleware:
    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.rates = {
            "address": login_rate_parse(settings.AGENT_LOGIN_RATE_ADDRESS, "AGENT_LOGIN_RATE_ADDRESS"),
            "username": login_rate_parse(settings.AGENT_LOGIN_RATE_USERNAME, "AGENT_LOGIN_RATE_USERNAME"),
        }

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if request.method != "POST" or request.path not in LOGIN_PATHS:
            return self.get_response(request)
        slots = []
        username = _username_of(request)
        # No address at all (a bare WSGI call) still counts, under one shared name.
        checks = [("address", BaseThrottle().get_ident(request) or "unknown")]
        if username:
            checks.append(("username", username))
        try:
            for kind, who in checks:
                limit, period = self.rates[kind]
                digest = hashlib.sha256(who.encode()).hexdigest()[:32]
                key = f"login-attempts:{kind}:{digest}"
                # The window opens at the first failure and closes `period` s later (the key's TTL).
                cache.add(key, 0, timeout=period)
                slots.append(key)
                if cache.incr(key) > limit:
                    self._give_back(slots)  # a refused attempt is not an attempt
                    return self._refused(request, period)
        except redis.RedisError as exc:  # Redis down: let people log in rather than lock everyone out
            logger.warning("log-in throttle unavailable (%s); attempt not counted", exc)
            return self.get_response(request)
        response = self.get_response(request)
        if _succeeded(request, response):
            self._give_back(slots)
        return response

    @staticmethod
    def _give_back(keys: list[str]) -> None:
        for key in keys:
            try:
                cache.decr(key)
            except (ValueError, redis.RedisError):  # expired in between, or Redis gone: nothing to give back
                continue

    @staticmethod
    def _refused(request: HttpRequest, retry_after: int) -> HttpResponse:
        message = f"Too many failed log-in attempts; try again in {retry_after} s."
        if request.path.startswith("/api/"):
            response = JsonResponse({"detail": message}, status=429)
        else:
            response = HttpResponse(f"<!doctype html><title>Too many attempts</title><p>{message}</p>", status=429)
        response["Retry-After"] = str(retry_after)
        return response
