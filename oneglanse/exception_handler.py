"""Maps domain errors to JSON responses; everything else goes through DRF's own handler."""
from rest_framework.response import Response
from rest_framework.views import exception_handler

from agent.exceptions import DomainError


def domain_exception_handler(exc, context):
    if isinstance(exc, DomainError):
        body = {exc.field: [exc.detail]} if exc.field else {"detail": exc.detail}
        headers = {"Retry-After": "5"} if exc.status_code == 503 else None
        return Response(body, status=exc.status_code, headers=headers)
    return exception_handler(exc, context)
