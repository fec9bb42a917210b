"""Handler errors: every failure path is bounded, also across restarts.

Permanent errors are retried `attempts` times, transient ones with backoff and jitter within a
time budget; a record whose earlier deliveries never finished is parked without running the
handler; a dead letter is cut to fit Kafka. Clocks and sleeps are fakes: no test waits.

And the inbox names `subscribe` gives handlers."""

from __future__ import annotations

import base64
from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError, ProgrammingError

from shared.delivery import Noted, RecordAt
from shared.subscribe import (
    DEADLETTER_PAYLOAD_MAX,
    LastOffsets,
    Pace,
    RetryPolicy,
    apply_with_retries,
    dead_letter_for,
    inbox_name_for,
)
from tests.support.wiring import MemoryLedger

FAST = RetryPolicy(
    attempts=3, backoff_s=0.1, transient_budget_s=60.0, transient_backoff_s=1.0, transient_backoff_max_s=8.0
)
AT = RecordAt("llmfleet-scaler.fleet.demand.v1", "fleet.demand.v1", 2, 41)


class FakeTime:
    """A clock that moves only when the code under test sleeps; the sleeps are recorded."""

    def __init__(self, jitter: float = 0.0) -> None:
        self.now = 1000.0
        self.sleeps: list[float] = []
        self.pace = Pace(sleep=self.sleep, clock=lambda: self.now, jitter=lambda: jitter)

    async def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def down() -> OperationalError:
    return OperationalError("select 1", {}, ConnectionRefusedError())


async def test_a_handler_that_succeeds_is_called_once():
    calls = []

    async def handler(event):
        calls.append(event)

    assert await apply_with_retries(handler, "e", FAST, FakeTime().pace) is None
    assert calls == ["e"]


async def test_a_permanent_error_is_retried_with_backoff_then_the_record_parked():
    calls, time = [], FakeTime()

    async def handler(event):
        calls.append(event)
        raise ValueError("bad model id")

    parked = await apply_with_retries(handler, "e", FAST, time.pace)
    assert parked is not None and parked.cause == "failing"
    assert parked.reason == "handler failed 3 times: ValueError: bad model id"
    assert len(calls) == 3 and time.sleeps == [0.1, 0.2]


async def test_a_flaky_handler_succeeds_on_retry():
    calls = []

    async def handler(event):
        calls.append(event)
        if len(calls) < 2:
            raise ValueError("once")

    assert await apply_with_retries(handler, "e", FAST, FakeTime().pace) is None
    assert len(calls) == 2


async def test_a_transient_error_is_retried_with_growing_capped_pauses_then_parked_within_the_budget():
    calls, time = [], FakeTime()

    async def handler(event):
        calls.append(event)
        raise down()

    parked = await apply_with_retries(handler, "e", FAST, time.pace)
    assert parked is not None and parked.cause == "transient"
    assert parked.reason.startswith("transient errors for ") and "OperationalError" in parked.reason
    # jitter 0: half of 1, 2, 4, 8, then the 8 s cap, for as long as the 60 s budget lasts
    assert time.sleeps[:5] == [0.5, 1.0, 2.0, 4.0, 4.0]
    assert max(time.sleeps) == 4.0
    assert 56.0 <= sum(time.sleeps) <= 60.0
    assert len(calls) == len(time.sleeps) + 1


async def test_a_transient_outage_shorter_than_the_budget_is_waited_out_not_parked():
    calls, time = [], FakeTime()

    async def handler(event):
        calls.append(event)
        if time.now < 1000.0 + 30.0:  # the database is back after 30 s
            raise down()

    assert await apply_with_retries(handler, "e", FAST, time.pace) is None
    assert time.now >= 1030.0 and len(calls) == len(time.sleeps) + 1


