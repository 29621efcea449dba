"""The user page (/ui/) in a real browser: sign in, see, search, edit, forget, consent, pause,
access log, export and forget everything, each checked against the API as well."""

from __future__ import annotations

import json
import re
from datetime import date, datetime, timedelta
from pathlib import Path

from selenium.webdriver.common.by import By
from selenium.webdriver.common.keys import Keys
from selenium.webdriver.support.ui import Select

from tests.browser.conftest import PURPOSE, SEED, PageServer, SeededUser, UserPage


def assert_url_is_clean(page: UserPage) -> None:
    """Nothing the user did ends up in the page's address (no contents, no search text)."""
    assert page.driver.current_url == page.url


# -- the page itself -----------------------------------------------------------------------


def test_ui_is_served_same_origin_with_strict_security_headers(page_server: PageServer) -> None:
    with page_server.client() as client:
        redirect = client.get("/ui", follow_redirects=False)
        assert redirect.status_code in (307, 308)
        assert redirect.headers["location"].endswith("/ui/")
        for path in ("/ui/", "/ui/app.js", "/ui/app.css"):
            response = client.get(path)
            assert response.status_code == 200, path
            assert response.headers["content-security-policy"] == (
                "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
                "connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'"
            )
            assert response.headers["x-content-type-options"] == "nosniff"
            assert response.headers["referrer-policy"] == "no-referrer"
            assert response.headers["x-frame-options"] == "DENY"
        html = client.get("/ui/").text
    assert "<script>" not in html and " style=" not in html, "no inline script or style"
    assert not re.search(r"(src|href)=\"(https?:)?//", html), "no external resources"
    with page_server.client() as client:
        paths = client.get("/openapi.json").json()["paths"]
    assert not [path for path in paths if path.startswith("/ui")], "the page is not API"


def test_a_bad_token_is_refused_in_plain_words(page: UserPage, page_server: PageServer) -> None:
    page.screenshot("01-signin")
    page.sign_in("mst_not-a-real-token")
    error = page.visible("error")
    page.wait_text("error", "This token was not accepted")
    assert error.text.startswith("Sign-in failed.")
    assert "revoked or has expired" in error.text
    assert "/problems/" not in error.text and "bearer" not in error.text.lower()
    assert page.by_id("view-signin").is_displayed()
    assert not page.by_id("views-nav").is_displayed()
    assert page.driver.execute_script("return window.sessionStorage.length") == 0
    page.screenshot("02-signin-bad-token")


def test_sign_in_keeps_the_token_in_the_tab_and_sign_out_forgets_it(
    page: UserPage, user: SeededUser
) -> None:
    # The keyboard alone: type the token and press Enter.
    page.visible("token-input").send_keys(user.token, Keys.ENTER)
    page.visible("view-memories")
    page.wait_text("session-user", user.user_id)
    stored = page.driver.execute_script("return Object.values(window.sessionStorage)")
    assert stored == [user.token]
    # A reload keeps the session (same tab) ...
    page.driver.refresh()
    page.visible("view-memories")
    page.until(lambda d: "prefers window seats" in page.by_id("memory-groups").text)
    # ... and signing out forgets the token and everything shown.
    page.by_id("sign-out").click()
    page.visible("view-signin")
    page.wait_status("Signed out")
    assert page.driver.execute_script("return window.sessionStorage.length") == 0
    assert page.by_id("memory-groups").text == ""
    assert page.console_errors() == []


# -- memories ------------------------------------------------------------------------------


