"""Secrets kept out of logs: query parameters that name a secret are redacted from the access
log, since clients do send `?api_key=...` or `/metrics?token=...` by mistake."""

from __future__ import annotations

import logging
import re
from urllib.parse import unquote_plus

# Compared case-insensitively, `-` and `_` ignored, each part of a bracketed name (PHP-style
# `user[password]`, `api_key[]`) on its own; any name ending in one of the suffixes counts too
# (`apitoken`, `x_api_key`, `client_secret`, `db_pass`...). Redacting an innocent parameter
# costs a log line's detail; missing a secret leaks it, so the rule errs on the first side.
SECRET_NAMES = frozenset(
    {"auth", "authorization", "bearer", "code", "credential", "credentials", "jwt", "sig"}
)
SECRET_SUFFIXES = ("key", "token", "secret", "password", "passwd", "pass", "pwd", "signature")
REDACTED = "<redacted>"
_SEPARATORS = re.compile(r"([&;])")


def is_secret_name(name: str) -> bool:
    """`api_key`, and any part of a bracketed name: `user[password]`, `api_key[]`."""
    parts = re.findall(r"[^\[\]]+", unquote_plus(name).strip().lower())
    return any(_secret_part(part) for part in parts)


def _secret_part(part: str) -> bool:
    normal = part.strip().replace("-", "").replace("_", "")
    return normal in SECRET_NAMES or normal.endswith(SECRET_SUFFIXES)


def redact_query(query: str) -> str:
    """`limit=5&api_key=abc` → `limit=5&api_key=<redacted>`; other parameters kept as sent.
    Pairs separated by `&` or `;` alike (servers differ, so both are taken as separators)."""
    parts = []
    for part in _SEPARATORS.split(query):
        name, equals, _value = part.partition("=")
        parts.append(f"{name}={REDACTED}" if equals and is_secret_name(name) else part)
    return "".join(parts)


def redact_target(target: str) -> str:
    """A request target (`/path?query`) with its secret query parameters redacted."""
    path, question, query = target.partition("?")
    return f"{path}?{redact_query(query)}" if question else target


class RedactQueryStrings(logging.Filter):
    """On uvicorn's access logger, whose records carry the request target as an argument:
    `'%s - "%s %s HTTP/%s" %d'` (client, method, target, version, status)."""

    def filter(self, record: logging.LogRecord) -> bool:
        if isinstance(record.args, tuple):
            record.args = tuple(
                redact_target(arg) if isinstance(arg, str) and "?" in arg else arg
                for arg in record.args
            )
        return True


ACCESS_LOG_FILTER = RedactQueryStrings()


def redact_access_log() -> None:
    """Idempotent: the same filter object is added once, however many apps are built."""
    logging.getLogger("uvicorn.access").addFilter(ACCESS_LOG_FILTER)