def test_the_jitter_keeps_each_pause_in_the_upper_half_of_its_step_and_under_the_cap():
    policy = RetryPolicy(transient_backoff_s=1.0, transient_backoff_max_s=30.0)
    assert [policy.transient_delay(n, 0.0) for n in (1, 2, 3)] == [0.5, 1.0, 2.0]
    assert policy.transient_delay(3, 0.999) == pytest.approx(4.0, abs=0.01)
    assert policy.transient_delay(200, 0.999) <= 30.0  # no overflow however long the outage


def test_the_consumer_may_stay_in_a_record_for_the_whole_budget_without_leaving_its_group():
    policy = RetryPolicy(transient_budget_s=600.0, handler_slack_s=300.0)
    assert policy.max_poll_interval_ms == 900_000
    assert RetryPolicy().max_poll_interval_ms > RetryPolicy().transient_budget_s * 1000


# ---------------------------------------------------------------- across restarts


async def test_a_delivery_is_counted_before_the_handler_runs():
    ledger, counts = MemoryLedger(), []

    async def handler(event):
        counts.append(ledger.rows[AT].deliveries)

    assert await apply_with_retries(handler, "e", FAST, FakeTime().pace, ledger, AT) is None
    assert counts == [1] and ledger.noted == [AT]


async def test_a_record_whose_deliveries_never_finished_is_parked_without_running_the_handler():
    # Three processes died in this record (the row says so): the fourth parks it.
    ledger = MemoryLedger(rows={AT: Noted(3, "MemoryError: ")})
    calls = []

    async def handler(event):
        calls.append(event)

    parked = await apply_with_retries(handler, "e", FAST, FakeTime().pace, ledger, AT)
    assert calls == []
    assert parked is not None and parked.cause == "crash_loop"
    assert parked.reason.startswith("3 deliveries did not finish") and "last error: MemoryError" in parked.reason


async def test_below_the_limit_a_redelivered_record_runs_again():
    ledger = MemoryLedger(rows={AT: Noted(2, None)})
    calls = []

    async def handler(event):
        calls.append(event)

    assert await apply_with_retries(handler, "e", FAST, FakeTime().pace, ledger, AT) is None
    assert calls == ["e"] and ledger.rows[AT].deliveries == 3


async def test_retries_within_one_process_count_as_one_delivery_and_leave_their_error_on_the_row():
    ledger = MemoryLedger()

    async def handler(event):
        raise ValueError("bad model id")

    parked = await apply_with_retries(handler, "e", FAST, FakeTime().pace, ledger, AT)
    assert parked is not None and parked.cause == "failing"
    assert ledger.noted == [AT] and ledger.rows[AT].last_error == "ValueError: bad model id"


class DownLedger(MemoryLedger):
    """A ledger whose database answers only after `outage` failures, or fails for good with `error`."""

    def __init__(self, outage: int = 0, error: Exception | None = None) -> None:
        super().__init__()
        self.outage, self.error = outage, error

    async def note_delivery(self, at):
        if self.error is not None:
            raise self.error
        if self.outage > 0:
            self.outage -= 1
            raise down()
        return await super().note_delivery(at)


async def test_counting_while_the_database_is_down_is_retried_like_any_transient_error():
    ledger, time, calls = DownLedger(outage=2), FakeTime(), []

    async def handler(event):
        calls.append(event)

    assert await apply_with_retries(handler, "e", FAST, time.pace, ledger, AT) is None
    assert calls == ["e"] and len(time.sleeps) == 2 and ledger.rows[AT].deliveries == 1


async def test_a_broken_ledger_does_not_park_good_records():
    ledger, calls = DownLedger(error=ProgrammingError("insert", {}, Exception("no such table"))), []

    async def handler(event):
        calls.append(event)

    assert await apply_with_retries(handler, "e", FAST, FakeTime().pace, ledger, AT) is None
    assert calls == ["e"]


