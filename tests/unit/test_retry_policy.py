"""Handler errors: permanent ones are retried a bounded number of times, transient ones re-raised.

And the inbox names `subscribe` gives handlers."""

from __future__ import annotations

from types import SimpleNamespace

import pytest
from sqlalchemy.exc import OperationalError

from shared.subscribe import RetryPolicy, _apply, inbox_name_for

FAST = RetryPolicy(attempts=3, backoff_s=0.0, transient_pause_s=0.0)


async def test_a_handler_that_succeeds_is_called_once():
    calls = []

    async def handler(event):
        calls.append(event)

    assert await _apply(handler, "e", FAST) is None
    assert calls == ["e"]


async def test_a_permanent_error_is_retried_then_returned_for_the_dead_letter():
    calls = []

    async def handler(event):
        calls.append(event)
        raise ValueError("bad model id")

    error = await _apply(handler, "e", FAST)
    assert isinstance(error, ValueError) and len(calls) == 3


async def test_a_flaky_handler_succeeds_on_retry():
    calls = []

    async def handler(event):
        calls.append(event)
        if len(calls) < 2:
            raise ValueError("once")

    assert await _apply(handler, "e", FAST) is None
    assert len(calls) == 2


async def test_a_transient_error_is_raised_so_the_offset_stays_uncommitted():
    async def handler(event):
        raise OperationalError("select 1", {}, ConnectionRefusedError())

    with pytest.raises(OperationalError):
        await _apply(handler, "e", FAST)


# ---------------------------------------------------------------- inbox names
# Inbox rows are keyed by these names: a name that changed would apply every event again.

TODAY = {
    "allocator": {"allocator.on_scaling_action_requested", "allocator.on_prices_published"},
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
    },
    "monitor": {
        "monitor.on_allocation_changed",
        "monitor.on_demand_window_reported",
        "monitor.on_prices_published",
        "monitor.on_overdue",
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
