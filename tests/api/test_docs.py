"""The API as documented: readable operation ids, a summary and an example everywhere, the
catalogue's words as enums, a page for every problem type, docs with no CDN, / and favicon."""

from __future__ import annotations

import re
from typing import Any

import pytest
from fastapi.testclient import TestClient

from memory_store.api.openapi import SUMMARIES, problem_types
from memory_store.api.problem_pages import EXPLANATIONS
from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer


@pytest.fixture
def document(client: TestClient) -> dict[str, Any]:
    response = client.get("/openapi.json")
    assert response.status_code == 200
    body: dict[str, Any] = response.json()
    return body


def operations(document: dict[str, Any]) -> list[tuple[str, str, dict[str, Any]]]:
    return [
        (method.upper(), path, operation)
        for path, methods in document["paths"].items()
        for method, operation in methods.items()
    ]


def test_operation_ids_read_as_method_names(document: dict[str, Any]) -> None:
    ids = [operation["operationId"] for _, _, operation in operations(document)]
    assert len(ids) == len(set(ids))
    for ident in ids:
        assert re.fullmatch(r"[a-z][a-z_]*[a-z]", ident), ident
        assert "_v1_" not in ident and not ident.endswith(("_get", "_post", "_delete")), ident
    assert {"write_memory", "list_memories", "forget_memory", "verify_audit_trail"} <= set(ids)


def test_every_operation_has_a_written_summary_a_description_and_examples(
    document: dict[str, Any],
) -> None:
    for method, path, operation in operations(document):
        where = f"{method} {path}"
        assert operation["summary"] == SUMMARIES[operation["operationId"]], where
        assert operation.get("description"), where
        body = operation.get("requestBody", {}).get("content", {})
        for media in body.values():
            assert "example" in media, where
        answered = [
            media
            for code, response in operation["responses"].items()
            if code.startswith("2")
            for media in response.get("content", {}).values()
        ]
        assert answered, where
        for media in answered:
            assert "example" in media, where


def test_every_problem_type_a_route_may_answer_has_an_example(document: dict[str, Any]) -> None:
    for method, path, operation in operations(document):
        for code, response in operation["responses"].items():
            media = response.get("content", {}).get("application/problem+json")
            if media is None:
                continue
            expected = {cls.type_slug for cls in problem_types() if cls.status == int(code)}
            assert set(media["examples"]) == expected, f"{method} {path} {code}"
            for example in media["examples"].values():
                assert example["value"]["status"] == int(code)


def test_purpose_and_category_are_enums_of_the_catalogue(
    document: dict[str, Any], runtime: Runtime
) -> None:
    purposes, categories = sorted(runtime.catalogue.purposes), sorted(runtime.catalogue.categories)
    write = document["paths"]["/v1/users/{user_id}/memories"]["post"]
    (purpose,) = [p for p in write["parameters"] if p["name"] == "purpose"]
    assert purpose["schema"]["enum"] == purposes
    create = document["components"]["schemas"]["MemoryCreate"]
    assert create["properties"]["category"]["enum"] == categories
    consent = document["paths"]["/v1/me/consents/{purpose}/{category}"]["put"]
    enums = {p["name"]: p["schema"].get("enum") for p in consent["parameters"] if p["in"] == "path"}
    assert enums == {"purpose": purposes, "category": categories}


def test_the_same_values_are_accepted_and_others_refused_as_before(
    client: TestClient, assistant_token: str
) -> None:
    ok = client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "likes jazz", "category": "interests"},
        headers=bearer(assistant_token),
    )
    assert ok.status_code == 201, ok.text
    unknown = client.post(
        "/v1/users/alice/memories",
        params={"purpose": PURPOSE},
        json={"content": "likes jazz", "category": "hobbies"},
        headers=bearer(assistant_token),
    )
    assert_problem(unknown, 422, "unknown-category")


def test_every_problem_type_explains_itself() -> None:
    assert {cls.type_slug for cls in problem_types()} | {"internal-error"} <= set(EXPLANATIONS)


def test_a_problem_uri_answers_a_page_for_people_and_json_for_clients(
    client: TestClient,
) -> None:
    page = client.get("/problems/consent-required", headers={"Accept": "text/html,*/*"})
    assert page.status_code == 200
    assert page.headers["content-type"].startswith("text/html")
    assert "<h1>The user has not consented" in page.text
    assert "What to do" in page.text
    data = client.get("/problems/consent-required", headers={"Accept": "application/json"})
    assert data.headers["content-type"].startswith("application/json")
    assert data.json()["status"] == 403
    assert data.json()["type"] == "/problems/consent-required"
    index = client.get("/problems/", headers={"Accept": "text/html"})
    assert 'href="/problems/rate-limited"' in index.text
    missing = client.get("/problems/no-such-thing")
    assert missing.status_code == 404


def test_a_refusals_type_links_to_its_page(client: TestClient) -> None:
    refused = client.get("/v1/me")
    assert_problem(refused, 401, "unauthenticated")
    assert client.get(refused.json()["type"]).status_code == 200


def test_docs_load_their_assets_from_this_server(client: TestClient) -> None:
    for path in ("/docs", "/redoc"):
        page = client.get(path)
        assert page.status_code == 200
        sources = re.findall(r'(?:src|href)="([^"]+)"', page.text)
        assert sources, path
        for source in sources:
            assert source.startswith("/"), f"{path} loads {source}"
            assert client.get(source).status_code == 200, source
        # And the page's policy lets it load nothing from elsewhere, whatever its scripts ask.
        policy = dict(
            directive.strip().split(" ", 1)
            for directive in page.headers["content-security-policy"].split(";")
        )
        assert policy["default-src"] == "'self'" and policy["img-src"] == "'self' data:"
        assert "http" not in page.headers["content-security-policy"]
    assert '"validatorUrl": null' in client.get("/docs").text  # no badge from swagger.io


def test_the_root_leads_to_the_users_page_and_there_is_a_favicon(client: TestClient) -> None:
    root = client.get("/", follow_redirects=False)
    assert root.status_code in (302, 307, 308)
    assert root.headers["location"] == "/ui/"
    icon = client.get("/favicon.ico")
    assert icon.status_code == 200
    assert icon.headers["content-type"].startswith("image/svg+xml")
    assert 'rel="icon"' in client.get("/ui/").text
