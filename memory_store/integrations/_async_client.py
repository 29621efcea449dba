"""The async client for the event loop that is running: an httpx AsyncClient belongs to the
loop it first ran on, and frameworks (and tests) may run more than one loop in a process."""

from __future__ import annotations

import asyncio

from memory_store.client import AsyncMemoryStoreClient


class LoopClient:
    def __init__(self, url: str, token: str, *, timeout: float) -> None:
        self._url, self._token, self._timeout = url, token, timeout
        self._current: tuple[asyncio.AbstractEventLoop, AsyncMemoryStoreClient] | None = None

    def get(self) -> AsyncMemoryStoreClient:
        loop = asyncio.get_running_loop()
        if self._current is None or self._current[0] is not loop:
            client = AsyncMemoryStoreClient(self._url, self._token, timeout=self._timeout)
            self._current = (loop, client)
        return self._current[1]

    async def aclose(self) -> None:
        if self._current is not None and self._current[0] is asyncio.get_running_loop():
            await self._current[1].aclose()
        self._current = None