def test_memories_are_grouped_by_category_and_searchable(page: UserPage, user: SeededUser) -> None:
    page.sign_in_and_load(user.token)
    assert page.groups() == {
        "preferences": ["likes green tea", "prefers window seats"],
        "work": ["works on the Apollo project"],
        "location": ["lives in Lisbon"],
        "health": ["is allergic to penicillin"],
    }
    # The groups' headings count; no sentence above them repeats it.
    assert not page.by_id("memories-summary").is_displayed()
    health = page.css('#memory-groups .memory-group[data-category="health"] h2')[0]
    assert "SENSITIVE" in health.text.upper()
    item = page.memory_item(user.memories["lives in Lisbon"]["id"])
    assert item.get_attribute("data-version") == "1"
    assert "Version" not in item.text and "Edited" not in item.text
    for shown in (".meta-created time", ".meta-expires time"):
        assert item.find_element(By.CSS_SELECTOR, shown).text != ""
    # One line per memory: icon buttons, named for screen readers.
    buttons = item.find_elements(By.CSS_SELECTOR, ".memory-actions button")
    assert [b.get_attribute("title") for b in buttons] == ["Edit", "History", "Forget"]
    assert [
        b.find_element(By.CSS_SELECTOR, ".button-label").get_attribute("textContent")
        for b in buttons
    ] == ["Edit", "History", "Forget"]
    assert item.size["height"] < 80, "a compact row, not a card of buttons"
    page.screenshot("03-memories")

    search = page.by_id("search-input")
    search.send_keys("window", Keys.ENTER)
    page.until(lambda d: page.groups() == {"preferences": ["prefers window seats"]})
    page.wait_text("memories-summary", "1 memory matches your search")
    assert_url_is_clean(page)
    page.screenshot("04-search")

    page.by_id("search-clear").click()
    page.until(lambda d: sum(len(v) for v in page.groups().values()) == len(SEED))
    assert page.console_errors() == []


def test_editing_in_place_saves_with_if_match_and_shows_the_history(
    page: UserPage, user: SeededUser
) -> None:
    original = user.memories["likes green tea"]
    page.sign_in_and_load(user.token)
    item = page.memory_item(original["id"])
    item.find_element(By.CSS_SELECTOR, ".edit-button").click()
    content = item.find_element(By.CSS_SELECTOR, "textarea.edit-content")
    assert page.driver.switch_to.active_element == content, "the editor takes the focus"
    content.clear()
    content.send_keys("likes jasmine tea")
    Select(item.find_element(By.CSS_SELECTOR, "select.edit-category")).select_by_value("interests")
    expires = item.find_element(By.CSS_SELECTOR, "input.edit-expires")
    old_expiry = datetime.fromisoformat(original["expires_at"])
    assert expires.get_attribute("max") == expires.get_attribute("value")
    earlier = (date.today() + timedelta(days=30)).isoformat()
    page.driver.execute_script("arguments[0].value = arguments[1]", expires, earlier)
    page.screenshot("05-edit")
    item.find_element(By.CSS_SELECTOR, ".save-button").click()
    page.wait_status("Saved. The memory is now at version 2.")

    assert page.groups()["interests"] == ["likes jasmine tea"]
    assert page.groups()["preferences"] == ["prefers window seats"]
    stored = user.own("likes green tea")
    assert (stored["content"], stored["category"], stored["version"]) == (
        "likes jasmine tea",
        "interests",
        2,
    )
    new_expiry = datetime.fromisoformat(stored["expires_at"])
    assert new_expiry < old_expiry
    assert abs((new_expiry.date() - date.fromisoformat(earlier)).days) <= 1

    item = page.memory_item(original["id"])
    assert item.get_attribute("data-version") == "2"
    assert item.find_element(By.CSS_SELECTOR, ".meta-edited").is_displayed()
    item.find_element(By.CSS_SELECTOR, ".history-button").click()
    page.until(lambda d: item.find_elements(By.CSS_SELECTOR, ".history-list li"))
    versions = item.find_elements(By.CSS_SELECTOR, ".history-list li")
    assert [v.get_attribute("data-version") for v in versions] == ["1"]
    assert "likes green tea" in versions[0].text and "Preferences" in versions[0].text
    assert item.find_element(By.CSS_SELECTOR, ".history-button").get_attribute("aria-expanded") == (
        "true"
    )
    assert_url_is_clean(page)
    page.screenshot("06-history")
    assert page.console_errors() == []


