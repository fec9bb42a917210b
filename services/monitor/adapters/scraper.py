"""Fetches Prometheus text from many targets at once over HTTP, each with its own time limit."""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence

import aiohttp


class ScrapeError(Exception):
    """A target did not answer with metrics (refused, timed out, HTTP error)."""


class Scraper:
    """One pooled HTTP client; at most `concurrency` scrapes in flight, each bounded by `timeout_s`."""

    def __init__(self, concurrency: int, timeout_s: float, trace_configs: Sequence[aiohttp.TraceConfig] = ()) -> None:
        self._concurrency = concurrency
        # OpenTelemetry's aiohttp-client hooks (the runtime's `http_trace_configs()`): a scrape made
        # inside a trace gets a client span; the periodic rounds have none, so they cost no span.
        self._trace_configs = list(trace_configs)
        self._timeout = aiohttp.ClientTimeout(total=timeout_s)
        self._session: aiohttp.ClientSession | None = None
        self._slots = asyncio.Semaphore(concurrency)

    def _client(self) -> aiohttp.ClientSession:
        if self._session is None:
            # Keep-alive to every target: a 5 s interval reuses the connection instead of a new handshake.
            connector = aiohttp.TCPConnector(limit=self._concurrency, limit_per_host=0, ttl_dns_cache=300)
            self._session = aiohttp.ClientSession(
                connector=connector, timeout=self._timeout, trace_configs=self._trace_configs
            )
        return self._session

    async def fetch(self, url: str) -> str:
        """The metrics text at `url`; ScrapeError when the target does not deliver it in time."""
        async with self._slots:
            try:
                async with self._client().get(url) as response:
                    if response.status != 200:
                        raise ScrapeError(f"HTTP {response.status}")
                    return await response.text()
            except (aiohttp.ClientError, TimeoutError) as error:
                raise ScrapeError(f"{type(error).__name__}: {error}"[:300]) from error

    async def fetch_all(self, urls: Iterable[tuple[str, str]]) -> dict[str, str | ScrapeError]:
        """Scrape (key, url) pairs concurrently; each key gets its text or its error."""
        pairs = list(urls)
        results = await asyncio.gather(*(self.fetch(url) for _, url in pairs), return_exceptions=True)
        out: dict[str, str | ScrapeError] = {}
        for (key, _), result in zip(pairs, results, strict=True):
            if isinstance(result, BaseException) and not isinstance(result, ScrapeError):
                if isinstance(result, asyncio.CancelledError):
                    raise result
                result = ScrapeError(f"{type(result).__name__}: {result}"[:300])
            out[key] = result
        return out

    async def close(self) -> None:
        """Close the connection pool."""
        if self._session is not None:
            await self._session.close()
            self._session = None
