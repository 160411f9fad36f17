"""/docs works offline and with the key: the OpenAPI document declares both ways to present
the key (a call made through the declared scheme answers 200), Swagger UI and ReDoc load
their assets from the API itself, and in a real headless browser (Debian's chromium) the page
renders, Authorize takes the key and "Execute" answers 200."""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
from starlette.testclient import TestClient

from tests.conftest import AppFactory
from tests.support.api_process import ApiProcess

KEY = "docs-page-key-0123456789"
SESSIONS = "/api/v2/sessions"


@pytest.fixture
def keyed(make_client: AppFactory) -> TestClient:
    return make_client(api_key=KEY)


def test_openapi_declares_both_key_schemes(keyed: TestClient) -> None:
    spec = keyed.get("/openapi.json").json()
    schemes = spec["components"]["securitySchemes"]
    assert schemes["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": schemes["ApiKey"]["description"],
    }
    assert schemes["Bearer"]["type"] == "http" and schemes["Bearer"]["scheme"] == "bearer"
    # Every protected operation accepts either; the open ones declare none.
    assert spec["paths"][SESSIONS]["get"]["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert "security" not in spec["paths"]["/health"]["get"]


def call_as_declared(client: TestClient, scheme: dict[str, Any]) -> httpx.Response:
    """What a generated client does with a security scheme of the spec."""
    if scheme["type"] == "apiKey":
        assert scheme["in"] == "header"
        return client.get(SESSIONS, headers={scheme["name"]: KEY})
    assert scheme["type"] == "http" and scheme["scheme"] == "bearer"
    return client.get(SESSIONS, headers={"Authorization": f"Bearer {KEY}"})


@pytest.mark.parametrize("name", ["ApiKey", "Bearer"])
def test_a_call_through_the_declared_scheme_answers_200(keyed: TestClient, name: str) -> None:
    scheme = keyed.get("/openapi.json").json()["components"]["securitySchemes"][name]
    assert call_as_declared(keyed, scheme).status_code == 200
    assert keyed.get(SESSIONS).status_code == 401


@pytest.mark.parametrize("page", ["/docs", "/redoc"])
def test_docs_pages_load_nothing_from_elsewhere(keyed: TestClient, page: str) -> None:
    html = keyed.get(page).text
    sources = re.findall(r'(?:src|href)="([^"]+)"', html) + re.findall(r"url: '([^']+)'", html)
    assert sources, html
    for source in sources:
        assert source.startswith("/"), f"{page} loads {source}"
        assert keyed.get(source).status_code == 200, source


@pytest.fixture
def served(tmp_path: Any) -> Iterator[ApiProcess]:
    env = {"TESTBOOST_API_KEY": KEY, "TESTBOOST_DATABASE_URL": f"sqlite:///{tmp_path}/d.db"}
    with ApiProcess(env) as api:
        yield api


def test_swagger_ui_calls_the_api_with_the_key_in_a_real_browser(served: ApiProcess) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, (
        "Debian's chromium is missing: `make test` installs it (scripts/install-tools.sh)"
    )
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium,
            args=[
                "--no-sandbox",
                "--disable-gpu",
                "--disable-background-networking",
                "--disable-component-update",
                "--disable-sync",
                "--no-first-run",
            ],
        )
        try:
            page = browser.new_page()
            outside: list[str] = []
            page.on(
                "request",
                lambda request: (
                    outside.append(request.url) if not request.url.startswith(served.url) else None
                ),
            )
            page.goto(f"{served.url}/docs")
            page.get_by_role("button", name="Authorize").first.click()
            page.locator("#api_key_value").fill(KEY)  # the ApiKey scheme's field
            page.get_by_role("button", name="Apply credentials").first.click()
            page.locator(".modal-ux .btn-done").first.click()
            operation = page.locator("#operations-sessions-list_sessions_api_v2_sessions_get")
            operation.locator(".opblock-summary").click()
            operation.get_by_role("button", name="Try it out").click()
            operation.get_by_role("button", name="Execute").click()
            status = operation.locator(".live-responses-table tbody .response-col_status").first
            status.wait_for(timeout=15_000)
            assert status.inner_text().strip() == "200"
            assert '"items"' in operation.locator(".live-responses-table").inner_text()
        finally:
            browser.close()
    assert outside == [], f"/docs reached outside the API: {outside}"
