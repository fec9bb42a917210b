"""The gateway's use cases on fakes: a call end to end, its errors, its settlement; keys; settling."""

from __future__ import annotations

import asyncio
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.gateway.domain.catalogue import Catalogue, ModelSpec
from services.gateway.domain.errors import ApiError
from services.gateway.domain.limits import Claim, Limits, Subject, window_of
from services.gateway.domain.requests import Ask
from services.gateway.use_cases import keys as admin
from services.gateway.use_cases.access import KeyCache
from services.gateway.use_cases.ledger import Ledger, reap
from services.gateway.use_cases.serving import Knobs, Serving
from shared.events import ResultStatus
from tests.unit.gateway.fakes import FakeFleet, FakeStore


def ask(model: str = "echo", prompt: str = "hello", max_tokens: int = 4) -> Ask:
    return Ask(model, prompt, max_tokens, 0.0, 1.0, (), None, chat=False)


class World:
    """A Serving over fakes, and a key to call it with."""

    def __init__(self, timeout_s: float = 5.0) -> None:
        self.store = FakeStore()
        self.fleet = FakeFleet()
        self.ledger = Ledger(self.store)
        self.keys = KeyCache(self.store, ttl_s=0.0)
        catalogue = Catalogue({"echo": ModelSpec("echo"), "tinylm": ModelSpec("tinylm")})
        knobs = Knobs(timeout_s, 30.0, 5, 0.0)
        self.serving = Serving(self.store, self.keys, self.ledger, catalogue, self.fleet, knobs)

    async def key(self, tenant: Limits = Limits(), key: Limits = Limits(), scopes: tuple[str, ...] = ()) -> str:  # noqa: B008
        name = f"t{len(self.store.state.tenants)}"
        await admin.create_tenant(self.store, name, tenant)
        return "Bearer " + (await admin.create_key(self.store, name, "k", scopes, key)).secret

    async def call(self, header: str, request: Ask | None = None) -> dict[str, Any]:
        try:
            return (await self.serving.complete(header, request or ask())).body
        finally:
            await self.ledger.flush()


async def test_a_call_sends_one_request_and_answers_in_openais_shape() -> None:
    world = World()
    out = await world.call(await world.key())
    assert out["choices"][0]["text"] == "hell" and out["usage"]["total_tokens"] == 9
    [sent] = world.fleet.sent
    assert sent.reply_topic == world.fleet.reply_topic and sent.priority == 5 and sent.deadline is not None
    assert world.store.state.settled == []  # it used what it reserved and held no lease: nothing to write
    await world.call(await world.key(key=Limits(concurrency=2)))
    assert [s.used for s in world.store.state.settled] == [9]  # the lease ends with the settlement


async def test_a_missing_or_wrong_key_is_a_401() -> None:
    world = World()
    for header in (None, "Basic abc", "Bearer sk-llmf-nope"):
        with pytest.raises(ApiError) as raised:
            await world.call(header)  # type: ignore[arg-type]
        assert raised.value.status == 401
    assert world.fleet.sent == []


async def test_unknown_models_and_scopes_are_refused_before_anything_is_sent() -> None:
    world = World()
    with pytest.raises(ApiError) as raised:
        await world.call(await world.key(), ask("nope"))
    assert raised.value.status == 404
    with pytest.raises(ApiError) as raised:
        await world.call(await world.key(scopes=("echo",)), ask("tinylm"))
    assert raised.value.status == 403
    assert world.fleet.sent == []


async def test_over_the_limit_is_a_429_and_sends_nothing() -> None:
    world = World()
    header = await world.key(key=Limits(rpm=1))
    await world.call(header)
    with pytest.raises(ApiError) as raised:
        await world.call(header)
    assert raised.value.status == 429 and raised.value.retry_after_s is not None
    assert "requests per minute" in raised.value.message
    assert len(world.fleet.sent) == 1


async def test_a_request_larger_than_the_tpm_limit_is_a_429_at_once() -> None:
    world = World()
    with pytest.raises(ApiError) as raised:
        await world.call(await world.key(tenant=Limits(tpm=5)), ask(max_tokens=10))
    assert raised.value.status == 429 and "requested 15" in raised.value.message


async def test_a_rejection_is_mapped_and_still_counts() -> None:
    world = World()
    world.fleet.status, world.fleet.reason = ResultStatus.REJECTED, "unknown model: echo"
    header = await world.key(key=Limits(rpm=1))
    with pytest.raises(ApiError) as raised:
        await world.call(header)
    assert raised.value.status == 404
    [settled] = world.store.state.settled
    assert (settled.reserved, settled.used) == (9, 5)  # the prompt counts, the unused completion is given back
    world.fleet.status = ResultStatus.OK
    with pytest.raises(ApiError) as raised:
        await world.call(header)
    assert raised.value.status == 429


async def test_a_failure_is_a_502() -> None:
    world = World()
    world.fleet.status, world.fleet.reason = ResultStatus.FAILED, "servers tried: a; last error: boom"
    with pytest.raises(ApiError) as raised:
        await world.call(await world.key())
    assert raised.value.status == 502 and raised.value.retryable


async def test_no_answer_by_the_deadline_is_a_504_that_keeps_the_reservation() -> None:
    world = World(timeout_s=0.05)
    world.fleet.silent = True
    with pytest.raises(ApiError) as raised:
        await world.call(await world.key(key=Limits(concurrency=1)))
    assert raised.value.status == 504
    assert world.fleet.forgotten == [world.fleet.sent[0].request_id]
    [settled] = world.store.state.settled
    assert settled.used == settled.reserved == 9
    assert not any(world.store.state.ledger.inflight.values())  # the lease ends with the request


