"""Property-based fuzzing of the running API from its own OpenAPI document (schemathesis).

A real server (uvicorn, as `memory-store serve` runs it) is started as a subprocess, with rate
limits off so that they cannot mask a bug. For every role's token (assistant, user,
compliance, admin) and for no token at all, every operation in the document is sent
generated requests, valid ones (positive) and invalid ones (negative). Every response must:

- not be a 5xx (invariant 5: bad input is a 4xx problem, a 500 is a bug);
- have a documented status code, a documented content type, a body of the documented shape
  and documented headers (schemathesis' conformance checks);
- when it is a problem, be a well-formed RFC 9457 problem whose `status` is the response's
  and whose `request_id` is the X-Request-ID header (checked here, because the OpenAPI document
  gives application/problem+json no schema; see `check_problem`).

It is bounded: a fixed number of examples per operation, role and mode, derandomized, so a run
is reproducible and takes well under two minutes.
"""

from __future__ import annotations

import itertools
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx
import pytest
import requests  # schemathesis' transport, installed with it
import schemathesis
from hypothesis import HealthCheck, Phase, given
from hypothesis import settings as hypothesis_settings
from hypothesis import strategies as st
from hypothesis.errors import Unsatisfiable
from schemathesis import GenerationMode
from schemathesis.checks import not_a_server_error
from schemathesis.errors import FailureGroup
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.policy.catalogue import Catalogue
from memory_store.runtime import Runtime, open_runtime
from tests.live_server import LiveServer

# Examples per operation, per role, per generation mode: with 27 operations x 5 roles x 2 modes
# about 1,300 requests, 40 s on SQLite and 60 s on PostgreSQL on a busy 2-core machine. The
# run is derandomized, so it is the same requests every time. A deeper run, by hand:
# MEMORY_STORE_TEST_FUZZ_EXAMPLES=50 pytest tests/system/test_fuzz.py -s
MAX_EXAMPLES = int(os.environ.get("MEMORY_STORE_TEST_FUZZ_EXAMPLES", "5"))
REQUEST_TIMEOUT = 30.0
ROLES = ("anonymous", "admin", "compliance", "assistant", "user")
CHECKS = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]
PROBLEM_FIELDS = {"type": str, "title": str, "status": int, "request_id": str}


# -- the run's bookkeeping --------------------------------------------------------------------


@dataclass
class Finding:
    role: str
    operation: str
    mode: str
    status: int | None
    message: str

    def __str__(self) -> str:
        return f"[{self.role}] {self.operation} ({self.mode}) -> {self.status}\n{self.message}"


@dataclass
class FuzzRun:
    base_url: str
    started: float = field(default_factory=time.monotonic)
    requests: int = 0
    unsendable: int = 0
    nothing_to_negate: list[str] = field(default_factory=list)
    by_status: dict[str, dict[int, int]] = field(default_factory=dict)
    per_cell: dict[tuple[str, str], int] = field(default_factory=dict)
    findings: list[Finding] = field(default_factory=list)


def check_problem(response: Any) -> str | None:
    """A problem+json body must be a problem of the response's status naming its request id.
    (The OpenAPI document puts the ProblemDetails schema under application/json, which the
    service never sends, and none under application/problem+json, so schemathesis cannot.)"""
    headers = {name.lower(): values[0] for name, values in response.headers.items() if values}
    if not headers.get("content-type", "").startswith("application/problem+json"):
        if response.status_code >= 400:
            return f"a {response.status_code} that is not application/problem+json"
        return None
    try:
        body = json.loads(response.content)
    except ValueError:
        return "a problem+json body that is not JSON"
    if not isinstance(body, dict):
        return "a problem+json body that is not an object"
    for name, kind in PROBLEM_FIELDS.items():
        if not isinstance(body.get(name), kind):
            return f"problem field {name!r} missing or not {kind.__name__}: {body}"
    if body["status"] != response.status_code:
        return f"problem status {body['status']} in a {response.status_code} response"
    if body["request_id"] != headers.get("x-request-id"):
        return "problem request_id differs from the X-Request-ID header"
    return None


class Bearer(requests.auth.AuthBase):
    def __init__(self, token: str) -> None:
        self.token = token

    def __call__(self, request: requests.PreparedRequest) -> requests.PreparedRequest:
        request.headers["Authorization"] = f"Bearer {self.token}"
        return request


