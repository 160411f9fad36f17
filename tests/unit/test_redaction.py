"""app/core/redaction.py: which query parameter names are secrets, table-tested (the names a
hostile probe found unredacted included), and `;` separating pairs as `&` does."""

from __future__ import annotations

import pytest

from app.core.redaction import REDACTED, is_secret_name, redact_query

SECRETS = [
    "api_key", "API-KEY", "apikey", "x-api-key", "key", "token", "access_token", "accesstoken",
    "apitoken", "id_token", "refresh_token", "bearer", "jwt", "pass", "passwd", "password",
    "db_pass", "pwd", "secret", "client_secret", "sig", "signature", "code", "auth",
    "authorization", "credential", "credentials", "api_key[]", "token[0]", "api%5Fkey",
    "user[password]", "data[api_key]", "a[b][secret]",
]  # fmt: skip
PLAIN = ["limit", "offset", "status", "session_type", "mode", "q", "sort"]


@pytest.mark.parametrize("name", SECRETS)
def test_secret_names(name: str) -> None:
    assert is_secret_name(name)


@pytest.mark.parametrize("name", PLAIN)
def test_ordinary_names_are_kept(name: str) -> None:
    assert not is_secret_name(name)


def test_pairs_separated_by_semicolons_are_redacted_too() -> None:
    assert redact_query("limit=5;bearer=abc&jwt=x;status=ok") == (
        f"limit=5;bearer={REDACTED}&jwt={REDACTED};status=ok"
    )
    assert redact_query("api_key[]=a&api_key[]=b") == f"api_key[]={REDACTED}&api_key[]={REDACTED}"
    assert redact_query("flag&limit=3") == "flag&limit=3"  # a name without a value stays
