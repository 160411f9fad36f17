"""One parser for `Authorization: Bearer`, used by /metrics and by the API key check."""

from __future__ import annotations

import pytest

from telemetry.exporters import bearer_token


@pytest.mark.parametrize(
    "header,token",
    [
        ("Bearer abc", b"abc"),
        ("bearer abc", b"abc"),  # schemes are case-insensitive
        (" \tBearer  abc \t", b"abc"),  # HTTP's optional whitespace around the token
        ("Bearer cl\xc3\xa9", b"cl\xc3\xa9"),  # the bytes sent, as Latin-1 decoded them
        ("Basic abc", None),
        ("Bearer", None),
        ("Bearer  ", None),
        ("", None),
    ],
)
def test_bearer_token(header: str, token: bytes | None) -> None:
    assert bearer_token(header) == token
