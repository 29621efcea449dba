"""GET /v1/users/{user_id}/context: the memories most relevant to a turn, ranked, within a
character budget, under the same policy and audit as any read."""

from __future__ import annotations

import json
from pathlib import Path

from fastapi.testclient import TestClient

from memory_store.runtime import Runtime
from tests.conftest import PURPOSE, assert_problem, bearer, write_memory

LABELLED = json.loads((Path(__file__).parents[1] / "data" / "context_queries.json").read_text())


def context(client: TestClient, token: str, **params: object) -> dict[str, object]:
    response = client.get(
        "/v1/users/alice/context", params={"purpose": PURPOSE, **params}, headers=bearer(token)
    )
    assert response.status_code == 200, response.text
    body: dict[str, object] = response.json()
    return body


def test_the_right_memory_is_in_the_top_3_for_at_least_90_percent_of_labelled_queries(
    client: TestClient, assistant_token: str
) -> None:
    ids = {
        label: write_memory(client, assistant_token, content=content, category=category)["id"]
        for label, (category, content) in LABELLED["memories"].items()
    }
    misses = []
    for query, label in LABELLED["queries"]:
        items = context(client, assistant_token, q=query, limit=3)["items"]
        if ids[label] not in [item["id"] for item in items]:  # type: ignore[index]
            misses.append(query)
    hit_rate = 1 - len(misses) / len(LABELLED["queries"])
    assert hit_rate >= 0.9, f"top-3 hit rate {hit_rate:.0%}; missed: {misses}"


def test_context_stays_within_the_character_budget_and_says_when_it_cut(
    client: TestClient, assistant_token: str
) -> None:
    for i in range(5):
        write_memory(client, assistant_token, content=f"trip note {i}: " + "x" * 90)
    body = context(client, assistant_token, q="trip note", max_chars=250)
    assert body["total_chars"] <= 250  # type: ignore[operator]
    assert len(body["items"]) == 2 and body["truncated"] is True  # type: ignore[arg-type]
    scores = [item["score"] for item in body["items"]]  # type: ignore[attr-defined]
    assert scores == sorted(scores, reverse=True) and scores[0] > 0


def test_context_without_a_query_gives_the_most_recent_and_with_no_match_says_so(
    client: TestClient, assistant_token: str
) -> None:
    older = write_memory(client, assistant_token, content="older fact")
    newest = write_memory(client, assistant_token, content="newest fact")
    recent = context(client, assistant_token, limit=1)
    assert [i["id"] for i in recent["items"]] == [newest["id"]]  # type: ignore[attr-defined]
    assert recent["match"] is None and recent["fallback"] is None
    nothing = context(client, assistant_token, q="zeppelin")
    assert nothing["match"] == "none" and nothing["fallback"] == "recent"
    offered = [(i["id"], i["score"]) for i in nothing["items"]]  # type: ignore[attr-defined]
    assert offered == [(newest["id"], 0), (older["id"], 0)]


def test_context_respects_consent_and_is_audited(
    client: TestClient, runtime: Runtime, assistant_token: str, alice_token: str
) -> None:
    write_memory(client, assistant_token, content="flies to Oslo often", category="location")
    client.put(
        "/v1/me/consents/personalization/location",
        json={"granted": False},
        headers=bearer(alice_token),
    )
    assert context(client, assistant_token, q="Oslo")["items"] == []
    reads = [r for r in runtime.audit_store.iter_records() if r.action == "memory.context"]
    assert len(reads) == 1 and reads[0].result_count == 0 and reads[0].purpose == PURPOSE


def test_context_refuses_other_roles_bad_input_and_unknown_purposes(
    client: TestClient, alice_token: str, bob_token: str, assistant_token: str
) -> None:
    path = "/v1/users/alice/context"
    assert_problem(client.get(path, params={"purpose": PURPOSE}), 401)
    assert_problem(client.get(path, params={"purpose": PURPOSE}, headers=bearer(alice_token)), 403)
    assert_problem(client.get(path, params={"purpose": PURPOSE}, headers=bearer(bob_token)), 404)
    for params in ({"purpose": "spying"}, {"purpose": PURPOSE, "max_chars": 0}, {}):
        assert_problem(client.get(path, params=params, headers=bearer(assistant_token)), 422)
