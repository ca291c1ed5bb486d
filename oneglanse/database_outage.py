"""Riding out a database outage: requests get a 503 with Retry-After, background work waits and resumes.

The DRF exception handler answers the API's views with `database_unavailable_body`; the
middleware does the same for every other view (pages, admin), and `server_error` catches what
escapes elsewhere (another middleware), so no request path turns an outage into a 500.
Workers call `database_outage_wait_out` to retry an operation until the database is back.
"""
from __future__ import annotations

import contextlib
import logging
import sys
import time
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, InterfaceError, OperationalError, connection
from django.http import HttpRequest, HttpResponse, JsonResponse
from django.views.defaults import server_error as django_server_error

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Down, restarting, unreachable or locked: the kinds of database error that pass by themselves.
DATABASE_UNAVAILABLE_ERRORS = (OperationalError, InterfaceError)
RETRY_AFTER_SECONDS = 5
DETAIL = "The database is unavailable right now; try again in a few seconds."


def database_unavailable_body() -> dict:
    return {"detail": DETAIL}


def database_unavailable_response(request: HttpRequest | None) -> HttpResponse:
    """JSON for the API (and any client asking for JSON), a short page for a browser."""
    path = getattr(request, "path", "") or ""
    accept = request.headers.get("Accept", "") if request is not None else ""
    if path.startswith("/api/") or "application/json" in accept or request is None:
        response: HttpResponse = JsonResponse(database_unavailable_body(), status=503)
    else:
        response = HttpResponse(
            f"<!doctype html><title>Unavailable</title><h1>Service unavailable</h1><p>{DETAIL}</p>",
            status=503, content_type="text/html; charset=utf-8",
        )
    response["Retry-After"] = str(RETRY_AFTER_SECONDS)
    return response


class DatabaseUnavailableMiddleware:
    """Turns a database outage raised by any view into a 503 with Retry-After."""

    def __init__(self, get_response) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_exception(self, request: HttpRequest, exception: Exception) -> HttpResponse | None:
        if isinstance(exception, DATABASE_UNAVAILABLE_ERRORS):
            logger.warning("%s %s: database unavailable (%s)", request.method, request.path, exception)
            return database_unavailable_response(request)
        return None


def server_error(request: HttpRequest, *args, **kwargs) -> HttpResponse:
    """handler500: an outage that escaped the views (in a middleware) is still a 503, not a 500."""
    if isinstance(sys.exc_info()[1], DATABASE_UNAVAILABLE_ERRORS):
        return database_unavailable_response(request)
    return django_server_error(request, *args, **kwargs)


def database_connection_drop() -> None:
    """Forget this thread's connection: after an outage error it is broken, and Django would reuse it."""
    with contextlib.suppress(DatabaseError):
        connection.close()


def database_outage_wait_out(
    operation: Callable[[], T], *, patience: float, what: str, first_error: Exception | None = None,
    on_failure: Callable[[Exception], None] | None = None,
) -> T:
    """Run `operation` until the database takes it, backing off from 0.5 s to 5 s between tries.

    Gives up (re-raising the last error) after `patience` seconds. `on_failure` runs after every
    failed try (say, to hold a result somewhere durable). Call it only once a first try has
    failed, so the normal path costs nothing.
    """
    deadline = time.monotonic() + patience
    delay = 0.5
    error = first_error
    if error is not None:
        logger.warning("%s: the database is unavailable (%s); retrying until it is back", what, error)
    while True:
        if error is not None:
            database_connection_drop()
            if time.monotonic() + delay > deadline:
                raise error
            time.sleep(delay)
            delay = min(delay * 2, 5.0)
        try:
            return operation()
        except DATABASE_UNAVAILABLE_ERRORS as exc:
            if error is None:
                logger.warning("%s: the database is unavailable (%s); retrying until it is back", what, exc)
            error = exc
            if on_failure is not None:
                on_failure(exc)
