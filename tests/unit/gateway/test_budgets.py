"""Monthly budgets: prices, months, reserving the worst case and settling to the real cost; metering."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.gateway.adapters.limits_tables import admission_params
from services.gateway.domain.budgets import Prices, month_of, next_month, seconds_to_next_month, usd_to_nanos
from services.gateway.domain.catalogue import Catalogue, ModelSpec
from services.gateway.domain.errors import ApiError
from services.gateway.domain.limits import (
    Claim,
    Ledger,
    Limit,
    Limits,
    Settlement,
    Subject,
    fits_fresh,
    holds,
    raises,
    spends,
    window_of,
)
from services.gateway.domain.metering import Metered, MeterReading, summed, usage_event
from services.gateway.domain.requests import Ask
from services.gateway.use_cases import keys as admin
from services.gateway.use_cases.access import KeyCache
from services.gateway.use_cases.ledger import Ledger as Writer
from services.gateway.use_cases.ledger import flush_meter
from services.gateway.use_cases.serving import Knobs, Serving
from shared.events import USAGE, ResultStatus
from tests.unit.gateway.fakes import FakeFleet, FakeStore

NOW = datetime(2026, 12, 3, 10, 0, 30, tzinfo=UTC)
CENT = usd_to_nanos(0.01)


def budgeted(name: str, usd: float) -> Subject:
    return Subject(name, Limits(monthly_budget=usd_to_nanos(usd)))


def claim(request_id: str, cost: int, *subjects: Subject, now: datetime = NOW) -> Claim:
    return Claim(request_id, subjects, 10, window_of(now), now + timedelta(minutes=1), cost)


def test_prices_are_exact_nano_dollars_per_token_with_a_default() -> None:
    prices = Prices.per_1k_tokens(0.002, {"tinylm": 0.5})
    assert prices.cost("echo", 1000) == usd_to_nanos(0.002)
    assert prices.cost("tinylm", 3) == 3 * 500_000  # $0.5 per 1k = 500,000 nano-dollars per token
    assert Prices.per_1k_tokens(0.0, {}).cost("echo", 10**6) == 0


def test_the_budget_period_is_the_utc_month_and_retry_after_points_at_the_next() -> None:
    assert month_of(NOW) == datetime(2026, 12, 1, tzinfo=UTC)
    assert next_month(NOW) == datetime(2027, 1, 1, tzinfo=UTC)
    assert seconds_to_next_month(datetime(2026, 12, 31, 23, 59, 59, tzinfo=UTC)) == 1
    assert seconds_to_next_month(NOW) == int((datetime(2027, 1, 1, tzinfo=UTC) - NOW).total_seconds())


def test_a_budget_admits_up_to_the_budget_exactly_and_refuses_past_it() -> None:
    ledger, tenant = Ledger(), budgeted("tenant:a", 0.05)
    for i in range(5):
        assert ledger.admit(claim(f"r{i}", CENT, tenant), NOW) is None
    refusal = ledger.admit(claim("r5", 1, tenant), NOW)
    assert refusal is not None and refusal.limit is Limit.BUDGET and refusal.allowed == 5 * CENT
    assert refusal.retry_after_s == seconds_to_next_month(NOW)


def test_a_new_month_starts_from_nothing() -> None:
    ledger, tenant = Ledger(), budgeted("tenant:a", 0.01)
    assert ledger.admit(claim("r0", CENT, tenant), NOW) is None
    assert ledger.admit(claim("r1", CENT, tenant), NOW) is not None
    assert ledger.admit(claim("r2", CENT, tenant, now=datetime(2027, 1, 1, tzinfo=UTC)), NOW) is None


def test_the_budget_is_checked_before_the_minute_limits() -> None:
    # Over both the budget and the RPM limit: the answer is the budget, which a minute's wait does not cure.
    subject = Subject("key:k", Limits(rpm=1, monthly_budget=CENT))
    ledger = Ledger()
    assert ledger.admit(claim("r0", CENT, subject), NOW) is None
    refusal = ledger.admit(claim("r1", CENT, subject), NOW)
    assert refusal is not None and refusal.limit is Limit.BUDGET


def test_settling_replaces_the_worst_case_by_the_real_cost() -> None:
    ledger, tenant = Ledger(), budgeted("tenant:a", 0.02)
    assert ledger.admit(claim("r0", 2 * CENT, tenant), NOW) is None  # worst case fills the budget
    assert ledger.admit(claim("r1", 1, tenant), NOW) is not None
    ledger.settle(Settlement("r0", ("tenant:a",), window_of(NOW), 10, 5, 2 * CENT, CENT, ("tenant:a",)))
    assert ledger.months[("tenant:a", month_of(NOW))] == CENT
    assert ledger.admit(claim("r1", CENT, tenant), NOW) is None  # the cent given back is spendable


def test_a_batch_alone_must_fit_the_budget_and_only_budgeted_subjects_get_month_rows() -> None:
    tenant, key = budgeted("tenant:a", 0.01), Subject("key:k", Limits())
    claims = [claim("r0", CENT, key, tenant), claim("r1", CENT, key, tenant)]
    assert spends(claims) == [(tenant, month_of(NOW), 2 * CENT)]
    assert not fits_fresh(raises(claims), holds(claims), spends(claims))
    assert fits_fresh(raises(claims[:1]), holds(claims[:1]), spends(claims[:1]))
    params = admission_params(claims[:1])
    assert params["bs"] == ["tenant:a"] and params["bc"] == [CENT] and params["bb"] == [CENT]


@given(st.lists(st.integers(min_value=0, max_value=3 * CENT), max_size=40), st.integers(0, 10 * CENT))
def test_admitted_spend_never_exceeds_the_budget(costs: list[int], budget: int) -> None:
    ledger, tenant = Ledger(), Subject("tenant:a", Limits(monthly_budget=budget))
    admitted = 0
    for i, cost in enumerate(costs):
        if ledger.admit(claim(f"r{i}", cost, tenant), NOW) is None:
            admitted += cost
        else:
            assert admitted + cost > budget  # refused only when it would not fit
    assert admitted <= budget


def test_metering_sums_per_tenant_and_model_in_lock_order() -> None:
    rows = summed([Metered("b", "echo", 1, 2, 3), Metered("a", "echo", 1, 1, 1), Metered("b", "echo", 4, 5, 6, 1, 1)])
    assert rows == [Metered("a", "echo", 1, 1, 1), Metered("b", "echo", 5, 7, 9, 2, 1)]


def test_a_reading_becomes_an_event_in_dollars() -> None:
    reading = MeterReading(Metered("t1", "echo", 10, 5, 3 * CENT, 2), "acme", NOW, 4 * CENT, 5 * CENT)
    event = usage_event(reading, NOW + timedelta(seconds=60), "gateway")
    assert (event.tenant, event.requests, event.prompt_tokens, event.completion_tokens) == ("acme", 2, 10, 5)
    assert event.spend_usd == pytest.approx(0.03) and event.month_spend_usd == pytest.approx(0.04)
    assert event.monthly_budget_usd == pytest.approx(0.05)
    assert event.period_start == NOW and event.period_end == NOW + timedelta(seconds=60)


class World:
    """A Serving over fakes with a price of $1 per 1k tokens (1,000,000 nano-dollars per token)."""

    def __init__(self) -> None:
        self.store, self.fleet = FakeStore(), FakeFleet()
        self.ledger = Writer(self.store)
        prices = Prices.per_1k_tokens(1.0, {})
        knobs = Knobs(5.0, 30.0, 5, 0.0, prices=prices)
        catalogue = Catalogue({"echo": ModelSpec("echo")})
        self.serving = Serving(self.store, KeyCache(self.store, 0.0), self.ledger, catalogue, self.fleet, knobs)

    async def key(self, tenant: Limits = Limits(), key: Limits = Limits()) -> str:  # noqa: B008
        name = f"t{len(self.store.state.tenants)}"
        await admin.create_tenant(self.store, name, tenant)
        return "Bearer " + (await admin.create_key(self.store, name, "k", (), key)).secret

    async def call(self, header: str, max_tokens: int = 4) -> None:
        try:
            await self.serving.complete(header, Ask("echo", "hello", max_tokens, 0.0, 1.0, (), None, chat=False))
        finally:
            await self.ledger.flush()


async def test_over_budget_is_a_429_insufficient_quota_that_says_do_not_retry() -> None:
    world = World()
    header = await world.key(tenant=Limits(monthly_budget=usd_to_nanos(0.018)))  # 18 tokens' worth
    await world.call(header)  # reserves 5 + 4 = 9 tokens, uses 9
    await world.call(header)  # 18: exactly the budget
    with pytest.raises(ApiError) as raised:
        await world.call(header, max_tokens=1)
    error = raised.value
    assert (error.status, error.type, error.code) == (429, "insufficient_quota", "budget_exceeded")
    assert error.headers()["x-should-retry"] == "false" and "monthly budget of $0.02" in error.message
    assert len(world.fleet.sent) == 2
    # The refusal is metered (nothing else is), so the monitor's 100% alert knows the budget is used up.
    [event] = await flush_meter(world.store, "gateway")
    assert (event.requests, event.budget_refused, event.month_spend_usd) == (2, 1, pytest.approx(0.018))


async def test_a_failed_request_costs_its_prompt_and_gives_the_rest_back() -> None:
    world = World()
    header = await world.key(key=Limits(monthly_budget=usd_to_nanos(0.014)))
    world.fleet.status, world.fleet.reason = ResultStatus.FAILED, "every server failed"
    with pytest.raises(ApiError):
        await world.call(header, max_tokens=9)  # reserves 14 tokens: the whole budget
    world.fleet.status = ResultStatus.OK
    await world.call(header, max_tokens=4)  # the failure kept 5 (its prompt): 5 + 9 = 14 fits
    with pytest.raises(ApiError) as raised:
        await world.call(header, max_tokens=1)
    assert raised.value.code == "budget_exceeded"


async def test_usage_is_metered_per_tenant_and_model_and_flushed_once_through_the_outbox() -> None:
    world = World()
    header = await world.key(tenant=Limits(monthly_budget=usd_to_nanos(1.0)))
    await world.call(header)
    world.fleet.status, world.fleet.reason = ResultStatus.FAILED, "every server failed"
    with pytest.raises(ApiError):
        await world.call(header)
    events = await flush_meter(world.store, "gateway")
    [(topic, event, key)] = world.store.state.outbox
    assert events == [event] and topic == USAGE.name and key == event.tenant_id
    assert (event.requests, event.failed, event.prompt_tokens, event.completion_tokens) == (2, 1, 10, 4)
    assert event.spend_usd == pytest.approx(0.014) and event.month_spend_usd == pytest.approx(0.014)
    assert event.monthly_budget_usd == pytest.approx(1.0)
    assert await flush_meter(world.store, "gateway") == []  # emptied: nothing is published twice
