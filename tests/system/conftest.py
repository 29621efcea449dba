"""The server as a real process, for the tests of this folder."""

from __future__ import annotations

from tests.live_server import issue_tokens, server

__all__ = ["issue_tokens", "server"]
