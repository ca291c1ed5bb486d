"""API hardening shared by every view: token or bearer authentication, a JSON parser that survives deep nesting."""
from __future__ import annotations

from rest_framework import exceptions
from rest_framework.authentication import TokenAuthentication, get_authorization_header
from rest_framework.parsers import JSONParser


class TokenOrBearerAuthentication(TokenAuthentication):
    """DRF's token authentication, accepting `Authorization: Bearer <key>` as well as `Token <key>`.

    Listed first, its challenge (`WWW-Authenticate: Bearer ...`) makes DRF answer a missing or
    bad credential with 401 rather than 403.
    """

    keywords = ("Token", "Bearer")

    def authenticate(self, request):
        auth = get_authorization_header(request).split()
        if not auth:
            return None
        scheme = auth[0].decode(errors="replace")
        if scheme.lower() not in (k.lower() for k in self.keywords):
            return None
        if len(auth) != 2:
            raise exceptions.AuthenticationFailed(f"Invalid {scheme} header: expected '{scheme} <token>'.")
        try:
            key = auth[1].decode()
        except UnicodeError:
            raise exceptions.AuthenticationFailed("Invalid token header: the token has invalid characters.") from None
        return self.authenticate_credentials(key)

    def authenticate_header(self, request) -> str:
        return 'Bearer realm="api", Token realm="api"'


class DepthSafeJSONParser(JSONParser):
    """JSON bodies nested deeper than Python can parse are a 400, not a RecursionError (500)."""

    def parse(self, stream, media_type=None, parser_context=None):
        try:
            return super().parse(stream, media_type, parser_context)
        except RecursionError:
            raise exceptions.ParseError("JSON parse error - the body is nested too deeply.") from None

