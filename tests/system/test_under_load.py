"""Key rotation and token revocation while the service is under load.

A real server process (`memory-store serve`) is hammered over HTTP from several threads
(writes, lists for a purpose, a user's own lists, single reads, searches) while the operator's
commands run beside it as separate processes with the same environment:

- `memory-store keys rotate`, twice: not one request fails (every response 2xx), every
  memory still decrypts afterwards, and every data key is wrapped by the newest KEK;
- `memory-store tokens revoke`, in the middle of a burst with that token: once the command
  has returned, no request with the token succeeds (each is 401 unauthenticated), while
  other tokens carry on.
"""

from __future__ import annotations

import random
import re
import secrets
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.runtime import open_runtime
from tests.live_server import LiveServer, run_cli
from tests.system.conftest import issue_tokens

PURPOSE = "personalization"
USERS = ("alice", "bob", "carol", "dave")
WORKERS = 4
REQUEST_TIMEOUT = 30.0


# -- the load -------------------------------------------------------------------------------


@dataclass
class Outcome:
    label: str
    token: str
    started: float
    ended: float
    status: int | None  # None: no answer (a transport error)
    detail: str = ""


@dataclass
class Load:
    """Threads that each repeat `step` until stopped, every request's outcome recorded."""

    base_url: str
    lock: threading.Lock = field(default_factory=threading.Lock)
    outcomes: list[Outcome] = field(default_factory=list)
    written: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (user, content)
    stop: threading.Event = field(default_factory=threading.Event)
    threads: list[threading.Thread] = field(default_factory=list)
    crashes: list[str] = field(default_factory=list)

    def send(
        self, client: httpx.Client, label: str, token: str, method: str, path: str, **kw: Any
    ) -> httpx.Response | None:
        started = time.monotonic()
        try:
            response = client.request(
                method,
                f"{self.base_url}{path}",
                headers={"Authorization": f"Bearer {token}"},
                **kw,
            )
        except httpx.TransportError as exc:
            with self.lock:
                self.outcomes.append(
                    Outcome(label, token, started, time.monotonic(), None, repr(exc))
                )
            return None
        with self.lock:
            self.outcomes.append(
                Outcome(
                    label,
                    token,
                    started,
                    time.monotonic(),
                    response.status_code,
                    response.text[:300],
                )
            )
        return response

    def run(self, workers: int, step: Callable[[Load, httpx.Client, random.Random], None]) -> None:
        def loop(number: int) -> None:
            rng = random.Random(number)
            try:
                with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
                    while not self.stop.is_set():
                        step(self, client, rng)
            except Exception as exc:  # a crashed client fails the test, not silently
                self.crashes.append(repr(exc))

        self.threads = [
            threading.Thread(target=loop, args=(n,), daemon=True) for n in range(workers)
        ]
        for thread in self.threads:
            thread.start()

    def join(self) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=REQUEST_TIMEOUT + 5)
        assert not any(thread.is_alive() for thread in self.threads), "a client thread hung"
        assert not self.crashes, self.crashes


def memory_traffic(
    assistant: str, users: dict[str, str]
) -> Callable[[Load, httpx.Client, random.Random], None]:
    """One step of ordinary traffic: a write, or one of four kinds of read."""

    def step(load: Load, client: httpx.Client, rng: random.Random) -> None:
        user_id = rng.choice(USERS)
        kind = rng.choice(["write", "write", "list", "own", "get", "search"])
        if kind == "write":
            content = f"load-canary {secrets.token_hex(6)} about {user_id}"
            response = load.send(
                client,
                "write",
                assistant,
                "POST",
                f"/v1/users/{user_id}/memories",
                params={"purpose": PURPOSE},
                json={"content": content, "category": "preferences"},
            )
            if response is not None and response.status_code == 201:
                with load.lock:
                    load.written[response.json()["id"]] = (user_id, content)
        elif kind == "list":
            load.send(
                client,
                "list",
                assistant,
                "GET",
                f"/v1/users/{user_id}/memories",
                params={"purpose": PURPOSE, "limit": "20"},
            )
        elif kind == "own":
            load.send(client, "own", users[user_id], "GET", "/v1/me/memories")
        elif kind == "search":
            load.send(
                client, "search", users[user_id], "GET", "/v1/me/memories", params={"q": "canary"}
            )
        else:
            with load.lock:
                mine = [m for m, (owner, _) in load.written.items() if owner == user_id]
            if mine:
                load.send(
                    client, "get", users[user_id], "GET", f"/v1/me/memories/{rng.choice(mine)}"
                )

    return step


