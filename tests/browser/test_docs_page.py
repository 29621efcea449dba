"""/docs and /redoc render in a browser with no network beyond this server: their scripts
come from the package (fastapi-offline), not a CDN."""

from __future__ import annotations

import pytest
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
    "*cdn.redoc.ly*",
]


@pytest.fixture
def offline(driver: Browser) -> Browser:
    driver.execute_cdp_cmd("Network.enable", {})
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": BLOCKED})
    yield driver
    driver.execute_cdp_cmd("Network.setBlockedURLs", {"urls": []})


def _code_and_data(driver: Browser) -> list[str]:
    """What the page loaded that it needs to work: scripts, styles, fetched documents. (ReDoc's
    sidebar credit is an image from its own site: blocked, it leaves an empty corner.)"""
    names: list[str] = driver.execute_script(
        "return performance.getEntriesByType('resource')"
        "  .filter((entry) => entry.initiatorType !== 'img')"
        "  .map((entry) => entry.name)"
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
    loaded = _code_and_data(offline)
    assert loaded, "the page loaded its scripts"
    assert all(url.startswith(page_server.base_url) for url in loaded), loaded
    if path == "/docs":
        text = offline.find_element(By.CSS_SELECTOR, ".swagger-ui").text
        assert "Remember something about a user" in text
