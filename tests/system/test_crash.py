"""Crash safety: the server killed with SIGKILL at random moments, under concurrent writes and
audited reads, loses no acknowledged write, shows no half-written one, and leaves an audit
trail that verifies.

A real server process (`memory-store serve`, uvicorn) is driven over HTTP by writer threads
(each write a distinct, known content) and reader threads (audited lists, as the assistant
for a purpose and as the user), and killed with SIGKILL several times, restarted each time.
Every write whose 201 arrived is acknowledged; a write whose connection broke is "in flight"
(it may or may not have happened). Afterwards:

- every acknowledged write is there, through the API as its user, and decrypts to exactly
  what was written (content and source);
- every memory there was either acknowledged or in flight at a kill, and reads back whole
  (never 410, never a content nobody wrote);
- every acknowledged write and every answered read has its audit record (by request id):
  nothing was disclosed or changed without its record being durable;
- `memory-store audit verify`, run as a separate process with the same environment, exits 0.

Runs on SQLite and on PostgreSQL (where the killed process is the server, not the database).
"""

from __future__ import annotations

import json
import random
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from memory_store.config import Settings
from memory_store.runtime import open_runtime
from tests.live_server import LiveServer, run_cli
from tests.system.conftest import issue_tokens

PURPOSE = "personalization"
USERS = ("alice", "bob", "carol")
WRITERS = 3
READERS = 2
KILLS = 6
SEED = 20240531  # the kill schedule; the moments still land wherever the threads are
TIME_BUDGET = 60.0  # kills stop being scheduled past this (at least 5 are required)
REQUEST_TIMEOUT = 30.0


# -- what the clients saw -------------------------------------------------------------------


@dataclass
class Write:
    user_id: str
    content: str
    source: str
    request_id: str
    outcome: str = "pending"  # acknowledged | in-flight | not-sent | refused
    memory_id: str | None = None
    status: int | None = None


@dataclass
class Ledger:
    lock: threading.Lock = field(default_factory=threading.Lock)
    writes: dict[str, Write] = field(default_factory=dict)  # by content
    # (request id, user) of every read answered 200
    reads_answered: list[tuple[str, str]] = field(default_factory=list)
    errors: list[str] = field(default_factory=list)  # anything a client must never see

    def error(self, message: str) -> None:
        with self.lock:
            self.errors.append(message)


def request_id(kind: str) -> str:
    return f"crash-{kind}-{secrets.token_hex(8)}"


def writer(
    number: int, server: LiveServer, token: str, ledger: Ledger, stop: threading.Event
) -> None:
    headers = {"Authorization": f"Bearer {token}"}
    sequence = 0
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        while not stop.is_set():
            sequence += 1
            user_id = USERS[(number + sequence) % len(USERS)]
            write = Write(
                user_id=user_id,
                content=f"crash-canary w{number} n{sequence} r-{secrets.token_hex(6)} {user_id}",
                source=f"writer {number}",
                request_id=request_id("write"),
            )
            with ledger.lock:
                ledger.writes[write.content] = write
            try:
                response = client.post(
                    f"{server.base_url}/v1/users/{user_id}/memories",
                    params={"purpose": PURPOSE},
                    json={
                        "content": write.content,
                        "category": "interests",
                        "source": write.source,
                    },
                    headers={**headers, "X-Request-ID": write.request_id},
                )
            except httpx.ConnectError:
                write.outcome = "not-sent"  # nobody listening: it never reached a server
                time.sleep(0.1)  # down: wait for the restart
                continue
            except httpx.TransportError:
                write.outcome = "in-flight"  # the connection broke: it may have happened
                continue
            write.status = response.status_code
            if response.status_code != 201:
                write.outcome = "refused"
                ledger.error(f"write answered {response.status_code}: {response.text[:300]}")
                continue
            body = response.json()
            if body["content"] != write.content or body["source"] != write.source:
                ledger.error(f"write {body['id']} answered other contents: {body}")
            write.memory_id, write.outcome = body["id"], "acknowledged"


