"""What every API view shares: the one exception handler (domain errors to 4xx/503 JSON) and pagination."""
from __future__ import annotations

import redis
from django.core.exceptions import RequestDataTooBig
from rest_framework import pagination
from rest_framework.response import Response
from rest_framework.views import exception_handler

from oneglanse.database_outage import DATABASE_UNAVAILABLE_ERRORS, RETRY_AFTER_SECONDS, database_unavailable_body
from oneglanse.exceptions import DomainError


def domain_exception_handler(exc, context) -> Response | None:
    if isinstance(exc, DomainError):
        body = {exc.field: [exc.detail]} if exc.field else {"detail": exc.detail}
        headers = {"Retry-After": "5"} if exc.status_code == 503 else None
        return Response(body, status=exc.status_code, headers=headers)
    if isinstance(exc, redis.RedisError):
        # Django's cache (throttle counters) is Redis too: while it is away, say so, never an HTML 500.
        return Response({"detail": "Redis is unavailable; try again shortly."}, status=503, headers={"Retry-After": "5"})
    if isinstance(exc, RequestDataTooBig):
        # Raised while DRF reads the body; Django alone would answer with an HTML 400.
        return Response({"detail": "The request body is too large."}, status=413)
    if isinstance(exc, DATABASE_UNAVAILABLE_ERRORS):
        return Response(database_unavailable_body(), status=503, headers={"Retry-After": str(RETRY_AFTER_SECONDS)})
    return exception_handler(exc, context)


class PageNumberPagination(pagination.PageNumberPagination):
    """The pagination every list endpoint uses: {"count", "next", "previous", "results"}."""

    page_size = 50
    page_size_query_param = "page_size"
    max_page_size = 1000