def list_all(client: httpx.Client, base_url: str, token: str) -> dict[str, str]:
    """Every memory the user's token sees, id -> content; each page must answer 200."""
    found: dict[str, str] = {}
    cursor: str | None = None
    while True:
        page = client.get(
            f"{base_url}/v1/me/memories",
            params={"limit": "100", **({"cursor": cursor} if cursor else {})},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert page.status_code == 200, f"{page.status_code} {page.text}"
        found.update({item["id"]: item["content"] for item in page.json()["items"]})
        cursor = page.json()["next_cursor"]
        if not cursor:
            return found


# -- the tests --------------------------------------------------------------------------------


def test_two_key_rotations_under_load_fail_no_request_and_every_memory_still_decrypts(
    server: LiveServer,
) -> None:
    """`memory-store keys rotate` twice, as separate processes, while four threads write and
    read over HTTP: every response is 2xx, every acknowledged write reads back (decrypts)
    afterwards, every export opens, and every data key is wrapped by KEK v3."""
    assistant, users = issue_tokens("load", list(USERS))
    server.start()

    load = Load(server.base_url)
    load.run(WORKERS, memory_traffic(assistant, users))
    windows: list[tuple[float, float]] = []
    try:
        time.sleep(1.0)
        for expected in (2, 3):
            began = time.monotonic()
            rotated = run_cli("keys", "rotate")
            windows.append((began, time.monotonic()))
            assert rotated.returncode == 0, rotated.stderr
            assert f"KEK v{expected} is current" in rotated.stdout, rotated.stdout
            time.sleep(0.5)
        time.sleep(0.5)
    finally:
        load.join()

    failed = [o for o in load.outcomes if o.status is None or not 200 <= o.status < 300]
    assert not failed, (
        "\n".join(f"{o.label} -> {o.status}: {o.detail}" for o in failed[:10])
        + f"\n({len(failed)} of {len(load.outcomes)} failed)"
    )
    during = [o for o in load.outcomes if any(a <= o.started and o.ended <= b for a, b in windows)]
    assert len(during) >= 20, f"only {len(during)} requests overlapped the rotations"
    assert len(load.written) >= 20, len(load.written)

    # Every memory, old and new, still decrypts: listed, read one by one, exported.
    with httpx.Client(timeout=REQUEST_TIMEOUT) as client:
        present: dict[str, str] = {}
        for user_id, token in users.items():
            mine = list_all(client, server.base_url, token)
            present.update(mine)
            exported = client.get(
                f"{server.base_url}/v1/me/export", headers={"Authorization": f"Bearer {token}"}
            )
            assert exported.status_code == 200, exported.text
            assert {m["id"] for m in exported.json()["memories"]} == set(mine), user_id
        for memory_id, (user_id, content) in list(load.written.items())[
            :: max(1, len(load.written) // 25)
        ]:
            single = client.get(
                f"{server.base_url}/v1/me/memories/{memory_id}",
                headers={"Authorization": f"Bearer {users[user_id]}"},
            )
            assert single.status_code == 200, single.text
            assert single.json()["content"] == content
    missing = {m: w for m, w in load.written.items() if present.get(m) != w[1]}
    assert not missing, f"acknowledged writes that no longer read back: {list(missing)[:5]}"

    status = run_cli("keys", "status")
    assert status.returncode == 0, status.stderr
    wrapped = {int(v): int(n) for v, n in re.findall(r"KEK v(\d+).*?wraps (\d+)", status.stdout)}
    assert "v3 (current)" in status.stdout, status.stdout
    assert wrapped.get(1, 0) == wrapped.get(2, 0) == 0, status.stdout
    assert wrapped[3] == len(USERS), status.stdout
    print(
        f"\nrotation under load: {len(load.outcomes)} requests, 0 failed "
        f"({len(during)} during the two rotations); {len(present)} memories decrypt"
    )


def test_a_token_revoked_mid_burst_is_refused_on_every_request_after_the_command_returns(
    server: LiveServer,
) -> None:
    """Threads hammer the API with one assistant token while `memory-store tokens revoke`
    runs as a separate process: every request sent after the command returned is 401
    unauthenticated (requests in flight meanwhile may go either way), while another token's
    requests all succeed throughout."""
    runtime = open_runtime(Settings())
    try:
        victim = runtime.tokens.issue(role=Role.assistant, name="revoked-mid-burst")
        other = runtime.tokens.issue(role=Role.assistant, name="carries-on").token
        users = {
            user_id: runtime.tokens.issue(role=Role.user, name=user_id, user_id=user_id).token
            for user_id in USERS
        }
    finally:
        runtime.close()
    server.start()

    victim_step = memory_traffic(victim.token, users)
    other_step = memory_traffic(other, users)

    def step(load: Load, client: httpx.Client, rng: random.Random) -> None:
        (victim_step if rng.random() < 0.75 else other_step)(load, client, rng)

    load = Load(server.base_url)
    load.run(WORKERS, step)
    try:
        time.sleep(1.5)
        began = time.monotonic()
        revoked = run_cli("tokens", "revoke", victim.record.id)
        returned = time.monotonic()
        assert revoked.returncode == 0, revoked.stderr
        time.sleep(1.5)
    finally:
        load.join()

    mine = [o for o in load.outcomes if o.token == victim.token]
    before = [o for o in mine if o.ended < began]
    after = [o for o in mine if o.started > returned]
    assert any(o.status is not None and 200 <= o.status < 300 for o in before), (
        "the token never worked before its revocation"
    )
    assert len(after) >= 10, f"only {len(after)} requests with the token after the revoke"
    accepted = [o for o in after if o.status != 401 or "/problems/unauthenticated" not in o.detail]
    assert not accepted, "\n".join(f"{o.label} -> {o.status}: {o.detail}" for o in accepted[:10])
    overlapping = [o for o in mine if o.started <= returned and o.ended >= began]
    assert all(o.status in (200, 201, 401) for o in overlapping), [o.status for o in overlapping]
    # Any other outcome, of either token, is a failure.
    others = [o for o in load.outcomes if o.token != victim.token]
    assert others and all(o.status is not None and 200 <= o.status < 300 for o in others), [
        (o.label, o.status, o.detail) for o in others if o.status is None or o.status >= 300
    ][:10]
    unexpected = [o for o in before if o.status is None or not 200 <= o.status < 300]
    assert not unexpected, [(o.label, o.status, o.detail) for o in unexpected[:10]]
    print(
        f"\nrevocation mid-burst: {len(before)} requests with the token before, "
        f"{len(overlapping)} while the command ran, {len(after)} after it returned (all 401); "
        f"{len(others)} with another token, all 2xx"
    )
