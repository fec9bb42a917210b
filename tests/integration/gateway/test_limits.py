"""Limits hold at the limit, count failed requests, and are one count across gateway replicas."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta

import openai
import pytest
from openai import AsyncOpenAI, OpenAI

from services.gateway.domain.limits import Claim, Limits, Subject, window_of
from services.gateway.use_cases.ledger import reap
from tests.integration.gateway.conftest import Keys, Replica

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("same_minute")]


def client(replica: Replica, key: str) -> OpenAI:
    return OpenAI(base_url=replica.base_url, api_key=key, max_retries=0, timeout=30)


def echo(openai_client: OpenAI, prompt: str = "0123456789", max_tokens: int = 10) -> int:
    """One echo completion; the tokens it used."""
    answer = openai_client.completions.create(model="echo", prompt=prompt, max_tokens=max_tokens)
    assert answer.usage is not None
    return answer.usage.total_tokens


def test_tpm_throttles_at_the_limit_not_before(replicas: list[Replica], keys: Keys) -> None:
    # Each call reserves and uses 20 tokens (10 of prompt, 10 generated): 10 calls fill 200 exactly.
    openai_client = client(replicas[0], keys.new(tenant_limits=Limits(tpm=200)))
    used = sum(echo(openai_client) for _ in range(10))
    assert used == 200
    with pytest.raises(openai.RateLimitError) as raised:
        echo(openai_client, max_tokens=1)
    assert "tokens per minute" in str(raised.value)


def test_the_unused_part_of_a_reservation_is_given_back(replicas: list[Replica], keys: Keys) -> None:
    # A request the router refuses reserved 1 + 600 tokens; it settles to its prompt (1 token).
    openai_client = client(replicas[0], keys.new(key_limits=Limits(tpm=700)))
    with pytest.raises(openai.BadRequestError):
        openai_client.completions.create(model="tinylm", prompt="x", max_tokens=600)
    assert echo(openai_client, "x" * 99, max_tokens=599) == 698  # 1 + 698 = 699 <= 700
    with pytest.raises(openai.RateLimitError):
        echo(openai_client, "x", max_tokens=1)  # 699 + 2 > 700: the failed request's prompt counted


def test_failed_requests_count_against_the_request_limit(replicas: list[Replica], keys: Keys) -> None:
    openai_client = client(replicas[0], keys.new(key_limits=Limits(rpm=2)))
    with pytest.raises(openai.BadRequestError):
        openai_client.completions.create(model="tinylm", prompt="x", max_tokens=600)  # the router rejects it
    echo(openai_client)
    with pytest.raises(openai.RateLimitError):
        echo(openai_client)


def test_two_gateway_replicas_share_one_limit(replicas: list[Replica], keys: Keys) -> None:
    key = keys.new(key_limits=Limits(rpm=4))
    first, second = client(replicas[0], key), client(replicas[1], key)
    for openai_client in (first, second, first, second):
        echo(openai_client)
    for openai_client in (first, second):
        with pytest.raises(openai.RateLimitError):
            echo(openai_client)


def test_a_tenant_limit_covers_all_its_keys(replicas: list[Replica], keys: Keys) -> None:
    key = keys.new(tenant_limits=Limits(rpm=3))
    tenant = next(k.tenant.name for k in keys.list() if key.startswith(k.prefix))
    other = keys.another(tenant)
    for openai_client in (client(replicas[0], key), client(replicas[1], other), client(replicas[0], key)):
        echo(openai_client)
    with pytest.raises(openai.RateLimitError):
        echo(client(replicas[1], other))


async def test_concurrent_requests_beyond_the_limit_are_refused(replicas: list[Replica], keys: Keys) -> None:
    key = keys.new(key_limits=Limits(concurrency=1))
    clients = [AsyncOpenAI(base_url=r.base_url, api_key=key, max_retries=0, timeout=60) for r in replicas]

    async def slow(openai_client: AsyncOpenAI) -> object:
        return await openai_client.completions.create(model="tinylm", prompt="hello", max_tokens=256)

    try:
        outcomes = await asyncio.gather(*(slow(c) for c in clients), return_exceptions=True)
    finally:
        for openai_client in clients:
            await openai_client.close()
    refused = [o for o in outcomes if isinstance(o, openai.RateLimitError)]
    assert len(refused) == 1, outcomes
    assert "concurrent requests" in str(refused[0])
    answer = await AsyncOpenAI(base_url=replicas[0].base_url, api_key=key, max_retries=0).completions.create(
        model="echo", prompt="x", max_tokens=1
    )
    assert answer.usage is not None  # the lease was released when the first one finished


def test_a_dead_replicas_leases_are_reaped(replicas: list[Replica], keys: Keys) -> None:
    secret = keys.new(key_limits=Limits(concurrency=1))
    record = next(k for k in keys.list() if secret.startswith(k.prefix))
    now = datetime.now(UTC)
    # What a replica killed mid-request leaves: a count raised, a lease that ran out, no settlement.
    subjects = (Subject(f"key:{record.key_id}", record.limits), Subject(f"tenant:{record.tenant.tenant_id}", Limits()))
    lost = Claim("lost-request", subjects, 10, window_of(now), now - timedelta(seconds=1))
    store = replicas[0].app.store

    async def admit_lost() -> bool:
        async with store.transaction() as repository:
            return await repository.admit([lost])

    assert keys.host.call(admit_lost())
    with pytest.raises(openai.RateLimitError):
        echo(client(replicas[0], secret))
    assert keys.host.call(reap(store)) >= 1
    assert echo(client(replicas[1], secret)) == 20
