"""/docs and /redoc render in a browser with no network beyond this server: their scripts
come from the package (fastapi-offline), not a CDN, and the pages' own policy refuses what
their scripts would fetch from elsewhere (ReDoc's sidebar credit)."""

from __future__ import annotations

import contextlib

import pytest
from selenium.common.exceptions import TimeoutException
from selenium.webdriver.common.by import By
from selenium.webdriver.support.ui import WebDriverWait

from tests.browser.conftest import WAIT_SECONDS, Browser, PageServer

# Whatever is not this server is blocked, as it would be offline: Chrome's patterns cannot
# say "not 127.0.0.1", so every other host a docs page is known to load from is listed.
BLOCKED = [
    "*cdn.jsdelivr.net*",
    "*unpkg.com*",
    "*fonts.googleapis.com*",
    "*fonts.gstatic.com*",
    "*cdnjs.cloudflare.com*",
    "*fastapi.tiangolo.com*",
]
# Not blocked here, so that the page's own policy is what refuses it (a block by the test
# comes first in Chrome, and then the policy is never asked): ReDoc's sidebar credit.
REDOC_CREDIT = "https://cdn.redoc.ly/redoc/logo-mini.svg"


# Each page records what its Content-Security-Policy refused, from before its own scripts
# run (a report, not an event: an image refused before it is in the document raises no
# event the document hears).
_RECORD_REFUSALS = (
    "window.__refused = [];"
    "new ReportingObserver((reports) => reports.forEach("
    " (report) => window.__refused.push(report.body.blockedURL)),"
    " {types: ['csp-violation'], buffered: true}).observe();"
)


@pytest.fixture
def offline(driver: Browser) -> Browser:
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": BLOCKED})
    added = driver.execute_cdp_cmd(
        "Page.addScriptToEvaluateOnNewDocument", {"source": _RECORD_REFUSALS}
    )
    yield driver
    driver.execute_cdp_cmd("Page.removeScriptToEvaluateOnNewDocument", added)
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


def _asked_for(driver: Browser) -> list[str]:
    """Every resource the page asked for: scripts, styles, fetched documents, images."""
    names: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource').map((entry) => entry.name)"
    )
    return names


@pytest.mark.parametrize(
    ("path", "rendered"),
    [("/docs", ".swagger-ui .opblock"), ("/redoc", "[data-section-id] h2, .api-content h2")],
)
def test_the_api_docs_render_from_this_server_alone(
    offline: Browser, page_server: PageServer, path: str, rendered: str
) -> None:
    offline.get(page_server.base_url + path)
    WebDriverWait(offline, WAIT_SECONDS * 3, poll_frequency=0.1).until(
        lambda d: len(d.find_elements(By.CSS_SELECTOR, rendered)) > 0
    )
    asked = _asked_for(offline)
    assert any(url.startswith(page_server.base_url) for url in asked), "its scripts, here"
    # Anything from elsewhere (ReDoc's sidebar credit, an image from its maker's site) was
    # refused by the page's own policy, before any connection: not only by this test's block.
    elsewhere = {url for url in asked if not url.startswith(page_server.base_url)}

    def all_refused(d: Browser) -> bool:
        return elsewhere <= set(d.execute_script("return window.__refused"))

    with contextlib.suppress(TimeoutException):  # reports arrive a little after
        WebDriverWait(offline, WAIT_SECONDS, poll_frequency=0.1).until(all_refused)
    assert all_refused(offline), (elsewhere, offline.execute_script("return window.__refused"))
    if path == "/redoc":
        assert REDOC_CREDIT in elsewhere
    if path == "/docs":
        text = offline.find_element(By.CSS_SELECTOR, ".swagger-ui").text
        assert "Remember something about a user" in text
