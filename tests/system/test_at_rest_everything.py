"""Invariants 1 and 3, end to end on a running server: no plaintext in any file it wrote, and
forgetting a user leaves nothing of theirs anywhere, nor anything that can be decrypted.

A real server process (`memory-store serve`, SQLite, JSON logs at debug level, its stdout and
stderr redirected to a file in its data dir) takes a mixed workload with known canary strings:
memory contents (written, edited, refused, invalid), sources, search queries, user ids
mentioned inside contents, and the bearer tokens themselves. Then every file the service wrote
(databases, WAL and SHM files, lock files, the key file, the signing key, the log) is searched
for every canary, as UTF-8 and as UTF-16: none may be found.

Then one user forgets everything (DELETE /v1/me). Their id, contents, sources, queries, token,
ciphertexts and wrapped data key are found nowhere in the data dir any more, while the server
runs and after it stopped; the key store holds no row for them; and a copy of the memory
database taken just before (a backup) holds ciphertexts that no remaining key opens.
"""

from __future__ import annotations

import secrets
import signal
import sqlite3
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pytest

from memory_store.config import Settings
from memory_store.domain import Role
from memory_store.keys.payload import Binding
from memory_store.runtime import open_runtime
from memory_store.storage.rawdb import RawDB
from tests.keys.attempts import assert_opens_with_none
from tests.live_server import LiveServer, server_environment

pytestmark = pytest.mark.sqlite_only

PURPOSE = "personalization"
REQUEST_TIMEOUT = 30.0
RUN = secrets.token_hex(4)  # canaries unique to this run: nothing else can contain them


# -- the server, as a real process ------------------------------------------------------------


@pytest.fixture
def data_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    data = tmp_path / "var"
    server_environment(monkeypatch, data)
    monkeypatch.setenv("MEMORY_STORE_LOG_LEVEL", "debug")  # the most the logs ever say
    return data


@pytest.fixture
def server(data_dir: Path) -> Iterator[LiveServer]:
    """This test's own server, in place of the folder's: its log inside the data dir (so the
    search covers it), debug logs, and killed at the end, not stopped."""
    data_dir.mkdir(mode=0o700, parents=True, exist_ok=True)
    live = LiveServer(data_dir / "server.log")
    yield live
    if live.process is not None and live.process.poll() is None:
        live.kill()


# -- the canaries and the search ------------------------------------------------------------


@dataclass
class Canaries:
    """Every string the workload sends that must never be stored in the clear, by user."""

    by_user: dict[str, list[str]] = field(default_factory=dict)

    def add(self, user_id: str, text: str) -> str:
        self.by_user.setdefault(user_id, []).append(text)
        return text

    def all(self) -> list[str]:
        return [text for texts in self.by_user.values() for text in texts]


def needles(texts: list[str]) -> dict[bytes, str]:
    """Each string as UTF-8 and as UTF-16 (SQLite may store text either way)."""
    found: dict[bytes, str] = {}
    for text in texts:
        found[text.encode()] = text
        found[text.encode("utf-16-le")] = text
    return found


def service_files(data_dir: Path) -> list[Path]:
    return sorted(path for path in data_dir.rglob("*") if path.is_file())


def search(data_dir: Path, wanted: dict[bytes, str]) -> list[str]:
    """`file: string` for every wanted byte string found in any file under the data dir."""
    hits = []
    for path in service_files(data_dir):
        data = path.read_bytes()
        hits += [f"{path.name}: {text!r}" for needle, text in wanted.items() if needle in data]
    return hits


