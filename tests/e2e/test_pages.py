"""Every page the project points a user to opens on the local stack: the URLs `stack up`,
`stack status` and `doctor --stack` print, and those README.md and docs/ give with the
address 127.0.0.1 in their text (docs/verification.md: `localhost` URLs are the Compose
stack's, whose upstream images cannot run here; URLs in command blocks are run by the docs
tests). Each is opened in headless Chromium (Debian's) as a browser opens it, with the API
key only where `stack up` says the API requires it (/api/*); a screenshot per page is kept
in var/test-artifacts/pages/, and none may show an error."""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import httpx
import pytest

from devstack.ports import DEFAULT_PORTS
from devstack.stack import COMPONENTS
from tests.e2e.helpers import run_testboost
from tests.monitoring.tools import REPO

pytestmark = pytest.mark.e2e

SHOTS = REPO / "var" / "test-artifacts" / "pages"
# The docs write the default ports; the stack under test runs on free ones.
COMPONENT_AT = {port: name for name, port in DEFAULT_PORTS.items()}
# URLs of the docs that are not pages of the local stack, each with why.
NOT_PAGES = {
    "http://127.0.0.1:3000": "Grafana: compose only (AGPL, not run here: docs/verification.md)",
    "http://127.0.0.1:28000": "doctor's example of a URL given on the command line",
    "http://127.0.0.1:1": "doctor's example of an unreachable address",
}
JAEGER_PAGE = "Jaeger (local stack): query API"  # devstack/jaeger-ui/index.html's title
URL = re.compile(r"https?://127\.0\.0\.1:\d+[^\s`'\"<>)\]|]*")
PATH = re.compile(r"(?<=[\s(`])(/[\w#?=&./-]*)")
# What an error page says, in the words of each tool: a 404, Debian's missing assets, the
# Jaeger build without UI, Alertmanager's Debian build without UI, a Python traceback.
ERROR_TEXT = re.compile(
    r"404 page not found|not found|error reading|not the jaeger ui|does not include a web "
    r"application|internal server error|traceback|method not allowed",
    re.IGNORECASE,
)


@dataclass(frozen=True)
class Printed:
    url: str
    where: str  # what printed it: "stack up", "docs/local-stack.md", ...


def urls_in(text: str, where: str) -> list[Printed]:
    """The URLs in `text`: each written out, plus each path a table row names after its
    row's URL (`http://127.0.0.1:9090   targets /classic/targets, ...`)."""
    found: list[Printed] = []
    # A command that sends data is not a page: `curl ... --data-urlencode query=...`.
    text = re.sub(r"`[^`\n]*(?:--data|\s-d\s)[^`\n]*`", "", text)
    for line in text.splitlines():
        urls = [u.rstrip(".,;:") for u in URL.findall(line)]
        found += [Printed(u, where) for u in urls]
        if len(urls) == 1 and urls[0].count("/") == 2:  # a base URL, then its pages
            rest = line.split(urls[0], 1)[1]
            found += [Printed(urls[0] + p.rstrip(".,;:"), where) for p in PATH.findall(rest)]
    return found


@dataclass
class Stack:
    ports: dict[str, int]
    key: str
    printed: list[Printed]


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """A push stack with traces (every component), used as a newcomer would: up, a session
    through the API, status, doctor."""
    cwd = tmp_path_factory.mktemp("pages")
    # Port 0: the stack picks each component's ports, its offset ones free too.
    anywhere = [f"--{name}-port=0" for name in COMPONENTS]
    up = run_testboost("stack", "up", "--push", "--traces", *anywhere, cwd=cwd)
    try:
        assert up.returncode == 0, up.stdout + up.stderr
        ports = json.loads((cwd / "var" / "stack" / "state.json").read_text())["ports"]
        key = (cwd / "var" / "stack" / "secrets" / "testboost-api-key").read_text().strip()
        created = httpx.post(
            f"http://127.0.0.1:{ports['api']}/api/v2/sessions",
            headers={"X-API-Key": key},
            json={"session_type": "test_generation", "project_path": "/demo"},
        )
        assert created.status_code == 201, created.text
        status = run_testboost("stack", "status", cwd=cwd)
        assert status.returncode == 0, status.stdout + status.stderr
        doctor = run_testboost("doctor", "--stack", cwd=cwd)
        outputs = {"stack up": up, "stack status": status, "doctor --stack": doctor}
        SHOTS.mkdir(parents=True, exist_ok=True)
        (SHOTS / "printed.txt").write_text(
            "".join(f"$ {where}\n{out.stdout}\n" for where, out in outputs.items())
        )
        printed = [p for where, out in outputs.items() for p in urls_in(out.stdout, where)]
        yield Stack(ports, key, printed)
    finally:
        run_testboost("stack", "down", cwd=cwd)