def realistic(case: Any, data: st.DataObject, catalogue: Catalogue, memory_ids: list[str]) -> None:
    """Two valid cases in three are pointed at things that exist: a known user, memory, purpose
    and category, no expiry, a well-formed If-Match, so that fuzzing gets past 422 and 404 and
    into the service. The others stay as generated."""
    # Sampled (not a coin flip) so that the first, simplest, example is a realistic one.
    if not data.draw(st.sampled_from([True, True, False]), label="realistic"):
        return
    purposes = sorted(catalogue.purposes)
    categories = sorted(catalogue.categories)
    path = case.path_parameters if case.path_parameters is not None else {}
    query = case.query if case.query is not None else {}
    choices: dict[str, tuple[dict[str, Any], list[str]]] = {
        "user_id": (path, ["alice", "bob"]),
        "memory_id": (path, memory_ids),
        # Mostly the purpose that works without an opt-in.
        "purpose": (path if "purpose" in path else query, ["personalization"] * 3 + purposes),
        "category": (path if "category" in path else query, [*categories, "*"]),
    }
    for name, (container, values) in choices.items():
        if name in container and values:
            container[name] = data.draw(st.sampled_from(values), label=name)
    if isinstance(case.body, dict):
        case.body.pop("expires_at", None)
        if "category" in case.body:
            # Mostly ordinary categories: the sensitive ones need an opt-in per category.
            ordinary = [name for name in categories if not catalogue.categories[name].sensitive]
            choice = st.sampled_from(ordinary * 3 + categories)
            case.body["category"] = data.draw(choice, label="body category")
    headers = case.headers if case.headers is not None else {}
    for name in list(headers):
        if name.lower() == "if-match":
            headers[name] = data.draw(st.sampled_from(['"1"', '"2"', "*"]), label="If-Match")
        elif name.lower() == "x-consent-channel":
            headers[name] = data.draw(st.sampled_from(["api", "web"]), label="channel")


def fuzz_operation(
    run: FuzzRun,
    session: requests.Session,
    operation: Any,
    role: str,
    mode: GenerationMode,
    authorization: Callable[[], str | None],
    catalogue: Catalogue,
    memory_ids: list[str],
) -> None:
    """Send MAX_EXAMPLES generated requests to one operation as one role; record findings."""
    label = operation.label
    try:
        strategy = operation.as_strategy(generation_mode=mode)
    except Exception as exc:  # an operation with nothing to negate, say
        run.findings.append(Finding(role, label, mode.value, None, f"no strategy: {exc!r}"))
        return

    @hypothesis_settings(
        max_examples=MAX_EXAMPLES,
        derandomize=True,
        database=None,
        deadline=None,
        phases=[Phase.explicit, Phase.generate],
        suppress_health_check=list(HealthCheck),
    )
    @given(case=strategy, data=st.data())
    def send(case: Any, data: st.DataObject) -> None:
        if mode is GenerationMode.POSITIVE:
            realistic(case, data, catalogue, memory_ids)
        # The role's token replaces whatever the generator put there (a random bearer, or none
        # for a negative case that drops the header); without a token, none is sent at all.
        # It goes in through `auth`, which requests applies last, after schemathesis has
        # removed the headers a negative case leaves out.
        if case.headers is not None:
            for name in [name for name in case.headers if name.lower() == "authorization"]:
                del case.headers[name]
        token = authorization()
        try:
            response = case.call(
                base_url=run.base_url,
                session=session,
                auth=Bearer(token) if token else None,
                timeout=REQUEST_TIMEOUT,
            )
        except (requests.exceptions.InvalidHeader, UnicodeError, ValueError):
            run.unsendable += 1  # the client library refuses to send it: not the server's doing
            return
        except requests.RequestException as exc:
            run.findings.append(Finding(role, label, mode.value, None, f"no answer: {exc!r}"))
            return
        run.requests += 1
        statuses = run.by_status.setdefault(role, {})
        statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
        run.per_cell[(role, label)] = run.per_cell.get((role, label), 0) + 1
        try:
            case.validate_response(response, checks=CHECKS)
        except FailureGroup as failure:  # every failed check, with a curl command to replay
            run.findings.append(
                Finding(role, label, mode.value, response.status_code, f"{failure}")
            )
            return
        problem = check_problem(response)
        if problem is not None:
            curl = case.as_curl_command(base_url=run.base_url)
            run.findings.append(
                Finding(role, label, mode.value, response.status_code, f"{problem}\n{curl}")
            )

    try:
        send()
    except Unsatisfiable:
        # Nothing in this operation can be made invalid (no parameters, no body): the
        # positive run covered it.
        run.nothing_to_negate.append(f"[{role}] {label}")