def rows(database: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    connection = sqlite3.connect(f"file:{database}?mode=ro", uri=True, timeout=30)
    try:
        return connection.execute(sql, args).fetchall()
    finally:
        connection.close()


# -- the test ---------------------------------------------------------------------------------


def test_no_canary_in_any_file_and_a_forgotten_user_leaves_nothing_decryptable(
    server: LiveServer, data_dir: Path, tmp_path: Path
) -> None:
    """A mixed workload with canary strings leaves none of them in any file the service wrote
    (databases, WAL/SHM, keys, logs); after DELETE /v1/me, nothing of that user is left in any
    file, the key store has no row for them, and a backup's ciphertexts cannot be decrypted."""
    alice, bob, carol = "alice", "bob", f"carol-{RUN}"  # carol forgets herself at the end
    canaries = Canaries()
    runtime = open_runtime(Settings())
    try:
        issued = {
            name: runtime.tokens.issue(role=role, name=f"at-rest-{name}", user_id=user).token
            for name, role, user in [
                ("assistant", Role.assistant, None),
                ("compliance", Role.compliance, None),
                (alice, Role.user, alice),
                (bob, Role.user, bob),
                (carol, Role.user, carol),
            ]
        }
    finally:
        runtime.close()
    for name, token in issued.items():
        canaries.add(name if name in (alice, bob, carol) else "staff", token)
    server.start()
    auth = {name: {"Authorization": f"Bearer {token}"} for name, token in issued.items()}
    refusals: list[httpx.Response] = []

    with httpx.Client(base_url=server.base_url, timeout=REQUEST_TIMEOUT) as client:

        def call(method: str, path: str, who: str, expect: int, **kw: Any) -> httpx.Response:
            response = client.request(
                method, path, headers={**auth[who], **kw.pop("headers", {})}, **kw
            )
            assert response.status_code == expect, f"{method} {path}: {response.text}"
            if response.status_code >= 400:
                refusals.append(response)
            return response

        # Consent: carol opts in to health; alice does not.
        call("PUT", "/v1/me/consents/personalization/health", carol, 200, json={"granted": True})
        written: dict[str, list[str]] = {}
        for user in (alice, bob, carol):
            for n, category in enumerate(["preferences", "work", "relationships"]):
                content = canaries.add(
                    user, f"canary-{RUN}-content-{user}-{n}: prefers aisle seats to Reykjavik"
                )
                if n == 2:  # a user id mentioned inside a content
                    content = canaries.add(
                        user, f"canary-{RUN}-content-{user}-{n} met mentioned-uid-{RUN}-{user}"
                    )
                    canaries.add(user, f"mentioned-uid-{RUN}-{user}")
                source = canaries.add(user, f"canary-{RUN}-source-{user}-{n}")
                body = {"content": content, "category": category, "source": source}
                response = call(
                    "POST",
                    f"/v1/users/{user}/memories",
                    "assistant",
                    201,
                    params={"purpose": PURPOSE},
                    json=body,
                )
                written.setdefault(user, []).append(response.json()["id"])
        health = canaries.add(carol, f"canary-{RUN}-health-{carol}: takes an unusual medication")
        call(
            "POST",
            f"/v1/users/{carol}/memories",
            "assistant",
            201,
            params={"purpose": PURPOSE},
            json={"content": health, "category": "health"},
        )
        # Refused and invalid writes: their contents must not be stored, logged or echoed.
        refused = canaries.add(alice, f"canary-{RUN}-refused-health-{alice}")
        call(
            "POST",
            f"/v1/users/{alice}/memories",
            "assistant",
            403,
            params={"purpose": PURPOSE},
            json={"content": refused, "category": "health"},
        )
        invalid = canaries.add(alice, f"canary-{RUN}-invalid-{alice}")
        call(
            "POST",
            f"/v1/users/{alice}/memories",
            "assistant",
            422,
            params={"purpose": PURPOSE},
            json={"content": invalid, "category": 7},
        )
        call(
            "POST",
            f"/v1/users/{alice}/memories",
            "assistant",
            422,
            params={"purpose": PURPOSE},
            json={"content": invalid + "x" * 4096, "category": "preferences"},
        )
        malformed = canaries.add(alice, f"canary-{RUN}-malformed-{alice}")
        call(
            "POST",
            f"/v1/users/{alice}/memories",
            "assistant",
            400,
            params={"purpose": PURPOSE},
            content=f'{{"content": "{malformed}", "category": ',
            headers={"Content-Type": "application/json"},
        )
        # Searches: by the assistant for a purpose, and by each user; hits and misses.
        for user in (alice, bob, carol):
            hit = canaries.add(user, f"content-{user}-1:")
            miss = canaries.add(user, f"canary-{RUN}-query-nothing-{user}")
            for q in (hit, miss):
                call(
                    "GET",
                    f"/v1/users/{user}/memories",
                    "assistant",
                    200,
                    params={"purpose": PURPOSE, "q": q},
                )
                call("GET", "/v1/me/memories", user, 200, params={"q": q})
            listed = call("GET", "/v1/me/memories", user, 200, params={"q": hit})
            assert [m["id"] for m in listed.json()["items"]] == [written[user][1]]
        # Reads, an edit with history, an export, single and category deletions.
        for user in (alice, bob, carol):
            first = written[user][0]
            etag = call("GET", f"/v1/me/memories/{first}", user, 200).headers["etag"]
            edited = canaries.add(user, f"canary-{RUN}-edited-{user}: prefers window seats")
            call(
                "PATCH",
                f"/v1/me/memories/{first}",
                user,
                200,
                json={"content": edited},
                headers={"If-Match": etag},
            )
            history = call("GET", f"/v1/me/memories/{first}/history", user, 200).json()
            assert history[0]["content"].startswith(f"canary-{RUN}-content-{user}-0")
            call("GET", "/v1/me/export", user, 200)
            call("GET", "/v1/me/access-log", user, 200)
            call(
                "GET",
                f"/v1/users/{user}/memories/{written[user][1]}",
                "assistant",
                200,
                params={"purpose": PURPOSE},
            )
        call("DELETE", f"/v1/me/memories/{written[bob][2]}", bob, 204)
        call("DELETE", "/v1/me/memories", alice, 200, params={"category": "work"})
        call(
            "PUT",
            "/v1/me/consents/personalization/preferences",
            alice,
            200,
            json={"granted": False},
        )
        call("PATCH", "/v1/me/settings", bob, 200, json={"memory_enabled": False})
        call("GET", f"/v1/users/{bob}/memories", "assistant", 200, params={"purpose": PURPOSE})
        call("PATCH", "/v1/me/settings", bob, 200, json={"memory_enabled": True})
        call("GET", "/v1/audit/events", "compliance", 200, params={"user_id": alice})
        call("GET", "/v1/audit/export", "compliance", 200)
        assert call("GET", "/v1/audit/verify", "compliance", 200).json()["ok"] is True

        # No problem response echoed what it refused.
        for response in refusals:
            for text in canaries.all():
                assert text not in response.text, f"a {response.status_code} echoed {text!r}"

        # 1. While the server runs (WAL and SHM files in place): no canary in any file.
        files = service_files(data_dir)
        names = {path.name for path in files}
        assert {"memory.db-wal", "keystore.db-wal", "audit.db-wal", "server.log"} <= names, names
        assert (data_dir / "server.log").stat().st_size > 0
        everything = needles(canaries.all())
        hits = search(data_dir, everything)
        assert not hits, f"plaintext at rest: {hits}"

        # 2. Carol forgets everything. First what is hers, and a backup of the memory data.
        memory_db, keystore_db = data_dir / "memory.db", data_dir / "keystore.db"
        ciphertexts = [
            blob
            for table in ("memories", "memory_versions")
            for (blob,) in rows(
                memory_db, f"SELECT ciphertext FROM {table} WHERE user_id = ?", carol
            )
        ]
        assert len(ciphertexts) >= 5, len(ciphertexts)  # 4 memories and 1 earlier version
        (wrapped_key,) = rows(keystore_db, "SELECT wrapped FROM data_keys WHERE user_id = ?", carol)
        backup = tmp_path / "backup-memory.db"
        with sqlite3.connect(f"file:{memory_db}?mode=ro", uri=True) as source:
            target = sqlite3.connect(backup)
            source.backup(target)
            target.close()
        hers = (
            needles(canaries.by_user[carol] + [carol])
            | {blob: f"ciphertext of {len(blob)} bytes" for blob in ciphertexts}
            | {wrapped_key[0]: "her wrapped data key"}
        )
        before = search(data_dir, hers)
        assert any(carol in hit for hit in before), "her id should be on disk before she forgets"

        receipt = call("DELETE", "/v1/me", carol, 200).json()
        assert receipt["data_key_destroyed"] is True
        assert receipt["memories"] == 4 and receipt["memory_versions"] == 1, receipt
        assert client.get("/v1/me", headers=auth[carol]).status_code == 401
        # (A request about her id from here on makes no key: its records name a stranger.)

        hits = search(data_dir, hers)
        assert not hits, f"left of the forgotten user while the server runs: {hits}"
    server.stop()
    assert server.process is not None and server.process.returncode in (0, -signal.SIGTERM)
    hits = search(data_dir, hers) + search(data_dir, everything)
    assert not hits, f"left on disk after the server stopped: {hits}"

    # 3. Nothing can decrypt what may remain elsewhere: no key row, and no other key opens her
    #    ciphertexts in the backup.
    assert rows(keystore_db, "SELECT count(*) FROM data_keys WHERE user_id = ?", carol) == [(0,)]
    keyed = [
        table
        for (table,) in rows(memory_db, "SELECT name FROM sqlite_master WHERE type = 'table'")
        if any(column[1] == "user_id" for column in rows(memory_db, f"PRAGMA table_info({table})"))
    ]
    assert {"memories", "memory_versions", "consents", "api_tokens"} <= set(keyed), keyed
    for table in keyed:
        assert rows(memory_db, f"SELECT count(*) FROM {table} WHERE user_id = ?", carol) == [(0,)]
    backed_up = [
        (
            Binding(
                "memory", carol, memory_id, version, category, RawDB.read_time(expires), key_id
            ),
            blob,
        )
        for memory_id, version, category, expires, key_id, blob in rows(
            backup,
            "SELECT id, version, category, expires_at, key_id, ciphertext FROM memories "
            "WHERE user_id = ?",
            carol,
        )
    ]
    assert len(backed_up) == 4
    runtime = open_runtime(Settings())
    try:
        assert runtime.keyring.key_for_read(carol) is None
        remaining = [row[0] for row in rows(keystore_db, "SELECT user_id FROM data_keys")]
        keys = [runtime.keyring.key_for_read(user) for user in remaining]
        assert alice in remaining and bob in remaining
        held = [key.secret for key in keys if key is not None]
        for key in [k for k in keys if k is not None]:  # and every item key they wrap
            held += [item.secret for item in runtime.keyring.item_keys(key, None).every()]
        for binding, blob in backed_up:
            assert_opens_with_none(held, binding, blob)
    finally:
        runtime.close()
    print(
        f"\nat rest: {len(everything)} byte strings ({len(canaries.all())} canaries, UTF-8 and "
        f"UTF-16) searched in {len(files)} files ({', '.join(sorted(names))}); after the "
        f"forget, {len(hers)} strings of the forgotten user (her id, canaries, "
        f"{len(ciphertexts)} ciphertexts, her wrapped key) found in none of "
        f"{len(service_files(data_dir))} files; {len(backed_up)} backed-up ciphertexts "
        f"opened by none of {len(keys)} remaining keys"
    )
