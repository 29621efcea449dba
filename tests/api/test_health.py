"""Operations endpoints: /healthz, /readyz and the OpenAPI document."""

from __future__ import annotations

from fastapi.testclient import TestClient

from memory_store.runtime import Runtime


def test_healthz_answers_ok(client: TestClient) -> None:
    response = client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


def test_readyz_is_ok_when_databases_and_key_file_answer(client: TestClient) -> None:
    assert client.get("/readyz").json() == {"status": "ok", "recall_lag": 0}


def test_readyz_is_503_when_the_key_file_becomes_unreadable(
    client: TestClient, runtime: Runtime
) -> None:
    key_file = runtime.settings.resolved_key_file()
    key_file.chmod(0o644)  # the provider refuses a key file others can read
    response = client.get("/readyz")
    assert response.status_code == 503
    assert response.json() == {"status": "unavailable"}


def test_a_write_while_the_key_file_is_unusable_is_503_and_stores_nothing(
    client: TestClient, runtime: Runtime, assistant_token: str
) -> None:
    runtime.settings.resolved_key_file().chmod(0o644)
    response = client.post(
        "/v1/users/alice/memories",
        params={"purpose": "personalization"},
        json={"content": "x", "category": "preferences"},
        headers={"Authorization": f"Bearer {assistant_token}"},
    )
    assert response.status_code == 503
    assert response.json()["type"] == "/problems/keys-unavailable"
    assert str(runtime.settings.data_dir) not in response.text
    assert runtime.keyring.count_by_version() == {}


def test_openapi_documents_every_v1_route_with_bearer_auth(client: TestClient) -> None:
    document = client.get("/openapi.json").json()
    paths = document["paths"]
    assert set(paths) >= {
        "/v1/users/{user_id}/memories",
        "/v1/users/{user_id}/memories/{memory_id}",
        "/v1/me/memories",
        "/v1/me/memories/{memory_id}",
        "/healthz",
        "/readyz",
    }
    assert "HTTPBearer" in document["components"]["securitySchemes"]
    assert "401" in paths["/v1/me/memories"]["get"]["responses"]


def test_docs_page_is_served(client: TestClient) -> None:
    response = client.get("/docs")
    assert response.status_code == 200
    assert "swagger" in response.text.lower()


def test_an_unknown_route_is_a_404_problem(client: TestClient) -> None:
    response = client.get("/v1/nothing-here")
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    assert response.json()["request_id"] == response.headers["x-request-id"]


def test_a_wrong_method_is_a_405_problem(client: TestClient) -> None:
    response = client.delete("/healthz")
    assert response.status_code == 405
    assert response.headers["content-type"].startswith("application/problem+json")