def ordered(operations: list[Any]) -> list[Any]:
    """Reads and writes first, deletions after, forgetting oneself last: each role's run keeps
    something to read for as long as possible."""

    def rank(operation: Any) -> tuple[int, str]:
        if operation.method.upper() == "DELETE":
            return (2 if operation.path == "/v1/me" else 1, operation.label)
        return (0, operation.label)

    return sorted(operations, key=rank)


SEED = [
    ("prefers window seats", "preferences"),
    ("works on the Apollo project", "work"),
    ("is allergic to penicillin", "health"),  # alice opted in to this one
    ("lives in Lisbon", "location"),
]


def seed(
    client: httpx.Client, assistant: dict[str, str], user_id: str, memories: list[tuple[str, str]]
) -> list[str]:
    """The assistant writes these memories about `user_id`; their ids."""
    ids = []
    for content, category in memories:
        written = client.post(
            f"/v1/users/{user_id}/memories",
            params={"purpose": "personalization"},
            json={"content": content, "category": category, "source": "seed"},
            headers=assistant,
        )
        assert written.status_code == 201, written.text
        ids.append(written.json()["id"])
    return ids


def issue(runtime: Runtime, role: Role, user_id: str | None = None) -> str:
    return runtime.tokens.issue(role=role, name=f"fuzz-{role.value}", user_id=user_id).token


# -- the test ---------------------------------------------------------------------------------


def test_every_operation_for_every_role_answers_documented_non_5xx_responses(
    server: LiveServer,
) -> None:
    """Fuzz every operation of the OpenAPI document, as each role and without a token, with
    valid and invalid requests: no 5xx, and every status code, content type, header and body
    is the documented one. Afterwards the server is still up and its audit trail verifies."""
    forget_pool = 2 * MAX_EXAMPLES + 2
    runtime = open_runtime(Settings())
    try:
        tokens = {
            role.value: issue(runtime, role, "alice" if role is Role.user else None)
            for role in Role
        }
        # DELETE /v1/me forgets the caller and revokes its token: give it tokens of its own.
        forgettable = [
            (f"forget-{n}", issue(runtime, Role.user, f"forget-{n}")) for n in range(forget_pool)
        ]
        catalogue = runtime.catalogue
    finally:
        runtime.close()
    server.start()
    assistant = {"Authorization": f"Bearer {tokens['assistant']}"}
    user = {"Authorization": f"Bearer {tokens['user']}"}
    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:
        for purpose, category in [("personalization", "health"), ("analytics", "*")]:
            grant = client.put(
                f"/v1/me/consents/{purpose}/{category}", json={"granted": True}, headers=user
            )
            assert grant.status_code == 200, grant.text
        seed(client, assistant, "bob", SEED[:2])
        for user_id, _token in forgettable:
            seed(client, assistant, user_id, SEED[:1])
        schema_document = client.get("/openapi.json").json()

    schema = schemathesis.openapi.from_dict(schema_document)
    operations = ordered([result.ok() for result in schema.get_all_operations()])
    assert len(operations) >= 20, [operation.label for operation in operations]
    forget_tokens = itertools.chain((token for _user, token in forgettable), itertools.repeat(None))
    dead_token = forgettable[-1][1]

    run = FuzzRun(base_url=server.base_url)
    session = requests.Session()
    session.trust_env = False  # no proxy from the environment between us and 127.0.0.1
    memory_ids: list[str] = []
    for role in ROLES:
        # Each role starts from alice's seeded memories (the role before may have deleted or
        # changed them); a realistic case names one of them.
        with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:
            memory_ids[:] = seed(client, assistant, "alice", SEED)
        for operation in operations:
            if (
                role == "user"
                and operation.method.upper() == "DELETE"
                and operation.path == "/v1/me"
            ):

                def authorization() -> str | None:
                    return next(forget_tokens) or dead_token

            else:

                def authorization(role: str = role) -> str | None:
                    return tokens.get(role)

            for mode in (GenerationMode.POSITIVE, GenerationMode.NEGATIVE):
                fuzz_operation(
                    run, session, operation, role, mode, authorization, catalogue, memory_ids
                )
            assert server.alive(), (
                f"the server died fuzzing {operation.label}:\n{server.log_tail()}"
            )
    session.close()
    elapsed = time.monotonic() - run.started

    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:
        verified = client.get(
            "/v1/audit/verify", headers={"Authorization": f"Bearer {tokens['compliance']}"}
        )
    unhandled = [line for line in server.log_tail(10**9).splitlines() if "unhandled_error" in line]
    print(
        f"\nfuzz: {run.requests} requests in {elapsed:.1f}s over {len(operations)} operations x "
        f"{len(ROLES)} roles x 2 modes; {run.unsendable} unsendable, "
        f"{len(run.findings)} findings"
    )
    for role, statuses in run.by_status.items():
        print(f"  {role:<10} {dict(sorted(statuses.items()))}")
    print(f"  nothing to negate: {sorted(set(run.nothing_to_negate))}")
    findings = "\n\n".join(str(finding) for finding in run.findings[:20])
    assert not run.findings, f"{len(run.findings)} findings, the first ones:\n\n{findings}"
    assert not unhandled, "\n".join(unhandled[:5])
    missing = [
        (role, operation.label)
        for role in ROLES
        for operation in operations
        if run.per_cell.get((role, operation.label), 0) == 0
    ]
    assert not missing, f"never sent a request for: {missing}"
    # The run reached the service, not only its validation: each role was answered 2xx.
    for role in ("admin", "compliance", "assistant", "user"):
        assert any(200 <= status < 300 for status in run.by_status[role]), (role, run.by_status)
    assert run.by_status["assistant"].get(201), run.by_status["assistant"]
    assert verified.status_code == 200, verified.text
    assert verified.json()["ok"] is True, verified.json()