def documented(ports: dict[str, int]) -> list[Printed]:
    """README's and docs/' 127.0.0.1 URLs, moved to the stack's ports; placeholders
    (`<trace_id>`, `PORT`) and NOT_PAGES left out."""
    found: list[Printed] = []
    for doc in [REPO / "README.md", *sorted((REPO / "docs").glob("*.md"))]:
        prose = re.sub(r"^```.*?^```", "", doc.read_text(), flags=re.MULTILINE | re.DOTALL)
        for printed in urls_in(prose, str(doc.relative_to(REPO))):
            parts = urlsplit(printed.url)
            if (
                "<" in printed.url
                or "PORT" in printed.url
                or printed.url.startswith(tuple(NOT_PAGES))
            ):
                continue
            component = COMPONENT_AT.get(parts.port or 0)
            assert component, f"{printed.where}: {printed.url} is no port of the local stack"
            moved = parts._replace(netloc=f"127.0.0.1:{ports[component]}")
            found.append(Printed(urlunsplit(moved), printed.where))
    return found


def test_docs_urls_are_recognised() -> None:
    # The collector of URLs finds what the docs hold, so an empty list cannot pass.
    found = documented(dict.fromkeys(COMPONENTS, 1))
    assert {"README.md", "docs/local-stack.md", "docs/api.md"} <= {p.where for p in found}


def test_every_printed_and_documented_url_opens_a_page(stack: Stack) -> None:
    from playwright.sync_api import sync_playwright

    chromium = shutil.which("chromium")
    assert chromium, "Debian's chromium is missing: `make test` installs it (make tools)"
    by_url: dict[str, list[str]] = {}
    for printed in [*stack.printed, *documented(stack.ports)]:
        by_url.setdefault(printed.url, []).append(printed.where)
    wheres = {w for ws in by_url.values() for w in ws}
    assert {"stack up", "stack status", "doctor --stack"} <= wheres, wheres
    for where in ("stack up", "stack status"):  # every component's page, in both
        shown = {p.url for p in stack.printed if p.where == where}
        mains = {f"http://127.0.0.1:{stack.ports[n]}" for n in COMPONENTS if n != "otel-collector"}
        assert mains <= shown, (where, mains - shown)

    for old in SHOTS.glob("*.png"):
        old.unlink()
    broken: list[str] = []
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=chromium, args=["--no-sandbox", "--disable-gpu", "--no-first-run"]
        )
        try:
            page = browser.new_page(viewport={"width": 1280, "height": 800})
            for index, (url, wheres_of) in enumerate(sorted(by_url.items())):
                # As a browser opens a page: no key, but where `stack up` says the API wants
                # one ("required on /api/*"), sent as its curl example sends it.
                parts = urlsplit(url)
                keyed = parts.port == stack.ports["api"] and parts.path.startswith("/api/")
                page.set_extra_http_headers({"X-API-Key": stack.key} if keyed else {})
                problem = open_page(page, url, SHOTS / f"{index:02d}.png")
                if problem:
                    broken.append(f"{url} ({', '.join(sorted(set(wheres_of)))}): {problem}")
            # What a broken page looks like is caught: a 404, and a UI path Jaeger answers
            # with its root page (it serves index.html for any path it does not know).
            api, jaeger = (f"http://127.0.0.1:{stack.ports[n]}" for n in ("api", "jaeger"))
            for url in (f"{api}/no-such-page", f"{jaeger}/search"):
                assert open_page(page, url, SHOTS / "broken.png"), url
        finally:
            browser.close()
    (SHOTS / "index.json").write_text(json.dumps(sorted(by_url), indent=1))
    assert not broken, "\n".join(broken)


def open_page(page: object, url: str, shot: Path) -> str | None:
    """What is wrong with `url` in the browser, or None: a status other than 200, error text
    on the page, an API answer that is an error."""
    from playwright.sync_api import Page

    assert isinstance(page, Page)
    page.goto("about:blank")  # a fresh load, even where only the #fragment differs
    response = page.goto(url, wait_until="load", timeout=20_000)
    page.wait_for_timeout(1_500)  # single-page apps render after load
    page.screenshot(path=str(shot), full_page=False)
    if response is None or response.status != 200:
        return f"HTTP {response.status if response else 'no response'}"
    text = page.inner_text("body")
    if "json" in (response.headers.get("content-type") or ""):
        body = json.loads(response.text())
        if isinstance(body, dict) and body.get("status") == "error":
            return f"API error: {body.get('error')}"
        return None
    if not text.strip():
        return "blank page"
    if page.title() == JAEGER_PAGE and urlsplit(url).path not in ("", "/"):
        return "Jaeger's root page, for a path of its missing UI"
    if match := ERROR_TEXT.search(text):
        return f"shows {match.group(0)!r}"
    return None
