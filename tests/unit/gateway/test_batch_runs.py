"""Batch runs on fakes: validation, the window, limits, one result per line, re-sends, expiry, cancel, takeover."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from services.gateway.domain.batch_lines import LineState, parser
from services.gateway.domain.batches import BatchStatus, parse_request_id
from services.gateway.domain.budgets import Prices
from services.gateway.domain.catalogue import Catalogue, ModelSpec
from services.gateway.domain.errors import ApiError
from services.gateway.domain.keys import ApiKey, Tenant
from services.gateway.domain.limits import Limits
from services.gateway.use_cases import batches
from services.gateway.use_cases.batch_results import BatchResults
from services.gateway.use_cases.batch_runner import BatchKnobs, BatchRunner
from services.gateway.use_cases.ledger import Ledger
from shared.events import InferenceCompleted, InferenceRequested, ResultStatus
from tests.unit.gateway.batch_fakes import FakeBatchStore, FakeSender
from tests.unit.gateway.fakes import FakeStore

T0 = datetime(2026, 12, 3, 12, 0, 5, tzinfo=UTC)
CHAT = "/v1/chat/completions"


def key_with(limits: Limits = Limits(), scopes: tuple[str, ...] = ()) -> ApiKey:  # noqa: B008
    return ApiKey("k1", Tenant("t1", "acme", Limits()), "ci", "sk-llmf-x", scopes, limits, T0)


def jsonl(n: int, model: str = "echo") -> bytes:
    rows = [
        {
            "custom_id": f"c{i}",
            "method": "POST",
            "url": CHAT,
            "body": {"model": model, "messages": [{"role": "user", "content": f"m{i}"}], "max_tokens": 4},
        }
        for i in range(n)
    ]
    return "\n".join(json.dumps(r) for r in rows).encode()


class World:
    """A runner and a results recorder over fakes; `now` is the clock both see."""

    def __init__(self, key: ApiKey | None = None, **knobs: Any) -> None:
        self.now = T0
        self.key = key or key_with()
        self.store = FakeBatchStore(now=T0)
        self.store.state.keys[self.key.key_id] = self.key
        self.limits = FakeStore(now=T0)
        self.ledger = Ledger(self.limits)
        self.sender = FakeSender()
        parse = parser(Catalogue({"echo": ModelSpec("echo"), "tinylm": ModelSpec("tinylm")}), 16)
        settings: dict[str, Any] = {"window": 4, "line_timeout_s": 10.0, "resend_after_s": 5.0, "retry_s": 1.0}
        self.runner = BatchRunner(self.store, self.ledger, self.sender, parse, BatchKnobs("a", **(settings | knobs)))
        self.results = BatchResults(
            self.store,
            self.ledger,
            parse,
            self.runner.knobs.max_attempts,
            1.0,
            self.runner.knobs.prices,
            lambda: self.now,
        )

    async def submit(self, data: bytes) -> str:
        uploaded = await batches.upload(self.store, self.key, "in.jsonl", "batch", data, self.now)
        created = await batches.create(
            self.store,
            self.key,
            {"input_file_id": uploaded["id"], "endpoint": CHAT, "completion_window": "24h"},
            self.now,
        )
        return str(created["id"])

    async def step(self, batch_id: str) -> None:
        self.store.now = self.now
        record = self.store.state.batches[batch_id]
        await self.runner.step(record, self.now)

    async def answer(
        self, requests: list[InferenceRequested], status: ResultStatus = ResultStatus.OK, reason: str | None = None
    ) -> int:
        ok = status is ResultStatus.OK
        results = [
            InferenceCompleted(
                source="router", request_id=r.request_id, model_id=r.model_id, status=status, reason=reason,
                text=r.prompt[::-1] if ok else "", tokens_in=len(r.prompt), tokens_out=4 if ok else 0,
            )
            for r in requests
        ]  # fmt: skip
        return await self.results.record(results)

    def batch(self, batch_id: str) -> Any:
        return self.store.state.batches[batch_id]

    def output(self, batch_id: str, which: str = "output_file_id") -> list[dict[str, Any]]:
        file_id = getattr(self.batch(batch_id), which)
        if file_id is None:
            return []
        return [json.loads(line) for line in self.store.state.files[file_id][1].decode().splitlines()]


async def run_to_end(world: World, batch_id: str, rounds: int = 50) -> None:
    """Step and answer everything sent until the batch is final."""
    for _ in range(rounds):
        before = len(world.sender.sent)
        await world.step(batch_id)
        await world.answer(world.sender.sent[before:])
        if world.batch(batch_id).status in (
            BatchStatus.COMPLETED,
            BatchStatus.EXPIRED,
            BatchStatus.CANCELLED,
            BatchStatus.FAILED,
        ):
            return
    raise AssertionError(f"still {world.batch(batch_id).status}")


async def test_a_batch_validates_runs_and_completes_with_one_output_line_per_custom_id() -> None:
    world = World()
    batch_id = await world.submit(jsonl(10))
    assert world.batch(batch_id).status is BatchStatus.VALIDATING
    await world.step(batch_id)
    assert world.batch(batch_id).status is BatchStatus.IN_PROGRESS
    await run_to_end(world, batch_id)
    record = world.batch(batch_id)
    assert record.status is BatchStatus.COMPLETED and "finalizing_at" in record.times
    assert (record.counts.total, record.counts.completed, record.counts.failed) == (10, 10, 0)
    rows = world.output(batch_id)
    assert [r["custom_id"] for r in rows] == [f"c{i}" for i in range(10)]
    assert rows[0]["response"]["body"]["object"] == "chat.completion"
    assert record.usage.output_tokens == 40 and record.error_file_id is None


async def test_lines_go_at_batch_priority_with_their_deterministic_ids_to_the_batch_topic() -> None:
    world = World()
    batch_id = await world.submit(jsonl(2))
    await world.step(batch_id)
    await world.step(batch_id)
    sent = world.sender.sent
    assert [parse_request_id(r.request_id) for r in sent] == [(batch_id, 1), (batch_id, 2)]
    assert {r.priority for r in sent} == {1} and {r.reply_topic for r in sent} == {world.sender.reply_topic}
    assert sent[0].deadline == T0 + timedelta(seconds=10)


async def test_no_more_than_the_window_is_in_flight() -> None:
    world = World(window=3)
    batch_id = await world.submit(jsonl(10))
    await world.step(batch_id)
    for _ in range(3):
        await world.step(batch_id)
    assert len(world.sender.sent) == 3  # nothing answered: the window is full
    await world.answer(world.sender.sent[:2])
    await world.step(batch_id)
    assert len(world.sender.sent) == 5


async def test_a_repeated_or_late_result_never_adds_a_second_output_line() -> None:
    world = World()
    batch_id = await world.submit(jsonl(2))
    await world.step(batch_id)
    await world.step(batch_id)
    first = world.sender.sent[0]
    assert await world.answer([first]) == 1
    assert await world.answer([first]) == 0  # Kafka delivered it again
    repeat = first.model_copy(update={"prompt": "something else"})
    assert await world.answer([repeat]) == 0  # the router answered a re-send too
    assert await world.answer(world.sender.sent[1:2]) == 1
    await run_to_end(world, batch_id)
    rows = world.output(batch_id)
    assert [r["custom_id"] for r in rows] == ["c0", "c1"]
    assert rows[0]["response"]["body"]["choices"][0]["message"]["content"] == first.prompt[::-1]


async def test_an_unanswered_line_is_sent_again_with_the_same_request_id_then_given_up() -> None:
    world = World(max_attempts=2)
    batch_id = await world.submit(jsonl(1))
    await world.step(batch_id)
    await world.step(batch_id)
    world.now += timedelta(seconds=16)  # past the deadline and the resend delay
    await world.step(batch_id)
    assert [r.request_id for r in world.sender.sent] == [world.sender.sent[0].request_id] * 2
    world.now += timedelta(seconds=16)
    await world.step(batch_id)
    record = world.batch(batch_id)
    assert record.status is BatchStatus.COMPLETED and record.counts.failed == 1
    assert world.output(batch_id, "error_file_id")[0]["error"]["code"] == "no_result"


async def test_an_overloaded_refusal_sends_the_line_again_and_does_not_count_as_an_attempt() -> None:
    world = World(max_attempts=1)
    batch_id = await world.submit(jsonl(1))
    await world.step(batch_id)
    await world.step(batch_id)
    await world.answer(world.sender.sent, ResultStatus.REJECTED, "over capacity: priority 1 shed")
    await world.step(batch_id)
    assert len(world.sender.sent) == 1  # not before retry_s
    world.now += timedelta(seconds=1)
    await run_to_end(world, batch_id)
    assert len(world.sender.sent) == 2 and world.batch(batch_id).counts.completed == 1


async def test_a_line_that_fails_everywhere_is_tried_max_attempts_times_then_in_the_error_file() -> None:
    world = World(max_attempts=2)
    batch_id = await world.submit(jsonl(1))
    await world.step(batch_id)
    for _ in range(2):
        await world.step(batch_id)
        await world.answer(world.sender.sent[-1:], ResultStatus.FAILED, "every server failed")
        world.now += timedelta(seconds=1)
    await world.step(batch_id)
    errors = world.output(batch_id, "error_file_id")
    assert len(world.sender.sent) == 2 and world.batch(batch_id).status is BatchStatus.COMPLETED
    assert (
        errors[0]["response"]["status_code"] == 502
        and errors[0]["response"]["body"]["error"]["code"] == "upstream_failed"
    )


async def test_a_refusal_that_waiting_cannot_fix_is_the_lines_answer() -> None:
    world = World()
    batch_id = await world.submit(jsonl(1))
    await world.step(batch_id)
    await world.step(batch_id)
    await world.answer(world.sender.sent, ResultStatus.REJECTED, "max_tokens 4 exceeds echo's limit of 2")
    await world.step(batch_id)
    errors = world.output(batch_id, "error_file_id")
    assert errors[0]["custom_id"] == "c0" and errors[0]["response"]["status_code"] == 400


async def test_lines_count_against_the_keys_limits_and_wait_for_the_next_minute() -> None:
    world = World(key=key_with(Limits(rpm=3, concurrency=1)))
    batch_id = await world.submit(jsonl(5))
    await world.step(batch_id)
    await world.step(batch_id)
    await world.answer(world.sender.sent)
    await world.step(batch_id)
    assert len(world.sender.sent) == 3  # the minute's three requests; the concurrency limit is the window's
    assert world.limits.state.ledger.windows[("key:k1", T0.replace(second=0))].requests == 3
    world.now += timedelta(minutes=1)
    await run_to_end(world, batch_id)
    assert len(world.sender.sent) == 5 and world.batch(batch_id).counts.completed == 5


async def test_results_settle_the_lines_token_reservation() -> None:
    world = World()
    batch_id = await world.submit(jsonl(1))
    await world.step(batch_id)
    await world.step(batch_id)
    await world.answer(world.sender.sent)
    await world.ledger.flush()
    settled = world.limits.state.settled
    assert len(settled) == 1 and settled[0].subjects == ("key:k1", "tenant:t1")
    assert settled[0].used == len(world.sender.sent[0].prompt) + 4


async def test_a_batch_past_its_window_expires_and_its_open_lines_go_to_the_error_file() -> None:
    world = World()
    batch_id = await world.submit(jsonl(6))
    await world.step(batch_id)
    await world.step(batch_id)
    await world.answer(world.sender.sent[:2])
    world.now += timedelta(hours=24)
    await world.step(batch_id)
    record = world.batch(batch_id)
    assert record.status is BatchStatus.EXPIRED and "expired_at" in record.times
    assert (record.counts.completed, record.counts.failed) == (2, 4)
    assert {e["error"]["code"] for e in world.output(batch_id, "error_file_id")} == {"batch_expired"}
    assert len(world.output(batch_id)) == 2


async def test_a_cancelled_batch_stops_sending_and_ends_with_what_was_answered() -> None:
    world = World()
    batch_id = await world.submit(jsonl(10))
    await world.step(batch_id)
    await world.step(batch_id)
    in_flight = list(world.sender.sent)
    cancelled = await batches.cancel(world.store, world.key, batch_id, world.now)
    assert cancelled["status"] == "cancelling"
    await world.step(batch_id)
    assert world.batch(batch_id).status is BatchStatus.CANCELLING  # four lines still in flight
    await world.answer(in_flight)
    await world.step(batch_id)
    record = world.batch(batch_id)
    assert record.status is BatchStatus.CANCELLED and len(world.sender.sent) == 4
    assert record.counts.completed == 4 and len(world.output(batch_id)) == 4


async def test_a_finished_batch_cannot_be_cancelled_and_another_tenant_cannot_see_it() -> None:
    world = World()
    batch_id = await world.submit(jsonl(1))
    await run_to_end(world, batch_id)
    with pytest.raises(ApiError) as refused:
        await batches.cancel(world.store, world.key, batch_id, world.now)
    assert refused.value.status == 409
    stranger = ApiKey("k2", Tenant("t2", "other", Limits()), "x", "sk-llmf-y", (), Limits(), T0)
    with pytest.raises(ApiError) as hidden:
        await batches.retrieve(world.store, stranger, batch_id)
    assert hidden.value.status == 404


async def test_an_invalid_file_or_a_model_out_of_scope_fails_the_batch_with_errors() -> None:
    world = World(key=key_with(scopes=("tinylm",)))
    batch_id = await world.submit(jsonl(2))
    await world.step(batch_id)
    record = world.batch(batch_id)
    assert record.status is BatchStatus.FAILED and "failed_at" in record.times
    assert record.errors is not None and {e["code"] for e in record.errors} == {"model_not_permitted"}
    assert world.sender.sent == []


async def test_a_batch_whose_runner_died_is_taken_over_after_its_lease_and_resent() -> None:
    world = World(lease_s=5.0)
    batch_id = await world.submit(jsonl(2))
    async with world.store.transaction() as repository:
        assert [b.batch_id for b in await repository.claim("a", "default", 5.0, 4)] == [batch_id]
    await world.step(batch_id)
    await world.step(batch_id)  # "a" sent both lines, then died
    async with world.store.transaction() as repository:
        assert await repository.claim("b", "default", 5.0, 4) == []  # a's lease holds
    world.now += timedelta(seconds=6)
    world.store.now = world.now
    async with world.store.transaction() as repository:
        assert [b.batch_id for b in await repository.claim("b", "default", 5.0, 4)] == [batch_id]
    await world.step(batch_id)
    assert len(world.sender.sent) == 2  # still within their deadline: not sent again yet
    assert await world.runner.release() == 0  # "b" holds it now, not "a"
    world.now += timedelta(seconds=10)  # past their deadline and the resend delay
    await run_to_end(world, batch_id)
    assert len(world.sender.sent) == 4 and world.batch(batch_id).counts.completed == 2


async def test_lines_the_broker_did_not_take_go_back_to_pending() -> None:
    world = World()
    batch_id = await world.submit(jsonl(2))
    await world.step(batch_id)
    world.sender.fail = True
    await world.step(batch_id)
    assert world.sender.sent == []
    await world.step(batch_id)
    assert len(world.sender.sent) == 2
    assert all(ln.state is LineState.SENT for ln in world.store.state.lines[batch_id].values())


async def test_lines_reserve_their_cost_of_a_monthly_budget_and_are_metered_per_tenant_and_model() -> None:
    world = World(key=key_with(Limits(monthly_budget=50)), prices=Prices(1))  # a nano-dollar a token
    batch_id = await world.submit(jsonl(5))  # each line reserves 20-odd tokens: two fit the budget
    await world.step(batch_id)
    await world.step(batch_id)
    assert len(world.sender.sent) == 2
    await world.answer(world.sender.sent)
    await world.ledger.flush()
    settled = world.limits.state.settled
    assert [s.budgeted for s in settled] == [("key:k1",)] * 2
    assert all(s.used_cost == s.used and s.reserved_cost == s.reserved for s in settled)
    metered, _since = world.limits.state.meter[("t1", "echo")]
    assert (metered.requests, metered.completion_tokens) == (2, 8)


async def test_a_stopping_replica_lets_its_batches_go_at_once() -> None:
    world = World(lease_s=30.0)
    batch_id = await world.submit(jsonl(1))
    async with world.store.transaction() as repository:
        await repository.claim("a", "default", 30.0, 4)
    assert await world.runner.release() == 1
    async with world.store.transaction() as repository:
        assert [b.batch_id for b in await repository.claim("b", "default", 30.0, 4)] == [batch_id]
