"""The scaler's use cases on the fake store: inputs recorded once, cold starts, evaluation rounds,
overdue actions and compaction (no Kafka, no Postgres)."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

from services.scaler.domain.policy import PolicyName
from services.scaler.domain.tiers import Tier
from services.scaler.settings import ScalerSettings
from services.scaler.use_cases import cold_starts, compaction, evaluation, recording
from shared.events import (
    FORECASTS,
    SCALING_ACTIONS,
    ActionKind,
    AllocationFailed,
    DemandForecasted,
    DemandWindowReported,
    ModelLoaded,
    ModelRequested,
    ScalingActionOverdue,
    ScalingActionRequested,
    ScalingSignalRaised,
    ServerMetricsReported,
    ServerReleased,
    SignalKind,
)
from tests.unit.scaler.fakes import FakeScalerRepository, FakeScalerStore

NOW = datetime(2026, 11, 27, 12, 0, 5, tzinfo=UTC)
BUCKET_S = 10
SETTINGS = ScalerSettings(
    policy=PolicyName.AGGRESSIVE, bucket_s=BUCKET_S, day_buckets=6, week_buckets=12, history_buckets=60,
    horizon_buckets=6, cooldown_s=0, action_timeout_s=120,
)  # fmt: skip
CONSUMER = "scaler.test"


def windows(model_id: str, region: str, per_window: int, buckets: int) -> list[DemandWindowReported]:
    """One window per bucket for the `buckets` complete buckets before NOW."""
    current = int(NOW.timestamp() // BUCKET_S)
    starts = [datetime.fromtimestamp(i * BUCKET_S, tz=UTC) for i in range(current - buckets, current)]
    return [
        DemandWindowReported(
            source="test", model_id=model_id, region=region, window_start=start,
            window_end=start + timedelta(seconds=BUCKET_S), requests=per_window, ok=per_window,
        )
        for start in starts
    ]  # fmt: skip


def loaded(model_id: str, region: str, server_id: str, action_id: str | None = None) -> ModelLoaded:
    return ModelLoaded(
        source="test", occurred_at=NOW - timedelta(hours=1), server_id=server_id, model_id=model_id, region=region,
        action_id=action_id,
    )  # fmt: skip


async def evaluate(store: FakeScalerStore, now: datetime = NOW) -> evaluation.Evaluation:
    return await evaluation.evaluate(store, SETTINGS, now, lambda: uuid.uuid4().hex)


async def cold_start(store: FakeScalerStore, request: ModelRequested) -> ScalingActionRequested | None:
    return await cold_starts.request_cold_start(
        store, CONSUMER, request, "aggressive", NOW, uuid.uuid4().hex, SETTINGS.backoff
    )


async def test_a_redelivered_input_changes_nothing():
    store = FakeScalerStore()
    window = windows("m", "us-east-1", 5, 1)[0]
    metrics = ServerMetricsReported(
        source="t", server_id="s1", model_id="m", region="us-east-1", gpu_type="a100", window_s=30,
        utilization=0.9, utilization_derived=True,
    )  # fmt: skip
    signal = ScalingSignalRaised(
        source="t", kind=SignalKind.SCALE_UP, model_id="m", region="us-east-1", metric="p95", value=2.0,
        threshold=1.0, factor=0.25,
    )  # fmt: skip
    for delivery in ("first", "redelivered"):
        recorded = [
            await recording.record_demand_window(store, CONSUMER, window),
            await recording.record_server_metrics(store, CONSUMER, metrics),
            await recording.record_signal(store, CONSUMER, signal),
        ]
        assert recorded == [delivery == "first"] * 3
    assert list(store.state.windows) == [window.event_id]
    assert list(store.state.utilization) == [("s1", "m")] and store.state.signals == [signal]


async def test_answers_from_the_allocator_place_models_and_close_their_actions():
    store = FakeScalerStore()
    requested = await cold_start(
        store, ModelRequested(source="t", model_id="m", region="eu-west-1", pending_requests=2)
    )
    assert requested is not None
    answer = loaded("m", "eu-west-1", "s1", requested.action_id)
    assert await recording.record_allocation(store, CONSUMER, answer, NOW, SETTINGS.backoff)
    assert not await recording.record_allocation(store, CONSUMER, answer, NOW, SETTINGS.backoff)  # redelivered
    assert set(store.state.placements) == {("s1", "m")}
    assert store.state.actions[requested.action_id].status == "confirmed"
    assert store.state.actions[requested.action_id].resolved_at == NOW

    await recording.record_allocation(store, CONSUMER, loaded("other", "eu-west-1", "s1"), NOW, SETTINGS.backoff)
    await recording.record_allocation(
        store, CONSUMER, ServerReleased(source="t", server_id="s1", region="eu-west-1"), NOW, SETTINGS.backoff
    )
    assert store.state.placements == {}  # whatever the server held went with it


async def test_a_failure_without_an_action_id_ends_the_pending_action_of_its_model_and_region():
    store = FakeScalerStore()
    requested = await cold_start(
        store, ModelRequested(source="t", model_id="m", region="us-east-1", pending_requests=1)
    )
    assert requested is not None
    failed = AllocationFailed(source="allocator", model_id="m", region="us-east-1", reason="no GPUs")
    assert await recording.record_allocation(store, CONSUMER, failed, NOW, SETTINGS.backoff)
    assert store.state.statuses("m") == {"us-east-1": "failed"}


async def test_a_cold_start_preloads_once_at_high_priority():
    store = FakeScalerStore()
    request = ModelRequested(source="t", model_id="m", region="eu-west-1", pending_requests=3)
    action = await cold_start(store, request)
    assert action is not None
    assert (action.kind, action.priority, action.target_instances, action.rule) == (
        ActionKind.PRELOAD, "high", 1, "cold_start",
    )  # fmt: skip
    assert action.inputs["pending_requests"] == 3.0 and "pending_requests=3" in action.reason
    assert store.state.announced(SCALING_ACTIONS) == [action]
    assert store.state.actions[action.action_id].status == "pending"

    assert await cold_start(store, request) is None  # redelivered
    again = ModelRequested(source="t", model_id="m", region="eu-west-1", pending_requests=7)
    assert await cold_start(store, again) is None  # one is pending already
    assert len(store.state.actions) == 1 and len(store.state.announced(SCALING_ACTIONS)) == 1


async def test_no_cold_start_for_a_model_already_placed_in_the_region():
    store = FakeScalerStore()
    await recording.record_allocation(store, CONSUMER, loaded("m", "eu-west-1", "s1"), NOW, SETTINGS.backoff)
    assert (
        await cold_start(store, ModelRequested(source="t", model_id="m", region="eu-west-1", pending_requests=1))
        is None
    )
    assert store.state.outbox == []


async def busy_model(store: FakeScalerStore, model_id: str = "m") -> None:
    """1,800 requests/hour for 24 buckets in us-east-1, where one instance runs."""
    for window in windows(model_id, "us-east-1", 5, 24):
        await recording.record_demand_window(store, CONSUMER, window)
    await recording.record_allocation(
        store, CONSUMER, loaded(model_id, "us-east-1", f"s-{model_id}"), NOW, SETTINGS.backoff
    )


async def test_an_evaluation_forecasts_plans_and_announces_what_it_recorded():
    store = FakeScalerStore()
    await busy_model(store)
    result = await evaluate(store)

    forecasts = store.state.announced(FORECASTS)
    assert forecasts == result.forecasts and len(forecasts) == 1
    forecast = forecasts[0]
    assert isinstance(forecast, DemandForecasted)
    assert (forecast.model_id, forecast.region, forecast.tier, forecast.bucket_s) == ("m", "us-east-1", "hot", 10)
    assert 1500 < forecast.requests_per_hour[0] < 2100

    # Above one instance's 1,000/h: scale up; hot: preload the two other regions too.
    assert store.state.announced(SCALING_ACTIONS) == result.actions
    kinds = {a.region: a.kind for a in result.actions}
    assert kinds == {
        "us-east-1": ActionKind.SCALE_UP,
        "eu-west-1": ActionKind.PRELOAD,
        "ap-southeast-1": ActionKind.PRELOAD,
    }
    assert store.state.statuses("m") == dict.fromkeys(kinds, "pending")
    assert store.state.tiers["m"][0] is Tier.HOT and [p.model_id for p in result.plans] == ["m"]


async def test_a_second_round_in_the_same_bucket_repeats_nothing():
    store = FakeScalerStore()
    await busy_model(store)
    await evaluate(store)
    again = await evaluate(store, NOW + timedelta(seconds=1))
    assert again.forecasts == [] and again.actions == []  # forecast out for this bucket; actions pending
    assert len(store.state.announced(FORECASTS)) == 1 and len(store.state.announced(SCALING_ACTIONS)) == 3


async def test_an_unconfirmed_action_is_reported_overdue_once():
    store = FakeScalerStore()
    requested = await cold_start(
        store, ModelRequested(source="t", model_id="m", region="us-east-1", pending_requests=1)
    )
    assert requested is not None
    later = NOW + timedelta(seconds=SETTINGS.action_timeout_s + 1)
    result = await evaluate(store, later)
    assert [(e.action_id, e.waited_s) for e in result.overdue] == [(requested.action_id, 121.0)]
    overdue = [e for e in store.state.announced(SCALING_ACTIONS) if isinstance(e, ScalingActionOverdue)]
    assert overdue == result.overdue and store.state.statuses("m") == {"us-east-1": "overdue"}
    assert (await evaluate(store, later + timedelta(seconds=1))).overdue == []


class FailsForBroken(FakeScalerRepository):
    """Writing the tier of model "broken" fails, as a lost connection would."""

    async def save_tier(self, model_id: str, tier: Tier, rph: float, now: datetime) -> None:
        if model_id == "broken":
            raise ConnectionError("lost the database")
        await super().save_tier(model_id, tier, rph, now)


async def test_a_model_whose_round_fails_leaves_the_others_decided():
    store = FakeScalerStore(repository=FailsForBroken)
    await busy_model(store, "broken")
    await busy_model(store, "fine")
    result = await evaluate(store)
    assert [p.model_id for p in result.plans] == ["fine"]
    announced = store.state.announced(FORECASTS)
    assert [e.model_id for e in announced if isinstance(e, DemandForecasted)] == ["fine"]  # "broken" rolled back
    assert {a.action.model_id for a in store.state.actions.values()} == {"fine"} and "broken" not in store.state.tiers


async def test_compaction_merges_old_windows_and_keeps_the_total():
    store = FakeScalerStore()
    for window in windows("m", "us-east-1", 5, 24):
        await recording.record_demand_window(store, CONSUMER, window)
    removed = await compaction.compact_history(store, NOW, 3600)
    assert removed == 24 - len(store.state.windows) and 0 < len(store.state.windows) < 24
    assert sum(w.requests for w in store.state.windows.values()) == 5 * 24
    assert await compaction.compact_history(store, NOW, 3600) == 0  # already one row per bucket
