"""Credentials out of provider error text: an upstream may echo the key, a near copy of it,
or the request's headers back in an error body, and that text reaches answers, CSV and pages."""
from __future__ import annotations

import re

REDACTED = "[redacted]"
# A window this long of the configured key inside any token marks the token as a copy of it,
# so a copy with a character changed, cut short or padded is caught as well as an exact one.
KEY_WINDOW = 10
_TOKEN = re.compile(r"[A-Za-z0-9_\-.~+/=]+")
_PATTERNS = [
    # Header-shaped echoes: "Authorization: Bearer x", "x-goog-api-key: x", JSON "x-api-key": "x".
    (re.compile(r"(?i)\b(authorization|proxy-authorization|x-goog-api-key|x-api-key|api-key)(\"?\s*[:=]\s*\"?)(?:bearer\s+|basic\s+|token\s+)?[^\s\",;&]+"),
     rf"\1\2{REDACTED}"),
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9_\-.~+/=]{6,}"), rf"\1 {REDACTED}"),
    # Query-string and form shapes: key=..., api_key=..., access_token=...
    (re.compile(r"(?i)\b(key|api_?key|apikey|access_token|token|secret|password)=[^\s&\"',;]+"), rf"\1={REDACTED}"),
    # The shapes of the four providers' keys, whoever's key it is.
    (re.compile(r"\bsk-ant-[A-Za-z0-9_\-]{6,}"), REDACTED),
    (re.compile(r"\bsk-[A-Za-z0-9_\-]{6,}"), REDACTED),
    (re.compile(r"\bpplx-[A-Za-z0-9_\-]{6,}"), REDACTED),
    (re.compile(r"\bAIza[0-9A-Za-z_\-]{10,}"), REDACTED),
]


def credentials_redact(text: str, secret: str = "") -> str:
    """`text` with the configured key (exact or near copies) and anything shaped like a credential replaced."""
    # Real keys are long; a toy key of a few letters would otherwise redact ordinary words.
    if len(secret) >= 8:
        text = text.replace(secret, REDACTED)
        size = min(KEY_WINDOW, len(secret))
        windows = {secret[i : i + size] for i in range(len(secret) - size + 1)}
        text = _TOKEN.sub(lambda m: REDACTED if any(w in m.group() for w in windows) else m.group(), text)
    for pattern, replacement in _PATTERNS:
        text = pattern.sub(replacement, text)
    return text
