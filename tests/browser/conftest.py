"""Browser tests of the user page (/ui/): the real app served by uvicorn on a free port, driven
by headless Chromium through Selenium.

Needs `pip install -e '.[dev]'` (selenium) and Debian's `chromium` and `chromium-driver`
(`apt-get install chromium chromium-driver`); without them every browser test is skipped.
"""

from __future__ import annotations

import base64
import itertools
import os
import shutil
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import Runtime, open_runtime
from tests.live_server import free_port
from tests.postgres import Cluster

INSTALL_HINT = (
    "browser tests need selenium (pip install -e '.[dev]') and Chromium with its driver "
    "(apt-get install chromium chromium-driver)"
)
CHROMIUM = os.environ.get("MEMORY_STORE_TEST_CHROMIUM", "/usr/bin/chromium")
CHROMEDRIVER = os.environ.get("MEMORY_STORE_TEST_CHROMEDRIVER", "/usr/bin/chromedriver")

# Selenium Manager must never try to download a browser or driver: this machine is offline.
os.environ["SE_OFFLINE"] = "true"

try:
    from selenium import webdriver
    from selenium.common.exceptions import WebDriverException
    from selenium.webdriver.chrome.service import Service
    from selenium.webdriver.common.by import By
    from selenium.webdriver.remote.webelement import WebElement
    from selenium.webdriver.support import expected_conditions as ec
    from selenium.webdriver.support.ui import WebDriverWait
except ImportError:  # pragma: no cover - depends on the machine
    pytest.skip(f"selenium is not installed: {INSTALL_HINT}", allow_module_level=True)

if not (Path(CHROMIUM).is_file() and Path(CHROMEDRIVER).is_file()):  # pragma: no cover
    pytest.skip(f"{CHROMIUM} or {CHROMEDRIVER} is missing: {INSTALL_HINT}", allow_module_level=True)

Browser = webdriver.Chrome
PURPOSE = "personalization"
ROOT = Path(__file__).resolve().parents[2]
# `make screenshots` sets MEMORY_STORE_SCREENSHOTS=docs/screenshots: the README's pictures.
SCREENSHOTS = Path(
    os.environ.get("MEMORY_STORE_SCREENSHOTS", ROOT / "test-artifacts" / "screenshots")
).absolute()
WAIT_SECONDS = 10.0

# What every test user starts with: (content, category). Written oldest first, so each group
# lists them newest first. The health memory needs the user's explicit opt-in first.
SEED: tuple[tuple[str, str], ...] = (
    ("prefers window seats", "preferences"),
    ("likes green tea", "preferences"),
    ("works on the Apollo project", "work"),
    ("lives in Lisbon", "location"),
    ("is allergic to penicillin", "health"),
)


# -- the server --------------------------------------------------------------------------------


@dataclass
class PageServer:
    base_url: str
    runtime: Runtime
    assistant_token: str

    def client(self) -> httpx.Client:
        return httpx.Client(base_url=self.base_url, timeout=10.0)


@pytest.fixture(scope="session")
def page_server(
    tmp_path_factory: pytest.TempPathFactory, pg_cluster: Cluster | None
) -> Iterator[PageServer]:
    """The real app under uvicorn, in a background thread, with its own data dir (and, on
    the PostgreSQL run, its own schemas)."""
    data_dir = tmp_path_factory.mktemp("browser") / "var"
    urls = pg_cluster.fresh_urls() if pg_cluster is not None else {}
    settings = Settings(
        data_dir=data_dir,
        log_format="json",
        retention_sweep_seconds=0,
        database_url=urls.get("database"),
        keystore_url=urls.get("keystore"),
        audit_database_url=urls.get("audit"),
    )
    runtime = open_runtime(settings)
    app = create_app(settings, runtime)
    port = free_port()
    config = uvicorn.Config(
        app, host="127.0.0.1", port=port, log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, name="uvicorn-browser-tests", daemon=True)
    thread.start()
    deadline = time.monotonic() + WAIT_SECONDS
    while not server.started:
        if not thread.is_alive() or time.monotonic() > deadline:
            raise RuntimeError("the app did not start for the browser tests")
        time.sleep(0.02)
    assistant = runtime.tokens.issue(role=Role.assistant, name="copilot").token
    yield PageServer(f"http://127.0.0.1:{port}", runtime, assistant)
    server.should_exit = True
    thread.join(timeout=WAIT_SECONDS)


