"""Casbin decides from the files in policies/: an edit there changes behaviour, no code."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from fastapi.testclient import TestClient

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import SELF_SERVICE, Principal, Role
from memory_store.errors import NotFound
from memory_store.policy import AccessRequest, Action, Policy, PolicyError
from memory_store.policy.catalogue import Catalogue
from memory_store.runtime import open_runtime
from tests.conftest import PURPOSE, assert_problem, bearer, issue_token

SHIPPED = Path(__file__).resolve().parents[2] / "policies"
CATALOGUE = Catalogue.load(SHIPPED / "catalogue.toml")


def principal(role: Role, user_id: str | None = None) -> Principal:
    return Principal(token_id="tok_test", name="test", role=role, user_id=user_id)


@pytest.mark.parametrize(
    ("role", "user_id", "action", "subject", "purpose", "allowed"),
    [
        (Role.assistant, None, Action.memory_write, "alice", PURPOSE, True),
        (Role.assistant, None, Action.memory_read, "alice", PURPOSE, True),
        (Role.assistant, None, Action.memory_read, "alice", SELF_SERVICE, False),
        (Role.user, "alice", Action.memory_read, "alice", SELF_SERVICE, True),
        (Role.user, "alice", Action.memory_read, "alice", PURPOSE, False),
        (Role.user, "alice", Action.memory_write, "alice", SELF_SERVICE, False),
        (Role.user, "alice", Action.memory_read, "bob", SELF_SERVICE, False),
        (Role.compliance, None, Action.memory_read, "alice", PURPOSE, False),
        (Role.admin, None, Action.memory_read, "alice", PURPOSE, False),
        (Role.admin, None, Action.memory_write, "alice", PURPOSE, False),
    ],
)
def test_shipped_policy_role_rules(
    role: Role, user_id: str | None, action: Action, subject: str, purpose: str, allowed: bool
) -> None:
    policy = Policy(SHIPPED, CATALOGUE)
    request = AccessRequest(principal(role, user_id), action, subject, purpose, "preferences")
    assert policy.allows(request) is allowed


def test_editing_policy_csv_changes_a_decision_without_code(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policies"
    shutil.copytree(SHIPPED, policy_dir)
    settings = Settings(data_dir=tmp_path / "var", policy_dir=policy_dir)
    runtime = open_runtime(settings)
    token = issue_token(runtime, Role.assistant)
    with TestClient(create_app(settings, runtime)) as client:
        params = {"purpose": PURPOSE}
        assert client.get(
            "/v1/users/alice/memories", params=params, headers=bearer(token)
        ).is_success
    runtime.close()

    csv = policy_dir / "policy.csv"
    csv.write_text(
        "\n".join(
            line
            for line in csv.read_text().splitlines()
            if not line.startswith("p, assistant, memory.read,    personalization")
        )
    )
    runtime = open_runtime(settings)
    with TestClient(create_app(settings, runtime)) as client:
        denied = client.get("/v1/users/alice/memories", params=params, headers=bearer(token))
        assert_problem(denied, 403, "forbidden")
    runtime.close()


def test_editing_the_catalogue_adds_a_category_without_code(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policies"
    shutil.copytree(SHIPPED, policy_dir)
    with (policy_dir / "catalogue.toml").open("a") as catalogue:
        catalogue.write(
            '\n[categories.pets]\ndescription = "Pets"\nsensitive = false\nretention_days = 10\n'
        )
    settings = Settings(data_dir=tmp_path / "var", policy_dir=policy_dir)
    runtime = open_runtime(settings)
    token = issue_token(runtime, Role.assistant)
    with TestClient(create_app(settings, runtime)) as client:
        response = client.post(
            "/v1/users/alice/memories",
            params={"purpose": PURPOSE},
            json={"content": "has a cat named Miso", "category": "pets"},
            headers=bearer(token),
        )
        assert response.status_code == 201
    runtime.close()


def test_a_user_denied_on_someone_elses_data_gets_not_found_not_forbidden() -> None:
    policy = Policy(SHIPPED, CATALOGUE)
    with pytest.raises(NotFound):
        policy.check(
            AccessRequest(principal(Role.user, "alice"), Action.memory_read, "bob", SELF_SERVICE)
        )


def test_editing_a_consent_rule_in_policy_csv_changes_who_may_read(tmp_path: Path) -> None:
    """analytics is opt-in as shipped; one edited word makes it usable until withdrawn."""
    policy_dir = tmp_path / "policies"
    shutil.copytree(SHIPPED, policy_dir)
    settings = Settings(data_dir=tmp_path / "var", policy_dir=policy_dir)

    def analytics_write_status() -> int:
        runtime = open_runtime(settings)
        token = issue_token(runtime, Role.assistant)
        with TestClient(create_app(settings, runtime)) as client:
            status = client.post(
                "/v1/users/alice/memories",
                params={"purpose": "analytics"},
                json={"content": "uses the app daily", "category": "work"},
                headers=bearer(token),
            ).status_code
        runtime.close()
        return status

    assert analytics_write_status() == 403
    csv = policy_dir / "policy.csv"
    csv.write_text(
        csv.read_text().replace(
            "memory.write,   analytics,         service,  ordinary,    opt_in",
            "memory.write,   analytics,         service,  ordinary,    until_withdrawn",
        )
    )
    assert analytics_write_status() == 201


def test_a_policy_line_with_an_unknown_consent_rule_refuses_to_start(tmp_path: Path) -> None:
    policy_dir = tmp_path / "policies"
    shutil.copytree(SHIPPED, policy_dir)
    with (policy_dir / "policy.csv").open("a") as csv:
        csv.write("p, assistant, memory.read, analytics, service, *, whenever\n")
    with pytest.raises(PolicyError, match="whenever"):
        Policy(policy_dir, CATALOGUE)
