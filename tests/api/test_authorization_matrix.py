"""Every API route x every kind of caller, against one expected table.

The routes come from the app itself (its OpenAPI document, which FastAPI builds from the route
table), so a new route without a row in EXPECTED fails here until someone decides who may call
it. Callers: no token, the assistant, the user who owns the data ("owner", alice), another user
("other", bob, naming alice's data), compliance, admin. Each case runs on fresh state.
"""

from __future__ import annotations

from typing import Any

import pytest
from fastapi.testclient import TestClient

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.policy.catalogue import Catalogue
from memory_store.runtime import open_runtime
from tests.conftest import PURPOSE, bearer, issue_token, write_memory

CALLERS = ("anonymous", "assistant", "owner", "other", "compliance", "admin")

# Who gets what. 2xx as the route's success status; 401 without a token; 403 for a role the
# policy never lets do this; 404 for a user naming someone else's data (existence must not leak).
ASSISTANT_ONLY = {
    "anonymous": 401,
    "assistant": 200,
    "owner": 403,
    "other": 404,
    "compliance": 403,
    "admin": 403,
}
USER_SELF = {
    "anonymous": 401,
    "assistant": 403,
    "owner": 200,
    "other": 200,
    "compliance": 403,
    "admin": 403,
}
USER_ITEM = {**USER_SELF, "other": 404}  # names alice's memory: bob may not see it exists
COMPLIANCE_ONLY = {
    "anonymous": 401,
    "assistant": 403,
    "owner": 403,
    "other": 403,
    "compliance": 200,
    "admin": 403,
}
OPEN = dict.fromkeys(CALLERS, 200)

EXPECTED: dict[tuple[str, str], dict[str, int]] = {
    ("GET", "/healthz"): OPEN,
    ("GET", "/readyz"): OPEN,
    ("POST", "/v1/users/{user_id}/memories"): {**ASSISTANT_ONLY, "assistant": 201},
    ("GET", "/v1/users/{user_id}/memories"): ASSISTANT_ONLY,
    ("GET", "/v1/users/{user_id}/memories/{memory_id}"): ASSISTANT_ONLY,
    ("GET", "/v1/users/{user_id}/context"): ASSISTANT_ONLY,
    ("DELETE", "/v1/users/{user_id}/memories/{memory_id}"): {**ASSISTANT_ONLY, "assistant": 204},
    ("PUT", "/v1/users/{user_id}/items"): {**ASSISTANT_ONLY, "assistant": 201},
    ("POST", "/v1/users/{user_id}/items/lookup"): ASSISTANT_ONLY,
    ("POST", "/v1/users/{user_id}/items/forget"): {**ASSISTANT_ONLY, "assistant": 204},
    ("POST", "/v1/users/{user_id}/items/search"): ASSISTANT_ONLY,
    ("POST", "/v1/users/{user_id}/items/namespaces"): ASSISTANT_ONLY,
    ("GET", "/v1/me"): USER_SELF,
    ("DELETE", "/v1/me"): USER_SELF,
    ("GET", "/v1/me/memories"): USER_SELF,
    ("DELETE", "/v1/me/memories"): USER_SELF,
    ("GET", "/v1/me/memories/{memory_id}"): USER_ITEM,
    ("PATCH", "/v1/me/memories/{memory_id}"): USER_ITEM,
    ("DELETE", "/v1/me/memories/{memory_id}"): {**USER_ITEM, "owner": 204},
    ("GET", "/v1/me/memories/{memory_id}/history"): USER_ITEM,
    ("GET", "/v1/me/export"): USER_SELF,
    ("GET", "/v1/me/access-log"): USER_SELF,
    ("GET", "/v1/me/consents"): USER_SELF,
    ("PUT", "/v1/me/consents/{purpose}/{category}"): USER_SELF,
    ("GET", "/v1/me/consents/history"): USER_SELF,
    ("GET", "/v1/me/settings"): USER_SELF,
    ("PATCH", "/v1/me/settings"): USER_SELF,
    ("GET", "/v1/audit/events"): COMPLIANCE_ONLY,
    ("GET", "/v1/audit/verify"): COMPLIANCE_ONLY,
    ("GET", "/v1/audit/checkpoints"): COMPLIANCE_ONLY,
    ("GET", "/v1/audit/public-key"): COMPLIANCE_ONLY,
    ("GET", "/v1/audit/export"): COMPLIANCE_ONLY,
    # Allowed to compliance; 404 here because no checkpoint has been signed yet to prove
    # record 1 against (tests/trail/test_inclusion_proofs.py has the 200).
    ("GET", "/v1/audit/proof"): {**COMPLIANCE_ONLY, "compliance": 404},
    # An erasure's status: its unguessable id is the capability (it names no one).
    ("GET", "/v1/erasures/{erasure_id}"): OPEN,
}

ITEM = {"category": "preferences"}
# Routes that name alice's keyed item ["travel"] / "seat": it is put before each caller.
NAMES_AN_ITEM = {
    ("POST", "/v1/users/{user_id}/items/lookup"),
    ("POST", "/v1/users/{user_id}/items/forget"),
}