def test_an_edit_of_a_memory_changed_elsewhere_is_refused_with_412(
    page: UserPage, user: SeededUser
) -> None:
    memory = user.memories["works on the Apollo project"]
    page.sign_in_and_load(user.token)
    item = page.memory_item(memory["id"])
    item.find_element(By.CSS_SELECTOR, ".edit-button").click()
    content = item.find_element(By.CSS_SELECTOR, "textarea.edit-content")

    # Meanwhile, somewhere else (another tab, another device) it changes.
    elsewhere = user.me(
        "PATCH",
        f"/memories/{memory['id']}",
        json={"content": "works on the Gemini project"},
        headers={"If-Match": '"1"'},
    )
    assert elsewhere.status_code == 200, elsewhere.text

    content.clear()
    content.send_keys("works on the Artemis project")
    item.find_element(By.CSS_SELECTOR, ".save-button").click()
    error = item.find_element(By.CSS_SELECTOR, ".edit-error")
    page.until(lambda d: "changed elsewhere" in error.text)
    assert "reload" in error.text.lower()
    page.screenshot("07-stale-edit")
    assert user.own("works on the Apollo project")["content"] == "works on the Gemini project"

    reload_button = item.find_element(By.CSS_SELECTOR, ".reload-button")
    assert reload_button.is_displayed()
    reload_button.click()
    page.until(lambda d: page.groups().get("work") == ["works on the Gemini project"])
    fresh = page.memory_item(memory["id"])
    assert fresh.get_attribute("data-version") == "2"


def test_forgetting_one_memory_then_a_category_asks_first(page: UserPage, user: SeededUser) -> None:
    lisbon = user.memories["lives in Lisbon"]
    page.sign_in_and_load(user.token)
    forget = page.memory_item(lisbon["id"]).find_element(By.CSS_SELECTOR, ".forget-button")

    # Cancel leaves it.
    forget.click()
    page.wait_dialog(True)
    assert "lives in Lisbon" in page.by_id("confirm-message").text
    page.screenshot("08-forget-confirm", full_page=False)
    page.by_id("confirm-cancel").click()
    page.wait_dialog(False)
    page.wait_status("Nothing was forgotten.")
    assert user.me("GET", f"/memories/{lisbon['id']}").status_code == 200
    # So does Escape.
    forget.click()
    page.wait_dialog(True)
    page.by_id("confirm-cancel").send_keys(Keys.ESCAPE)
    page.wait_dialog(False)
    assert "location" in page.groups()

    forget.click()
    page.wait_dialog(True)
    page.by_id("confirm-ok").click()
    page.wait_status("The memory is forgotten.")
    assert "location" not in page.groups()
    assert user.me("GET", f"/memories/{lisbon['id']}").status_code == 404

    # A whole category.
    page.css('.forget-category[data-category="preferences"]')[0].click()
    page.wait_dialog(True)
    assert "Preferences" in page.by_id("confirm-title").text
    page.by_id("confirm-ok").click()
    page.wait_status("Forgot 2 memories in Preferences.")
    assert set(page.groups()) == {"work", "health"}
    left = user.me("GET", "/memories", params={"category": "preferences"}).json()
    assert left["items"] == []
    assert user.assistant_contents() == {
        "works on the Apollo project",
        "is allergic to penicillin",
    }


# -- consent and pause ---------------------------------------------------------------------


