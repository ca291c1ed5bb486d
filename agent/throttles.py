"""The submission throttle (AGENT_SUBMIT_RATE), shared by the API and the pages with one set of counters."""
from __future__ import annotations

import math

from django.http import HttpRequest
from rest_framework.throttling import UserRateThrottle


class RunSubmitThrottle(UserRateThrottle):
    """Submissions and re-runs per user at AGENT_SUBMIT_RATE; only POST is throttled, reading is free."""

    scope = "submit"

    def allow_request(self, request, view) -> bool:
        if request.method != "POST":
            return True
        return super().allow_request(request, view)


def submission_wait(request: HttpRequest) -> int | None:
    """Seconds to wait when the caller used up AGENT_SUBMIT_RATE, else None (and this submission counts).

    The pages count against the API's counters, so a button is not a way around the limit.
    """
    throttle = RunSubmitThrottle()
    if throttle.allow_request(request, view=None):
        return None
    return max(1, math.ceil(throttle.wait() or 1))