# -- a user with memories ------------------------------------------------------------------------


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


@dataclass
class SeededUser:
    user_id: str
    token: str
    server: PageServer
    memories: dict[str, dict[str, Any]] = field(default_factory=dict)

    def assistant_list(self, **params: Any) -> httpx.Response:
        with self.server.client() as client:
            return client.get(
                f"/v1/users/{self.user_id}/memories",
                params={"purpose": PURPOSE, **params},
                headers=bearer(self.server.assistant_token),
            )

    def assistant_contents(self) -> set[str]:
        response = self.assistant_list()
        assert response.status_code == 200, response.text
        return {item["content"] for item in response.json()["items"]}

    def me(
        self, method: str, path: str, headers: dict[str, str] | None = None, **kwargs: Any
    ) -> httpx.Response:
        """A call to /v1/me... with this user's token."""
        with self.server.client() as client:
            return client.request(
                method, f"/v1/me{path}", headers=bearer(self.token) | (headers or {}), **kwargs
            )

    def own(self, content: str) -> dict[str, Any]:
        """The memory (as the API now has it) that was seeded with this content."""
        response = self.me("GET", f"/memories/{self.memories[content]['id']}")
        assert response.status_code == 200, response.text
        body: dict[str, Any] = response.json()
        return body


_user_numbers = itertools.count(1)


@pytest.fixture
def user(page_server: PageServer) -> SeededUser:
    """A fresh user (so tests never see each other's forgetting), with a user token and the
    SEED memories written by the assistant; the sensitive one after the user opted in."""
    user_id = f"user{next(_user_numbers)}@example.test"
    token = page_server.runtime.tokens.issue(role=Role.user, name="web", user_id=user_id).token
    seeded = SeededUser(user_id, token, page_server)
    opt_in = seeded.me("PUT", f"/consents/{PURPOSE}/health", json={"granted": True})
    assert opt_in.status_code == 200, opt_in.text
    with page_server.client() as client:
        for content, category in SEED:
            response = client.post(
                f"/v1/users/{user_id}/memories",
                params={"purpose": PURPOSE},
                json={"content": content, "category": category},
                headers=bearer(page_server.assistant_token),
            )
            assert response.status_code == 201, response.text
            seeded.memories[content] = response.json()
    return seeded


# -- the browser ---------------------------------------------------------------------------------


@pytest.fixture(scope="session")
def downloads(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("downloads")


@pytest.fixture(scope="session")
def driver(tmp_path_factory: pytest.TempPathFactory, downloads: Path) -> Iterator[Browser]:
    profile = tmp_path_factory.mktemp("chromium-profile")
    options = webdriver.ChromeOptions()
    options.binary_location = CHROMIUM
    for argument in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--no-first-run",
        "--lang=en-US",
        "--window-size=1280,900",
        f"--user-data-dir={profile}",
    ):
        options.add_argument(argument)
    options.add_experimental_option(
        "prefs",
        {
            "download.default_directory": str(downloads),
            "download.prompt_for_download": False,
            "download.directory_upgrade": True,
            "safebrowsing.enabled": False,
        },
    )
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    try:
        browser = webdriver.Chrome(options=options, service=Service(CHROMEDRIVER))
    except WebDriverException as exc:  # pragma: no cover - depends on the machine
        pytest.skip(f"Chromium would not start ({exc.msg}): {INSTALL_HINT}")
    browser.execute_cdp_cmd(
        "Browser.setDownloadBehavior", {"behavior": "allow", "downloadPath": str(downloads)}
    )
    yield browser
    browser.quit()