def reader(
    number: int,
    server: LiveServer,
    assistant: str,
    users: dict[str, str],
    ledger: Ledger,
    stop: threading.Event,
) -> None:
    sequence = 0
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        while not stop.is_set():
            sequence += 1
            user_id = USERS[(number + sequence) % len(USERS)]
            rid = request_id("read")
            if sequence % 2:
                url = f"{server.base_url}/v1/users/{user_id}/memories"
                params = {"purpose": PURPOSE, "limit": "50"}
                token = assistant
            else:
                url, params, token = (
                    f"{server.base_url}/v1/me/memories",
                    {"limit": "50"},
                    users[user_id],
                )
            try:
                response = client.get(
                    url,
                    params=params,
                    headers={"Authorization": f"Bearer {token}", "X-Request-ID": rid},
                )
            except httpx.ConnectError:
                time.sleep(0.1)  # down: wait for the restart
                continue
            except httpx.TransportError:
                continue
            if response.status_code != 200:
                ledger.error(f"read answered {response.status_code}: {response.text[:300]}")
                continue
            with ledger.lock:
                ledger.reads_answered.append((rid, user_id))
                known = {w.content: w for w in ledger.writes.values()}
            for item in response.json()["items"]:
                written = known.get(item["content"])
                if written is None or written.user_id != user_id:
                    ledger.error(f"read {item['id']}: a content nobody wrote for {user_id}")


def client_thread(ledger: Ledger, target: Callable[..., None], *args: object) -> threading.Thread:
    """A daemon thread whose crash, if any, fails the test instead of passing unnoticed."""

    def run() -> None:
        try:
            target(*args)
        except Exception as exc:
            ledger.error(f"{target.__name__} crashed: {exc!r}")

    return threading.Thread(target=run, daemon=True)


def list_all(client: httpx.Client, base_url: str, token: str) -> list[dict[str, object]]:
    """Every memory the user's token sees, through the API, every page."""
    items: list[dict[str, object]] = []
    cursor: str | None = None
    while True:
        params = {"limit": "100", **({"cursor": cursor} if cursor else {})}
        page = client.get(
            f"{base_url}/v1/me/memories",
            params=params,
            headers={"Authorization": f"Bearer {token}"},
        )
        assert page.status_code == 200, f"listing after the kills: {page.status_code} {page.text}"
        body = page.json()
        items += body["items"]
        cursor = body["next_cursor"]
        if not cursor:
            return items


# -- the test ---------------------------------------------------------------------------------


