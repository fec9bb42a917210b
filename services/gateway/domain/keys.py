"""API keys: how they are made, hashed and judged (pure; the random part is passed in)."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime

from services.gateway.domain.errors import ApiError, forbidden, unauthorized
from services.gateway.domain.limits import Limits

KEY_PREFIX = "sk-llmf-"


def make_key(random_part: str) -> str:
    """The key shown once to its owner: a recognisable prefix and a high-entropy secret."""
    return KEY_PREFIX + random_part


def hash_key(key: str) -> str:
    """SHA-256 of the key: what is stored and looked up (a 256-bit random key needs no slow hash)."""
    return hashlib.sha256(key.encode()).hexdigest()


def display_prefix(key: str) -> str:
    """The first characters, kept in clear so an owner can tell keys apart in a list."""
    return key[: len(KEY_PREFIX) + 6]


@dataclass(frozen=True)
class Tenant:
    """Who pays: a tenant with limits over all its keys."""

    tenant_id: str
    name: str
    limits: Limits


@dataclass(frozen=True)
class ApiKey:
    """A stored key (never the key itself): its tenant, scopes, limits and life."""

    key_id: str
    tenant: Tenant
    name: str
    prefix: str
    scopes: tuple[str, ...]  # model ids; empty or "*": every model
    limits: Limits
    created_at: datetime
    expires_at: datetime | None = None
    revoked_at: datetime | None = None


def check_key(key: ApiKey | None, now: datetime) -> ApiError | None:
    """Why the key may not be used now (unknown, revoked, expired), or None."""
    if key is None:
        return unauthorized("Incorrect API key provided")
    if key.revoked_at is not None and key.revoked_at <= now:
        return unauthorized("This API key has been revoked", "api_key_revoked")
    if key.expires_at is not None and key.expires_at <= now:
        return unauthorized("This API key has expired", "api_key_expired")
    return None


def check_scope(key: ApiKey, model: str) -> ApiError | None:
    """A 403 when the key's scopes leave `model` out."""
    if not key.scopes or "*" in key.scopes or model in key.scopes:
        return None
    return forbidden(f"This API key may not use the model `{model}`")
