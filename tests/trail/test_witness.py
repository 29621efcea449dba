"""Checkpoints published outside the database as they are cut (trail/witness.py): one private
file per checkpoint in the witness directory, never overwritten; a POST to the witness URL
that never holds up an append and logs failures without the URL."""

from __future__ import annotations

import base64
import stat
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import ClassVar

import pytest
from pydantic import ValidationError

from audit import TreeCheckpoint, load_anchors
from memory_store.config import Settings
from memory_store.domain import OPERATOR
from memory_store.runtime import Runtime, open_runtime
from memory_store.trail.witness import WitnessDirectory, WitnessPoster, note_name


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_a_checkpoint_is_published_as_one_private_note_file_named_by_its_size(
    runtime: Runtime, settings: Settings
) -> None:
    for _ in range(3):
        runtime.auditor.record(OPERATOR, "test.append")
    signed = runtime.audit_log.checkpoint()
    assert signed is not None
    witness = settings.resolved_audit_witness_dir()
    assert witness == settings.data_dir / "audit-witness"
    (published,) = witness.iterdir()
    assert published.name == f"checkpoint-{signed.size:012d}-{signed.root.hex()[:16]}.note"
    assert published.read_text() == signed.note
    assert mode(witness) == 0o700 and mode(published) == 0o600
    assert TreeCheckpoint.parse(published.read_text()).verify(
        runtime.audit_log.signing_key.public_key
    )
    # Cutting the same tree again (the close does) leaves the one file as it is.
    assert runtime.audit_log.checkpoint() == signed
    assert [p.name for p in witness.iterdir()] == [published.name]


def test_a_contradicting_checkpoint_of_the_same_size_lands_beside_the_first(
    runtime: Runtime, tmp_path: Path
) -> None:
    key = runtime.audit_log.signing_key
    directory = WitnessDirectory(tmp_path / "w")
    first = directory.publish(key.sign_tree(10, b"\x01" * 32))
    second = directory.publish(key.sign_tree(10, b"\x02" * 32))
    assert first != second
    assert sorted(c.seq for c in load_anchors(tmp_path / "w")) == [10, 10]
    assert directory.latest(key.public_key) == TreeCheckpoint.parse(second.read_text())


def test_the_witness_directory_setting_is_honoured(tmp_path: Path) -> None:
    elsewhere = tmp_path / "mounted" / "witness"
    settings = Settings(
        data_dir=tmp_path / "var", retention_sweep_seconds=0, audit_witness_dir=elsewhere
    )
    runtime = open_runtime(settings)
    runtime.auditor.record(OPERATOR, "test.append")
    runtime.close()  # signs a last checkpoint
    assert [c.seq for c in load_anchors(elsewhere)] == [1]
    assert not (tmp_path / "var" / "audit-witness").exists()


def test_a_witness_directory_that_cannot_be_written_fails_neither_appends_nor_the_checkpoint(
    runtime: Runtime, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    settings.resolved_audit_witness_dir().write_text("a file where the directory should be")
    runtime.auditor.record(OPERATOR, "test.append")
    signed = runtime.audit_log.checkpoint()
    assert signed is not None  # signed and stored in the database
    assert [c.seq for c in runtime.audit_store.checkpoints()] == [signed.size]
    runtime.auditor.record(OPERATOR, "test.append")  # appends go on
    assert "audit_witness_write_failed" in capsys.readouterr().out


class _Witness(BaseHTTPRequestHandler):
    received: ClassVar[list[tuple[str, str, str]]] = []
    status = 200

    def do_POST(self) -> None:
        length = int(self.headers["Content-Length"])
        body = self.rfile.read(length).decode()
        sent = (self.headers["Content-Type"], self.headers.get("Authorization", ""), body)
        type(self).received.append(sent)
        self.send_response(type(self).status)
        self.end_headers()

    def log_message(self, *args: object) -> None:
        return


@pytest.fixture
def witness_server() -> Iterator[tuple[str, type[_Witness]]]:
    handler = type("Witness", (_Witness,), {"received": [], "status": 200})
    server = HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://token:s3cret@127.0.0.1:{server.server_port}/add-checkpoint", handler
    server.shutdown()
    server.server_close()


def test_each_checkpoint_is_posted_to_the_witness_url(
    tmp_path: Path, witness_server: tuple[str, type[_Witness]]
) -> None:
    url, handler = witness_server
    settings = Settings(data_dir=tmp_path / "var", retention_sweep_seconds=0, audit_witness_url=url)
    runtime = open_runtime(settings)
    runtime.auditor.record(OPERATOR, "test.append")
    signed = runtime.audit_log.checkpoint()
    runtime.close()  # sends what is queued
    assert signed is not None
    basic = "Basic " + base64.b64encode(b"token:s3cret").decode()
    assert ("text/plain; charset=utf-8", basic, signed.note) in handler.received


def test_a_failing_witness_url_is_logged_without_the_url_and_holds_nothing_up(
    tmp_path: Path,
    witness_server: tuple[str, type[_Witness]],
    capsys: pytest.CaptureFixture[str],
) -> None:
    url, handler = witness_server
    handler.status = 503
    poster = WitnessPoster(url, timeout=2)
    poster.post("a note\n")
    poster.close()
    unreachable = WitnessPoster("http://127.0.0.1:9/nothing-listens", timeout=2)
    unreachable.post("a note\n")
    unreachable.close()
    logged = capsys.readouterr().out
    failures = [line for line in logged.splitlines() if "audit_witness_post_failed" in line]
    assert len(failures) == 2
    assert "status=503" in failures[0] and "error_type=URLError" in failures[1]
    assert "s3cret" not in logged and "127.0.0.1" not in logged and "a note" not in logged
    assert poster.sent == unreachable.sent == 0


def test_a_full_post_queue_drops_the_newest_note_instead_of_waiting(tmp_path: Path) -> None:
    gate = threading.Event()

    class Stuck(WitnessPoster):
        def _run(self) -> None:
            gate.wait(5)

    poster = Stuck("http://127.0.0.1:9/", timeout=1)
    for n in range(200):  # returns at once, whatever the queue holds
        poster.post(f"note {n}\n")
    gate.set()


@pytest.mark.parametrize("url", ["ftp://witness.example/", "file:///etc/passwd", "witness"])
def test_a_witness_url_must_be_http(url: str) -> None:
    with pytest.raises(ValidationError, match="http"):
        Settings(audit_witness_url=url)


def test_note_names_sort_by_tree_size(runtime: Runtime) -> None:
    key = runtime.audit_log.signing_key
    names = [note_name(key.sign_tree(size, b"\x03" * 32)) for size in (9, 10, 1000, 99)]
    assert sorted(names) == [names[0], names[1], names[3], names[2]]