def test_consent_switches_change_what_the_assistant_sees(page: UserPage, user: SeededUser) -> None:
    page.sign_in_and_load(user.token)
    page.go("consents")
    page.open_purpose(PURPOSE)
    location = page.visible(f"consent-{PURPOSE}-location")
    health_row = page.css(
        f'.purpose-card[data-purpose="{PURPOSE}"] li[data-category="health"] label'
    )[0]
    assert "SENSITIVE" in health_row.text.upper(), "sensitive is said in words"
    assert page.by_id(f"consent-{PURPOSE}-health").is_selected(), "the opt-in shows"
    assert not page.by_id("consent-analytics-health").is_selected()
    label = page.driver.find_element(
        By.CSS_SELECTOR, f'label[for="consent-{PURPOSE}-location"] .state-text'
    )
    assert label.text == "Allowed (default)"
    assert location.is_selected()
    assert "lives in Lisbon" in user.assistant_contents()

    location.click()
    page.wait_status("Personalization may no longer use Location.")
    assert label.text == "Not allowed"
    assert not location.is_selected()
    seen = user.assistant_contents()
    assert "lives in Lisbon" not in seen and "prefers window seats" in seen

    page.until(lambda d: "Location" in page.by_id("consent-history-body").text)
    latest = page.css("#consent-history-body tr")[0].text
    assert "Location" in latest and "Withdrawn" in latest and "This page" in latest
    history = user.me("GET", "/consents/history").json()["items"]
    assert (history[0]["category"], history[0]["granted"], history[0]["channel"]) == (
        "location",
        False,
        "web",
    )
    page.screenshot("09-consents")

    location.click()
    page.wait_status("Personalization may now use Location.")
    assert "lives in Lisbon" in user.assistant_contents()
    assert page.console_errors() == []


def test_pausing_memory_leaves_the_assistant_nothing(page: UserPage, user: SeededUser) -> None:
    page.sign_in_and_load(user.token)
    page.go("consents")
    switch = page.visible("memory-enabled")
    assert switch.is_selected()
    assert not page.by_id("paused-banner").is_displayed()

    switch.click()
    page.wait_status("Memory is paused")
    page.visible("paused-banner")
    assert user.me("GET", "/settings").json()["memory_enabled"] is False
    response = user.assistant_list()
    assert response.status_code == 200 and response.json()["items"] == []
    page.screenshot("10-paused")

    # The user still sees everything while paused.
    page.go("memories")
    page.until(lambda d: sum(len(v) for v in page.groups().values()) == len(SEED))
    assert page.by_id("paused-banner").is_displayed()

    page.go("consents")
    page.visible("memory-enabled").click()
    page.wait_status("Memory is on again")
    page.until(lambda d: not page.by_id("paused-banner").is_displayed())
    assert len(user.assistant_contents()) == len(SEED)


def test_one_switch_per_purpose_allows_or_stops_it_for_every_ordinary_category(
    page: UserPage, user: SeededUser
) -> None:
    page.sign_in_and_load(user.token)
    page.go("consents")
    switches = page.css('.purpose-card > .switch-field input[role="switch"]')
    assert [s.get_attribute("data-purpose") for s in switches] == [
        "personalization",
        "analytics",
        "model_improvement",
    ]
    assert not any(box.is_displayed() for box in page.css(".consent-list input")), (
        "the categories one by one are folded away"
    )
    analytics = page.by_id("purpose-analytics")
    assert not analytics.is_selected()
    assert user.assistant_list(purpose="analytics").json()["items"] == []

    analytics.click()
    page.wait_status("Analytics may now use your ordinary categories.")
    seen = {item["content"] for item in user.assistant_list(purpose="analytics").json()["items"]}
    assert seen == {content for content, category in SEED if category != "health"}
    page.screenshot("09b-purposes")

    analytics.click()
    page.wait_status("Analytics may no longer use any of your memories.")
    assert user.assistant_list(purpose="analytics").json()["items"] == []
    assert page.console_errors() == []


def test_memories_the_assistant_may_not_use_now_carry_a_sign_saying_why(
    page: UserPage, user: SeededUser
) -> None:
    withdrawn = user.me("PUT", f"/consents/{PURPOSE}/location", json={"granted": False})
    assert withdrawn.status_code == 200, withdrawn.text
    page.sign_in_and_load(user.token)
    lisbon = page.memory_item(user.memories["lives in Lisbon"]["id"])
    assert "NOT USED NOW" in lisbon.text.upper()
    assert "not allowed any purpose to use Location" in lisbon.text
    tea = page.memory_item(user.memories["likes green tea"]["id"])
    assert "NOT USED NOW" not in tea.text.upper()
    assert "lives in Lisbon" not in user.assistant_contents()

    paused = user.me("PATCH", "/settings", json={"memory_enabled": False})
    assert paused.status_code == 200, paused.text
    page.driver.refresh()
    page.until(
        lambda d: (
            "Memory is paused." in page.memory_item(user.memories["likes green tea"]["id"]).text
        )
    )
    page.screenshot("10b-not-used-now")