class UserPage:
    """The user page in the browser, with the few moves the tests need."""

    def __init__(self, driver: Browser, server: PageServer) -> None:
        self.driver = driver
        self.server = server
        self.url = f"{server.base_url}/ui/"

    # -- waiting and finding

    def wait(self, timeout: float = WAIT_SECONDS) -> WebDriverWait[Browser]:
        return WebDriverWait(self.driver, timeout, poll_frequency=0.05)

    def until(self, condition: Callable[[Browser], Any], timeout: float = WAIT_SECONDS) -> Any:
        return self.wait(timeout).until(condition)

    def by_id(self, element_id: str) -> WebElement:
        return self.driver.find_element(By.ID, element_id)

    def css(self, selector: str) -> list[WebElement]:
        return self.driver.find_elements(By.CSS_SELECTOR, selector)

    def visible(self, element_id: str) -> WebElement:
        element: WebElement = self.until(ec.visibility_of_element_located((By.ID, element_id)))
        return element

    def wait_text(self, element_id: str, text: str) -> None:
        self.until(ec.text_to_be_present_in_element((By.ID, element_id), text))

    def wait_status(self, text: str) -> None:
        self.wait_text("status", text)

    # -- screens

    def open(self) -> None:
        """A fresh page: no token kept from an earlier test."""
        self.driver.get(self.url)
        self.driver.execute_script("window.sessionStorage.clear()")
        self.driver.get(self.url)
        self.visible("token-input")

    def sign_in(self, token: str) -> None:
        field = self.visible("token-input")
        field.clear()
        field.send_keys(token)
        self.by_id("signin-button").click()

    def sign_in_and_load(self, token: str) -> None:
        self.sign_in(token)
        self.visible("view-memories")
        self.until(lambda d: self.by_id("memory-groups").get_attribute("data-loaded") == "true")

    def open_purpose(self, purpose: str) -> None:
        """Unfold a purpose's "Choose per category"."""
        details = self.visible(f"purpose-{purpose}-details")
        if details.get_attribute("open") is None:
            details.find_element(By.CSS_SELECTOR, "summary").click()
        self.visible(f"consent-{purpose}-preferences")

    def go(self, view: str) -> None:
        self.driver.find_element(By.CSS_SELECTOR, f'.nav-button[data-view="{view}"]').click()
        self.visible(f"view-{view}")

    # -- memories

    def groups(self) -> dict[str, list[str]]:
        """The memories shown, as category -> contents in page order (read in one go, so a
        re-render in between cannot leave a stale element)."""
        shown: dict[str, list[str]] = self.driver.execute_script(
            """
            const shown = {};
            for (const group of document.querySelectorAll('#memory-groups .memory-group')) {
              shown[group.dataset.category] = Array.from(
                group.querySelectorAll('.memory-content'), (node) => node.textContent);
            }
            return shown;
            """
        )
        return shown

    def memory_item(self, memory_id: str) -> WebElement:
        element: WebElement = self.until(
            ec.presence_of_element_located(
                (By.CSS_SELECTOR, f'#memory-groups li.memory[data-memory-id="{memory_id}"]')
            )
        )
        return element

    def dialog_open(self) -> bool:
        return bool(
            self.driver.execute_script("return document.getElementById('confirm-dialog').open")
        )

    def wait_dialog(self, is_open: bool) -> None:
        self.until(lambda d: self.dialog_open() == is_open)

    # -- evidence

    def screenshot(self, name: str, *, full_page: bool = True) -> Path:
        """The whole page (or, for a modal dialog, the viewport it sits in) to
        test-artifacts/screenshots/NAME.png."""
        SCREENSHOTS.mkdir(parents=True, exist_ok=True)
        path = SCREENSHOTS / f"{name}.png"
        if not full_page:
            self.driver.save_screenshot(str(path))
            return path
        metrics = self.driver.execute_cdp_cmd("Page.getLayoutMetrics", {})
        size = metrics.get("cssContentSize") or metrics["contentSize"]
        clip = {
            "x": 0,
            "y": 0,
            "width": max(1, int(size["width"])),
            "height": max(1, min(int(size["height"]), 5000)),
            "scale": 1,
        }
        shot = self.driver.execute_cdp_cmd(
            "Page.captureScreenshot",
            {"format": "png", "captureBeyondViewport": True, "clip": clip},
        )
        path.write_bytes(base64.b64decode(shot["data"]))
        return path

    def console_errors(self) -> list[str]:
        """Browser console errors, apart from the failed requests the tests cause on purpose."""
        entries = self.driver.get_log("browser")  # type: ignore[no-untyped-call]
        return [
            entry["message"]
            for entry in entries
            if entry["level"] == "SEVERE" and "Failed to load resource" not in entry["message"]
        ]


@pytest.fixture
def page(driver: Browser, page_server: PageServer, downloads: Path) -> UserPage:
    for leftover in downloads.iterdir():
        if leftover.is_file():
            leftover.unlink()
        else:
            shutil.rmtree(leftover)
    driver.get_log("browser")  # type: ignore[no-untyped-call]  # drop what earlier tests logged
    user_page = UserPage(driver, page_server)
    user_page.open()
    return user_page
