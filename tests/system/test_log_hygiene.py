"""No exception's message reaches a log: a driver's or a parser's message can quote the data it
choked on. Errors are logged by type and place only, whoever logs them (uvicorn included).

The live test throws made-up cursors and dates at a real server, then reads its whole log."""

from __future__ import annotations

import base64
import io
import json
import logging
import random
from collections.abc import Iterator

import httpx
from fastapi.testclient import TestClient

from memory_store.app import create_app
from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.logging import get_logger
from memory_store.runtime import open_runtime
from tests.live_server import LiveServer
from tests.system.conftest import issue_tokens

CANARY = "canary-message-7f3a"


def test_an_exception_logged_by_anyone_shows_its_type_and_place_never_its_message(
    json_logs: io.StringIO,
) -> None:
    for logger in (get_logger("memory_store.test"), logging.getLogger("uvicorn.error")):
        try:
            raise ValueError(f"row ('alice', {CANARY})")
        except ValueError:
            logger.exception("Exception in ASGI application")
    lines = [json.loads(line) for line in json_logs.getvalue().splitlines()]
    assert len(lines) == 2
    for line in lines:
        assert line["error_type"] == "ValueError"
        assert any("test_log_hygiene.py" in place for place in line["where"])
    assert CANARY not in json_logs.getvalue() and "alice" not in json_logs.getvalue()


def test_an_unexpected_error_in_a_request_answers_500_and_logs_no_message(
    json_logs: io.StringIO, settings: Settings
) -> None:
    app = create_app(settings)

    @app.get("/boom")
    def boom() -> None:
        raise RuntimeError(f"secret {CANARY}")

    with TestClient(app, raise_server_exceptions=False) as client:
        response = client.get("/boom")
    assert response.status_code == 500 and CANARY not in response.text
    text = json_logs.getvalue()
    assert CANARY not in text and "RuntimeError" in text


def made_up_cursors(rng: random.Random) -> Iterator[str]:
    documents = [
        {"t": "0001-01-01T00:00:00+05:00", "i": "x"},
        {"t": "9999-12-31T23:59:59-05:00", "i": "x"},
        {"s": 1e30},
        {"s": 10**40},
        {"v": -1},
        [1, 2],
        "x",
    ]
    for document in documents:
        raw = json.dumps(document).encode()
        yield base64.urlsafe_b64encode(raw).decode().rstrip("=")
        yield base64.urlsafe_b64encode(raw).decode().rstrip("=") + ".AAAAAAAAAAAAAAAAAAAAAA"
    for _ in range(60):
        junk = bytes(rng.randrange(256) for _ in range(rng.randrange(1, 80)))
        yield base64.urlsafe_b64encode(junk).decode().rstrip("=") + rng.choice(["", ".", ".xx"])


def made_up_dates(rng: random.Random) -> Iterator[str]:
    yield from ["2026-13-45T99:99:99Z", "2026-02-30T00:00:00Z", "0000-00-00", "9999-99-99T"]
    for _ in range(40):
        yield (
            f"{rng.randrange(10000):04d}-{rng.randrange(100):02d}-{rng.randrange(100):02d}"
            f"T{rng.randrange(100):02d}:{rng.randrange(100):02d}:{rng.randrange(100):02d}"
            + rng.choice(["Z", "+99:99", "", "-05:00"])
        )


def test_made_up_cursors_and_dates_answer_422_and_the_servers_log_holds_no_message(
    server: LiveServer,
) -> None:
    _, users = issue_tokens("hygiene", ["alice"])
    compliance = compliance_token()
    server.start()
    rng = random.Random(20261201)
    statuses: dict[int, int] = {}
    sent: list[str] = []
    with httpx.Client(base_url=server.base_url, timeout=30) as client:
        user = {"Authorization": f"Bearer {users['alice']}"}
        auditor = {"Authorization": f"Bearer {compliance}"}
        for cursor in made_up_cursors(rng):
            sent.append(cursor)
            for path, headers in (
                ("/v1/me/memories", user),
                ("/v1/me/access-log", user),
                ("/v1/me/consents/history", user),
                ("/v1/audit/events", auditor),
            ):
                status = client.get(path, params={"cursor": cursor}, headers=headers).status_code
                statuses[status] = statuses.get(status, 0) + 1
        for moment in made_up_dates(rng):
            sent.append(moment)
            for name in ("since", "until"):
                response = client.get("/v1/audit/events", params={name: moment}, headers=auditor)
                statuses[response.status_code] = statuses.get(response.status_code, 0) + 1
    server.stop()
    assert 500 not in statuses, statuses
    assert set(statuses) <= {200, 422}, statuses
    log = server.log_path.read_text(errors="replace")
    assert "Traceback" not in log
    for fragment in ("Invalid isoformat", "out of range", "Expecting value", "Incorrect padding"):
        assert fragment not in log, fragment
    leaked = [value for value in sent if len(value) > 12 and value in log]
    assert not leaked, leaked[:3]


def compliance_token() -> str:
    """A compliance token, issued with the test's environment before the server starts."""
    runtime = open_runtime(Settings())
    try:
        return runtime.tokens.issue(role=Role.compliance, name="auditor").token
    finally:
        runtime.close()
