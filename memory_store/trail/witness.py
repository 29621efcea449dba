"""Publishing checkpoints outside the database, as they are cut: a witness directory (one
note per checkpoint) and, optionally, a witness URL each note is POSTed to.

The directory is what the service's own verify trusts, and what an auditor copies: point it
at storage the audit database's writers cannot change (another volume, a mount only this
service writes, a replicated bucket). A file is never overwritten with other content: each is
named by its tree size and root (`checkpoint-<size>-<root>.note`), so a second, contradicting
checkpoint of the same size lands beside the first and the verifier sees both.

The POST is best effort: a thread of its own sends each note (text/plain), so that neither an
append nor a checkpoint ever waits for it; failures are logged by kind, without the URL (it
may carry a credential) or the note.
"""

from __future__ import annotations

import base64
import contextlib
import os
import queue
import secrets
import threading
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from audit import AnyCheckpoint, TreeCheckpoint, load_anchors
from memory_store.logging import get_logger

_log = get_logger("memory_store.audit")

_POST_QUEUE = 64  # notes waiting for the witness URL; beyond that the newest is dropped


def note_name(checkpoint: TreeCheckpoint) -> str:
    return f"checkpoint-{checkpoint.size:012d}-{checkpoint.root.hex()[:16]}.note"


class WitnessDirectory:
    """One file per checkpoint, written whole (a private temp file, fsynced, then linked into
    place), mode 0600 in a directory of mode 0700."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def publish(self, checkpoint: TreeCheckpoint) -> Path:
        """Write the note unless the same note is there already; raises OSError."""
        self.path.mkdir(parents=True, exist_ok=True, mode=0o700)
        target = self.path / note_name(checkpoint)
        data = checkpoint.note.encode()
        if target.exists() and target.read_bytes() == data:
            return target
        temp = self.path / f".{target.name}.{os.getpid()}.{secrets.token_hex(8)}.tmp"
        fd = os.open(temp, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
        try:
            with os.fdopen(fd, "wb") as handle:
                handle.write(data)
                handle.flush()
                os.fsync(handle.fileno())
            try:
                os.link(temp, target)  # never replaces: a file already there stays
            except FileExistsError:
                if target.read_bytes() != data:
                    raise
        finally:
            temp.unlink(missing_ok=True)
        _fsync_directory(self.path)
        return target

    def latest(self, public_key: Ed25519PublicKey) -> TreeCheckpoint | None:
        """The largest checkpoint this directory holds that `public_key` signed for its log
        (file names sort by tree size); what cannot be read is passed over."""
        if not self.path.is_dir():
            return None
        for path in sorted(self.path.glob("checkpoint-*.note"), reverse=True):
            try:
                checkpoint = TreeCheckpoint.parse(path.read_text())
            except (OSError, ValueError):
                continue
            if checkpoint.verify(public_key):
                return checkpoint
        return None

    def checkpoints(self) -> list[AnyCheckpoint]:
        """Every checkpoint published here (none if the directory does not exist yet).
        Raises OSError, or ValueError naming a file that is not a checkpoint."""
        if not self.path.exists():
            return []
        return load_anchors(self.path)


def _fsync_directory(path: Path) -> None:
    """So that the new name survives a power cut as the file's content does."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class WitnessPoster:
    """POSTs each note to a URL from a thread of its own; never blocks, never raises."""

    def __init__(self, url: str, *, timeout: float = 5.0) -> None:
        # user:password@ in the URL is sent as Basic authorization (urllib would not).
        parts = urllib.parse.urlsplit(url)
        self._headers = {"Content-Type": "text/plain; charset=utf-8"}
        if parts.username is not None:
            user, password = parts.username, parts.password or ""
            secret = f"{urllib.parse.unquote(user)}:{urllib.parse.unquote(password)}"
            self._headers["Authorization"] = "Basic " + base64.b64encode(secret.encode()).decode()
            host = parts.netloc.rpartition("@")[2]
            url = urllib.parse.urlunsplit(parts._replace(netloc=host))
        self._url = url
        self._timeout = timeout
        self._queue: queue.Queue[str | None] = queue.Queue(maxsize=_POST_QUEUE)
        self._thread = threading.Thread(target=self._run, name="audit-witness-post", daemon=True)
        self._thread.start()
        self.sent = 0

    def post(self, note: str) -> None:
        try:
            self._queue.put_nowait(note)
        except queue.Full:
            _log.warning("audit_witness_post_dropped", reason="queue_full")

    def close(self) -> None:
        """Send what is queued (each within its timeout), then stop."""
        with contextlib.suppress(queue.Full):
            self._queue.put(None, timeout=self._timeout)
        self._thread.join(timeout=self._timeout * 2)

    def _run(self) -> None:
        while (note := self._queue.get()) is not None:
            request = urllib.request.Request(  # noqa: S310 (http or https: Settings checks it)
                self._url,
                data=note.encode(),
                method="POST",
                headers=self._headers,
            )
            try:
                with urllib.request.urlopen(request, timeout=self._timeout) as response:  # noqa: S310
                    response.read(1024)
                self.sent += 1
            except urllib.error.HTTPError as exc:
                _log.warning("audit_witness_post_failed", status=exc.code)
            except Exception as exc:
                _log.warning("audit_witness_post_failed", error_type=type(exc).__name__)


class Witnesses:
    """Where each checkpoint is published as it is cut: the directory, then the URL."""

    def __init__(self, directory: WitnessDirectory, poster: WitnessPoster | None = None) -> None:
        self.directory = directory
        self._poster = poster

    def publish(self, checkpoint: TreeCheckpoint) -> None:
        """Never raises: a failure is logged, and the next checkpoint is published again."""
        try:
            self.directory.publish(checkpoint)
        except OSError as exc:
            _log.error("audit_witness_write_failed", error_type=type(exc).__name__)
        if self._poster is not None:
            self._poster.post(checkpoint.note)

    def close(self) -> None:
        if self._poster is not None:
            self._poster.close()