# A valid request for each route: query parameters and body. Path parameters are filled in
# with alice, her memory, and a purpose and category from the catalogue.
REQUESTS: dict[tuple[str, str], dict[str, Any]] = {
    ("POST", "/v1/users/{user_id}/memories"): {
        "params": {"purpose": PURPOSE},
        "json": {"content": "likes figs", "category": "preferences"},
    },
    ("GET", "/v1/users/{user_id}/memories"): {"params": {"purpose": PURPOSE}},
    ("GET", "/v1/users/{user_id}/memories/{memory_id}"): {"params": {"purpose": PURPOSE}},
    ("GET", "/v1/users/{user_id}/context"): {"params": {"purpose": PURPOSE, "q": "figs"}},
    ("GET", "/v1/audit/proof"): {"params": {"seq": 1}},
    ("PUT", "/v1/users/{user_id}/items"): {
        "params": {"purpose": PURPOSE},
        "json": {"namespace": ["food"], "key": "fruit", "value": {"likes": "figs"}, **ITEM},
    },
    ("POST", "/v1/users/{user_id}/items/lookup"): {
        "params": {"purpose": PURPOSE},
        "json": {"namespace": ["travel"], "key": "seat"},
    },
    ("POST", "/v1/users/{user_id}/items/forget"): {
        "params": {"purpose": PURPOSE},
        "json": {"namespace": ["travel"], "key": "seat"},
    },
    ("POST", "/v1/users/{user_id}/items/search"): {
        "params": {"purpose": PURPOSE},
        "json": {"namespace_prefix": ["travel"]},
    },
    ("POST", "/v1/users/{user_id}/items/namespaces"): {
        "params": {"purpose": PURPOSE},
        "json": {},
    },
    ("DELETE", "/v1/users/{user_id}/memories/{memory_id}"): {"params": {"purpose": PURPOSE}},
    ("DELETE", "/v1/me/memories"): {"params": {"category": "preferences"}},
    ("PATCH", "/v1/me/memories/{memory_id}"): {"json": {"content": "likes dates"}},
    ("PUT", "/v1/me/consents/{purpose}/{category}"): {"json": {"granted": False}},
    ("PATCH", "/v1/me/settings"): {"json": {"memory_enabled": False}},
}


def app_routes() -> list[tuple[str, str]]:
    settings = Settings(retention_sweep_seconds=0)
    document = create_app(settings, runtime=_NoRuntime()).openapi()  # type: ignore[arg-type]
    return sorted(
        (method.upper(), path) for path, item in document["paths"].items() for method in item
    )


class _NoRuntime:
    """Building the OpenAPI document needs the routes only (and the catalogue, for the MCP
    tools' category enum), not the databases."""

    settings = None
    services = None
    catalogue = Catalogue.load(Settings().policy_dir / "catalogue.toml")


def test_every_route_has_a_row_in_the_expected_table() -> None:
    routes = set(app_routes())
    assert routes - set(EXPECTED) == set(), "new routes need a row in EXPECTED"
    assert set(EXPECTED) - routes == set(), "EXPECTED names routes that no longer exist"


@pytest.mark.parametrize("route", sorted(EXPECTED), ids=lambda r: f"{r[0]} {r[1]}")
def test_route_answers_each_caller_as_expected(route: tuple[str, str], tmp_path: Any) -> None:
    """One service per route; each caller gets a fresh memory of alice's to aim at, and the
    owner goes last, since some of the owner's calls (DELETE /v1/me) end the session."""
    settings = Settings(data_dir=tmp_path / "var", retention_sweep_seconds=0)
    runtime = open_runtime(settings)
    tokens = {
        "assistant": issue_token(runtime, Role.assistant),
        "owner": issue_token(runtime, Role.user, "alice"),
        "other": issue_token(runtime, Role.user, "bob"),
        "compliance": issue_token(runtime, Role.compliance),
        "admin": issue_token(runtime, Role.admin),
    }
    wrong: list[str] = []
    try:
        with TestClient(create_app(settings, runtime)) as client:
            for caller in sorted(CALLERS, key=lambda c: c == "owner"):
                memory = write_memory(client, tokens["assistant"], user_id="alice")
                if route in NAMES_AN_ITEM:
                    put = client.put(
                        "/v1/users/alice/items",
                        params={"purpose": PURPOSE},
                        json={"namespace": ["travel"], "key": "seat", "value": {}, **ITEM},
                        headers=bearer(tokens["assistant"]),
                    )
                    assert put.status_code in (200, 201), put.text
                method, template = route
                path = template.format(
                    user_id="alice",
                    memory_id=memory["id"],
                    purpose=PURPOSE,
                    category="work",
                    erasure_id=runtime.erasures.record("memory", 1).id,
                )
                headers = bearer(tokens[caller]) if caller in tokens else {}
                response = client.request(method, path, headers=headers, **REQUESTS.get(route, {}))
                if response.status_code != EXPECTED[route][caller]:
                    wrong.append(f"{caller}: {response.status_code} {response.text[:120]}")
                if response.status_code >= 400:
                    assert response.headers["content-type"].startswith("application/problem+json")
                    assert "likes figs" not in response.text
                    assert "window seats" not in response.text
    finally:
        runtime.close()
    assert not wrong, f"{route}: expected {EXPECTED[route]}; got: {wrong}"