def test_sigkill_under_load_loses_no_acknowledged_write_and_the_trail_verifies(
    server: LiveServer, tmp_path: Path
) -> None:
    """SIGKILL the server at random moments (6 times) while threads write and read: every
    acknowledged write survives and decrypts, nothing unacknowledged is half-visible, every
    answered request has its audit record, and `memory-store audit verify` exits 0."""
    assistant, users = issue_tokens("crash-assistant", list(USERS))
    server.start()

    ledger, stop = Ledger(), threading.Event()
    threads = [
        client_thread(ledger, writer, n, server, assistant, ledger, stop) for n in range(WRITERS)
    ]
    threads += [
        client_thread(ledger, reader, n, server, assistant, users, ledger, stop)
        for n in range(READERS)
    ]
    rng = random.Random(SEED)
    started = time.monotonic()
    kills = 0
    for thread in threads:
        thread.start()
    try:
        while kills < KILLS and time.monotonic() - started < TIME_BUDGET:
            time.sleep(rng.uniform(0.3, 1.5))
            server.kill()
            kills += 1
            server.start()
        time.sleep(0.5)  # traffic against the last restart too
    finally:
        stop.set()
        for thread in threads:
            thread.join(timeout=REQUEST_TIMEOUT + 5)
    assert not any(thread.is_alive() for thread in threads), "a client thread hung"
    assert kills >= 5, f"only {kills} kills within {TIME_BUDGET}s"

    # Through the API, as each user: what is there, and does it read back whole?
    writes = list(ledger.writes.values())
    acknowledged = {w.memory_id: w for w in writes if w.outcome == "acknowledged"}
    in_flight = {w.content: w for w in writes if w.outcome == "in-flight"}
    found_in_flight: list[str] = []
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        for user_id, token in users.items():
            for item in list_all(client, server.base_url, token):
                memory_id, content = str(item["id"]), str(item["content"])
                if memory_id in acknowledged:
                    written = acknowledged.pop(memory_id)
                    assert (written.user_id, written.content, written.source) == (
                        user_id,
                        content,
                        item["source"],
                    ), f"{memory_id} reads back other than written"
                    continue
                # Not acknowledged: it must be a write that was in flight at a kill, whole.
                written = in_flight.get(content)
                assert written is not None and written.user_id == user_id, (
                    f"{memory_id} of {user_id} was never acknowledged nor in flight: {item}"
                )
                single = client.get(
                    f"{server.base_url}/v1/me/memories/{memory_id}",
                    headers={"Authorization": f"Bearer {token}"},
                )
                assert single.status_code == 200, f"in-flight {memory_id}: {single.text}"
                assert (single.json()["content"], single.json()["source"]) == (
                    written.content,
                    written.source,
                )
                found_in_flight.append(memory_id)
    lost = [(w.user_id, w.memory_id, w.content) for w in acknowledged.values()]
    assert not lost, f"acknowledged writes lost after SIGKILL: {lost}"
    assert not ledger.errors, "\n".join(ledger.errors[:10])
    verified_writes = sum(1 for w in writes if w.outcome == "acknowledged")
    assert verified_writes >= 20, f"too little traffic to prove anything: {verified_writes}"
    server.stop()

    # The trail: verifies as a whole, and holds a record of every answered request.
    verify = run_cli("audit", "verify")
    assert verify.returncode == 0, f"audit verify: {verify.stdout}\n{verify.stderr}"
    assert json.loads(verify.stdout)["ok"] is True
    export_path = tmp_path / "audit-export.jsonl"
    export = run_cli("audit", "export", "-o", str(export_path))
    assert export.returncode == 0, export.stderr
    # A client's request id is on the trail only as a keyed hash, after the service's own
    # id and a dot (the subject's key keys it): the service can tell which records it has.
    audited = {
        line["record"]["request_id"].partition(".")[2]
        for line in map(json.loads, export_path.read_text().splitlines())
        if line["type"] == "record"
    }
    runtime = open_runtime(Settings(), schema="check")
    try:
        tag = runtime.auditor.request_tag
        unaudited_writes = [
            w.request_id
            for w in writes
            if w.outcome == "acknowledged" and tag(w.request_id, w.user_id) not in audited
        ]
        unaudited_reads = [
            rid for rid, user_id in ledger.reads_answered if tag(rid, user_id) not in audited
        ]
    finally:
        runtime.close()
    assert not unaudited_writes, f"acknowledged writes without a record: {unaudited_writes[:5]}"
    assert not unaudited_reads, f"answered reads without a record: {unaudited_reads[:5]}"
    assert not any(w.request_id in export_path.read_text() for w in writes), (
        "a client's request id is on the trail as it was sent"
    )
    print(
        f"\ncrash: {kills} kills survived in {time.monotonic() - started:.1f}s; "
        f"{verified_writes} acknowledged writes verified, {len(found_in_flight)} in-flight "
        f"writes found whole (of {len(in_flight)} in flight, "
        f"{sum(1 for w in writes if w.outcome == 'not-sent')} not sent); "
        f"{len(ledger.reads_answered)} answered reads audited; trail of {len(audited)} "
        f"request ids verifies"
    )