# -- access log ----------------------------------------------------------------------------


def test_the_access_log_shows_the_assistants_reads(page: UserPage, user: SeededUser) -> None:
    assert user.assistant_list().status_code == 200
    assert user.assistant_list(q="tea").status_code == 200
    page.sign_in_and_load(user.token)
    page.go("access")
    page.until(lambda d: "copilot (assistant)" in page.by_id("access-body").text)
    rows = [
        row for row in page.css("#access-body tr") if row.get_attribute("data-role") == "assistant"
    ]
    texts = [row.text for row in rows]
    assert any("Listed memories: 5 memories" in t and "Personalization" in t for t in texts)
    assert any("Searched memories" in t for t in texts)
    assert not any("memory." in t for t in page.by_id("access-body").text.splitlines())
    assert all("Allowed" in t for t in texts)
    page.screenshot("11-access-log")

    history = user.me("GET", f"/memories/{user.memories['lives in Lisbon']['id']}/history")
    assert history.status_code == 200
    page.go("memories")
    page.go("access")
    page.until(
        lambda d: "Looked at the earlier versions of a memory" in page.by_id("access-body").text
    )

    page.by_id("access-hide-own").click()
    page.until(
        lambda d: all(
            row.get_attribute("data-role") == "assistant" for row in page.css("#access-body tr")
        )
    )


# -- export and forget everything ----------------------------------------------------------


def test_the_export_downloads_as_a_json_file(
    page: UserPage, user: SeededUser, downloads: Path
) -> None:
    page.sign_in_and_load(user.token)
    page.go("data")
    page.by_id("export-button").click()
    page.wait_status("Your export is ready: 5 memories.")
    link = page.visible("export-link")
    assert (link.get_attribute("href") or "").startswith("blob:")
    assert link.get_attribute("download") == "memory-store-export.json"
    target = downloads / "memory-store-export.json"
    page.until(lambda d: target.is_file() and target.stat().st_size > 0)
    document = json.loads(target.read_text(encoding="utf-8"))
    assert document["format"] == "memory-store-export/1"
    assert document["user_id"] == user.user_id
    assert {m["content"] for m in document["memories"]} == {content for content, _ in SEED}
    assert_url_is_clean(page)
    page.screenshot("12-export")


def test_forgetting_everything_shows_the_receipt_and_ends_the_token(
    page: UserPage, user: SeededUser
) -> None:
    page.sign_in_and_load(user.token)
    page.go("data")
    page.by_id("forget-all").click()
    page.wait_dialog(True)
    assert page.by_id("confirm-ok").text == "Forget everything"
    page.screenshot("13-forget-everything-confirm", full_page=False)
    page.by_id("confirm-ok").click()
    page.visible("view-receipt")
    receipt = page.by_id("receipt").text
    assert user.user_id in receipt
    assert re.search(r"Memories erased\s+5", receipt)
    assert re.search(r"Data key destroyed\s+Yes", receipt)
    assert not page.by_id("views-nav").is_displayed()
    assert page.driver.execute_script("return window.sessionStorage.length") == 0
    receipt_link = page.by_id("receipt-link")
    assert (receipt_link.get_attribute("href") or "").startswith("blob:")
    page.screenshot("14-receipt")

    assert user.me("GET", "/memories").status_code == 401
    response = user.assistant_list()
    assert response.status_code == 200 and response.json()["items"] == []

    page.by_id("receipt-done").click()
    page.visible("view-signin")
    page.sign_in(user.token)
    page.wait_text("error", "This token was not accepted")
