"""Who is calling: the bearer key checked against its stored hash, cached for a few seconds."""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from datetime import datetime

from services.gateway.adapters.repository import GatewayRepository
from services.gateway.domain.errors import unauthorized, unavailable
from services.gateway.domain.keys import ApiKey, check_key, hash_key
from shared.unit_of_work import UnitOfWork

MAX_CACHED = 100_000


@dataclass
class KeyCache:
    """Key lookups by hash, kept `ttl_s` (so a revocation takes effect within it on every replica)."""

    store: UnitOfWork[GatewayRepository]
    ttl_s: float
    _seen: dict[str, tuple[float, ApiKey | None]] = field(default_factory=dict)

    async def authenticate(self, authorization: str | None, now: datetime) -> ApiKey:
        """The valid key of an `Authorization: Bearer <key>` header; a 401 ApiError, or 503 without the database."""
        if not authorization or not authorization.lower().startswith("bearer "):
            raise unauthorized("You didn't provide an API key (Authorization: Bearer <key>)", "missing_api_key")
        try:
            key = await self._lookup(hash_key(authorization[7:].strip()))
        except Exception as failure:
            raise unavailable(f"API keys cannot be checked now ({type(failure).__name__}); try again") from failure
        if error := check_key(key, now):
            raise error
        assert key is not None  # check_key refuses a missing key
        return key

    async def _lookup(self, digest: str) -> ApiKey | None:
        hit = self._seen.get(digest)
        if hit is not None and time.monotonic() - hit[0] < self.ttl_s:
            return hit[1]
        async with self.store.transaction() as repository:
            key = await repository.key_by_hash(digest)
        if len(self._seen) >= MAX_CACHED:
            self._seen.clear()  # bounded: unknown keys sprayed at the gateway must not grow memory
        self._seen[digest] = (time.monotonic(), key)
        return key