async def test_revocation_takes_effect_once_the_cache_expires() -> None:
    world = World()
    header = await world.key()
    await world.call(header)
    [record] = await admin.list_keys(world.store)
    assert await admin.revoke_key(world.store, record.prefix) == 1
    with pytest.raises(ApiError) as raised:
        await world.call(header)
    assert raised.value.code == "api_key_revoked"


async def test_keys_and_tenants_are_managed_by_name() -> None:
    store = FakeStore()
    await admin.create_tenant(store, "acme", Limits(rpm=5))
    with pytest.raises(admin.AdminError):
        await admin.create_tenant(store, "acme", Limits())
    with pytest.raises(admin.AdminError):
        await admin.create_key(store, "nobody", "k")
    created = await admin.create_key(store, "acme", "k", ("echo",), Limits(tpm=9), timedelta(days=1))
    [stored] = await admin.list_keys(store, "acme")
    assert created.secret not in repr(store.state.keys) and stored.scopes == ("echo",)
    assert stored.expires_at is not None and stored.expires_at > datetime.now(UTC)
    assert [t.name for t in await admin.list_tenants(store)] == ["acme"]
    assert await admin.revoke_key(store, "no-such-key") == 0


class BrokenStore(FakeStore):
    """A store whose transactions fail (the database is down)."""

    def transaction(self):
        raise ConnectionError("database down")


async def test_settlements_that_cannot_be_written_wait_for_the_database() -> None:
    world = World()
    await world.call(await world.key(key=Limits(concurrency=1)))
    ledger = Ledger(BrokenStore())
    done = ledger.settle(world.store.state.settled[0])
    await asyncio.sleep(0.05)
    assert len(ledger.settlements) == 1 and not done.done()
    ledger.store = world.store  # the database is back
    await asyncio.wait_for(done, 2)
    assert ledger.settlements == [] and len(world.store.state.settled) == 2


async def test_the_ledger_writes_whatever_is_queued_as_it_comes() -> None:
    world = World()
    header = await world.key(tenant=Limits(concurrency=10))
    await asyncio.gather(*(world.serving.complete(header, ask()) for _ in range(5)))
    await world.ledger.flush()
    assert len(world.store.state.settled) == 5 and world.ledger.settlements == []


async def test_leases_of_a_dead_replica_are_reaped() -> None:
    world = World()
    world.fleet.silent = True
    world.serving.knobs = Knobs(0.01, 0.0, 5, 0.0)
    header = await world.key(key=Limits(concurrency=1))
    world.ledger.settle = lambda settlement: asyncio.get_running_loop().create_future()  # type: ignore[method-assign]
    with pytest.raises(ApiError):
        await world.call(header)  # timed out, and its settlement was lost with the replica
    world.store.now = datetime.now(UTC)
    await asyncio.sleep(0.02)
    assert await reap(world.store) == 1
    assert not any(world.store.state.ledger.inflight.values())


async def test_claims_that_arrive_together_are_admitted_in_one_transaction() -> None:
    world = World()
    header = await world.key(key=Limits(rpm=100))
    world.keys.ttl_s = 60.0
    await world.call(header)  # the key is cached from here on
    transactions = 0
    original = world.store.transaction

    def counting():
        nonlocal transactions
        transactions += 1
        return original()

    world.store.transaction = counting  # type: ignore[method-assign]
    await asyncio.gather(*(world.serving.complete(header, ask()) for _ in range(20)))
    assert len(world.fleet.sent) == 21
    assert transactions <= 2  # one for the 20 claims queued before the writer ran, one for their settlements


async def test_a_batch_that_would_break_a_limit_is_admitted_one_by_one_up_to_it() -> None:
    world = World()
    header = await world.key(tenant=Limits(rpm=7))
    outcomes = await asyncio.gather(*(world.serving.complete(header, ask()) for _ in range(10)), return_exceptions=True)
    refused = [o for o in outcomes if isinstance(o, ApiError)]
    assert len(refused) == 3 and all(e.status == 429 for e in refused)
    assert len(world.fleet.sent) == 7


async def test_a_database_error_reaches_every_caller_of_the_batch() -> None:
    ledger = Ledger(BrokenStore())
    claim = World().serving._claim
    del claim

    now = datetime.now(UTC)
    claims = [Claim(f"r{i}", (Subject("key:a", Limits()),), 1, window_of(now), now) for i in range(3)]
    outcomes = await asyncio.gather(*(ledger.admit(c) for c in claims), return_exceptions=True)
    assert all(isinstance(o, ConnectionError) for o in outcomes)


async def test_without_the_database_calls_are_refused_with_a_503() -> None:
    world = World()
    header = await world.key()
    world.keys.ttl_s = 60.0
    await world.call(header)  # the key is cached
    broken = BrokenStore()
    world.serving.ledger.store = broken
    with pytest.raises(ApiError) as raised:
        await world.serving.complete(header, ask())
    assert raised.value.status == 503 and raised.value.retry_after_s == 1
    assert len(world.fleet.sent) == 1  # fail closed: nothing runs uncounted
    world.keys.store, world.keys.ttl_s = broken, 0.0
    with pytest.raises(ApiError) as raised:
        await world.serving.complete(header, ask())
    assert raised.value.status == 503