# -- refusals that only limits can provoke ----------------------------------------------------


def test_quota_and_rate_limit_refusals_are_documented_responses(
    server: LiveServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """With a quota of one memory and a rate of one request per ten seconds, the 409 and 429
    problems the service then answers are documented statuses of their operations (the fuzz
    run above turns both limits off, so it cannot see this)."""
    monkeypatch.setenv("MEMORY_STORE_MAX_MEMORIES_PER_USER", "1")
    monkeypatch.setenv("MEMORY_STORE_RATE_LIMIT_PER_MINUTE", "6")
    monkeypatch.setenv("MEMORY_STORE_RATE_LIMIT_BURST_SECONDS", "10")  # a burst of one
    runtime = open_runtime(Settings())
    try:
        assistant, alice = issue(runtime, Role.assistant), issue(runtime, Role.user, "alice")
    finally:
        runtime.close()
    server.start()
    schema = schemathesis.openapi.from_dict(httpx.get(f"{server.base_url}/openapi.json").json())
    write = schema["/v1/users/{user_id}/memories"]["POST"]
    whoami = schema["/v1/me"]["GET"]
    session = requests.Session()
    session.trust_env = False
    answered: dict[int, str] = {}
    violations = []
    for operation, token, kwargs, expected in [
        (write, assistant, {"body": {"content": "one", "category": "preferences"}}, 201),
        (write, assistant, {"body": {"content": "two", "category": "preferences"}}, 409),
        (whoami, alice, {}, 200),
        (whoami, alice, {}, 429),
    ]:
        params = {"user_id": "alice"} if operation is write else {}
        query = {"purpose": "personalization"} if operation is write else {}
        case = operation.Case(path_parameters=params, query=query, **kwargs)
        response = case.call(
            base_url=server.base_url, session=session, auth=Bearer(token), timeout=REQUEST_TIMEOUT
        )
        assert response.status_code == expected, response.content
        answered[response.status_code] = operation.label
        try:
            case.validate_response(response, checks=[status_code_conformance])
        except FailureGroup as failure:
            violations.append(f"{operation.label} -> {response.status_code}: {failure}")
    session.close()
    assert set(answered) == {200, 201, 409, 429}
    assert not violations, "\n".join(violations)