def test_only_a_record_that_does_not_follow_the_last_one_seen_on_its_partition_is_counted():
    seen = LastOffsets()
    assert seen.first_sight("t", 0, 40)  # first since start
    assert not seen.first_sight("t", 0, 41)  # the steady stream: no write
    assert seen.first_sight("t", 1, 41)  # another partition
    assert seen.first_sight("t", 0, 41)  # redelivered (a seek back, a rebalance)
    assert seen.first_sight("t", 0, 90)  # a jump (the partition came back after a rebalance)
    assert not seen.first_sight("t", 0, 91)


# ---------------------------------------------------------------- dead letters


def test_a_dead_letter_of_a_large_record_carries_its_head_and_says_it_was_truncated():
    raw = SimpleNamespace(topic="fleet.demand.v1", partition=1, offset=7, value=b"x" * (800 * 1024))
    letter = dead_letter_for(raw, "g", "handler failed 3 times: ValueError", "scaler")
    assert len(letter.model_dump_json()) < 1_000_000  # under Kafka's default message limit
    assert "truncated to 262144 of 819200 bytes" in letter.reason
    assert letter.reason.startswith("handler failed 3 times")
    assert len(letter.payload_b64) == len(base64.b64encode(b"x" * DEADLETTER_PAYLOAD_MAX))


def test_a_dead_letter_of_a_small_record_keeps_all_of_it():
    raw = SimpleNamespace(topic="fleet.demand.v1", partition=1, offset=7, value=b"{not json")
    letter = dead_letter_for(raw, "g", "invalid JSON", "scaler")
    assert letter.reason == "invalid JSON" and letter.payload_b64 == "e25vdCBqc29u"


# ---------------------------------------------------------------- inbox names
# Inbox rows are keyed by these names: a name that changed would apply every event again.

TODAY = {
    "allocator": {
        "allocator.on_scaling_action_requested",
        "allocator.on_prices_published",
        "allocator.on_allocation_event",
    },
    "scaler": {
        "scaler.on_demand_window_reported",
        "scaler.on_server_metrics_reported",
        "scaler.on_scaling_signal_raised",
        "scaler.on_model_requested",
        "scaler.on_allocation_changed",
    },
    "cost": {
        "cost.on_allocation_changed",
        "cost.on_server_metrics_reported",
        "cost.on_demand_window_reported",
        "cost.on_demand_forecasted",
        "cost.on_cost_report_requested",
        "cost.on_usage_metered",
    },
    "monitor": {
        "monitor.on_allocation_changed",
        "monitor.on_demand_window_reported",
        "monitor.on_prices_published",
        "monitor.on_overdue",
        "monitor.on_usage_metered",
    },
}


def test_the_default_inbox_name_is_the_service_and_the_handler():
    async def on_model_requested(event): ...

    on_model_requested.__module__ = "services.scaler.handlers"
    assert inbox_name_for(on_model_requested) == "scaler.on_model_requested"


class RecordingApp(SimpleNamespace):
    """What `register(app)` reads at registration, with a `subscribe` that records the inbox names."""

    def subscribe(self, topic, handler, inbox=None):
        self.inboxes.add(inbox or inbox_name_for(handler))
        return inbox or inbox_name_for(handler)


def registered_inboxes(register) -> set[str]:
    settings = SimpleNamespace(service_name="x", group_id="g", policy=SimpleNamespace(value="p"))
    app = RecordingApp(
        inboxes=set(), settings=settings, runtime=SimpleNamespace(broker=None, sessions=None), allocator=None
    )
    register(app)
    return app.inboxes


def test_every_service_keeps_the_inbox_names_its_rows_carry():
    from services.allocator import handlers as allocator
    from services.cost import handlers as cost
    from services.monitor import handlers as monitor
    from services.scaler import handlers as scaler

    found = {
        "allocator": registered_inboxes(allocator.register),
        "scaler": registered_inboxes(scaler.register),
        "cost": registered_inboxes(cost.register),
        "monitor": registered_inboxes(monitor.register),
    }
    assert found == TODAY
