"""The faces' tests that need the server as a real process (MCP over stdio and at /mcp)."""

from __future__ import annotations

from tests.live_server import server

__all__ = ["server"]
