"""The request pipeline over fakes: every request read ends in one result, held ones move on or are rejected."""

from __future__ import annotations

import time
from dataclasses import replace
from datetime import UTC, datetime

from services.router import handlers
from services.router.domain.registry import Registry
from services.router.hotpath.dispatch import NotServed, Served
from services.router.settings import StaticServer
from services.router.use_cases import allocations
from shared.events import MODEL_REQUESTS, AllocationFailed, ModelLoaded, ServerAllocated
from tests.unit.router.fakes import FakeDispatcher, record, rig, sample, with_model


async def test_a_request_for_a_served_model_gets_one_ok_result_and_its_offset_is_freed():
    hot = await rig()
    await hot.intake.take([record(0), record(1)])
    assert hot.core.held_requests == 2 and hot.offsets.pending() == 2
    await hot.settle()
    results = hot.producer.results()
    assert sorted(r["request_id"] for r in results) == ["r0", "r1"]
    assert {r["status"] for r in results} == {"ok"} and results[0]["text"].startswith("HI ")
    assert hot.core.held_requests == 0 and hot.core.held_bytes == 0 and hot.offsets.pending() == 0
    assert len(hot.dispatcher.served) == 1  # one batch of both rows
    assert sample(hot.metrics, "llmfleet_router_requests_total", model="m", status="ok") == 2
    assert hot.demand.take()[("m", "us-east-1")].batches == 1
    assert hot.failures == []


async def test_an_unknown_model_is_held_the_fleet_asked_once_and_a_new_server_releases_it():
    hot = await rig(dispatcher=FakeDispatcher(), cold_start_models=["*"])
    await hot.intake.take([record(0, model="cold"), record(1, model="cold")])
    await hot.settle()
    assert hot.core.hold.count("cold") == 2 and hot.core.models() == {"cold"} and hot.core.queued("cold") == 2
    asks = [s for s in hot.producer.sent if s.topic == MODEL_REQUESTS.name]
    assert len(asks) == 1 and asks[0].value["model_id"] == "cold"

    # The placement may come before its server: the requests go once both are known.
    loaded = ModelLoaded(source="allocator", server_id="s9", model_id="cold", region="us-east-1", triton_model="echo")
    await handlers.on_allocation(hot.core, loaded, replayed=False)
    assert hot.core.hold.count("cold") == 2
    server = ServerAllocated(
        source="allocator",
        server_id="s9",
        endpoint="s9:8000",
        metrics_url="s9:8002",
        region="us-east-1",
        gpu_type="a100",
        cost_per_hour=1.0,
    )
    await handlers.on_allocation(hot.core, server, replayed=False)
    await hot.settle()
    assert hot.core.hold.count("cold") == 0
    assert sorted(r["status"] for r in hot.producer.results()) == ["ok", "ok"]
    assert hot.offsets.pending() == 0


async def test_a_live_allocation_failure_rejects_the_held_requests_and_a_replayed_one_does_not():
    hot = await rig(dispatcher=FakeDispatcher(), cold_start_models=["*"])
    await hot.intake.take([record(0, model="cold")])
    failed = AllocationFailed(source="allocator", model_id="cold", region="us-east-1", reason="no capacity")
    await handlers.on_allocation(hot.core, failed, replayed=True)
    assert hot.core.hold.count("cold") == 1
    await handlers.on_allocation(hot.core, failed, replayed=False)
    await hot.settle()
    [result] = hot.producer.results()
    assert result["status"] == "rejected" and result["reason"] == "allocation failed: no capacity"
    assert hot.core.held_requests == 0 and hot.offsets.pending() == 0


async def test_static_servers_are_added_through_the_same_narrow_interface():
    hot = await rig(dispatcher=FakeDispatcher())
    assert not hot.dispatcher.registry.knows_model("m")
    static = [StaticServer(server_id="st", endpoint="st:8000", models={"m": "echo"})]
    hot.core.change_registry(lambda registry: allocations.add_static(registry, static))
    assert hot.dispatcher.registry.knows_model("m") and hot.dispatcher.registry.triton_name("st", "m") == "echo"


async def test_losing_every_server_holds_the_batch_and_a_refused_batch_is_split_row_by_row():
    script: list[Served | NotServed] = [NotServed("no healthy server has the model", no_server=True)]
    hot = await rig(dispatcher=FakeDispatcher(with_model(Registry()), script))
    await hot.intake.take([record(0), record(1)])
    await hot.settle()
    assert hot.core.hold.count("m") == 2 and hot.producer.results() == []
    hot.dispatcher.script = [NotServed("s1: bad row", model_error=True)]
    hot.core.release_servable()  # the health check found the server ready again
    await hot.settle()
    assert [len(b.requests) for b in hot.dispatcher.served] == [2, 2, 1, 1]
    assert sorted(r["status"] for r in hot.producer.results()) == ["ok", "ok"]


async def test_a_batch_that_fails_answers_every_row_failed_with_the_reason():
    hot = await rig(dispatcher=FakeDispatcher(with_model(Registry()), [NotServed("after trying ['s1']: timeout")]))
    await hot.intake.take([record(0), record(1)])
    await hot.settle()
    results = hot.producer.results()
    assert [r["status"] for r in results] == ["failed", "failed"]
    assert all(r["reason"] == "after trying ['s1']: timeout" for r in results)
    assert hot.offsets.pending() == 0 and hot.core.inflight_rows == {}


async def test_a_row_whose_deadline_passed_while_batching_is_rejected_and_the_rest_still_run():
    hot = await rig()
    await hot.intake.take([record(0, deadline=datetime(2999, 1, 1, tzinfo=UTC)), record(1)])
    [batch] = hot.core.batcher.drain(time.monotonic())
    late = replace(batch.requests[0], deadline=0.0)  # as if it had passed while the batch formed
    hot.core.start_batches([replace(batch, requests=(late, batch.requests[1]))])
    await hot.settle()
    by_id = {r["request_id"]: r for r in hot.producer.results()}
    assert by_id["r0"]["status"] == "rejected" and by_id["r0"]["reason"] == "deadline passed while batching"
    assert by_id["r1"]["status"] == "ok" and [len(b.requests) for b in hot.dispatcher.served] == [1]
    assert hot.core.held_requests == 0


async def test_the_router_stops_reading_at_80_percent_of_its_request_limit():
    hot = await rig(dispatcher=FakeDispatcher(), cold_start_models=["*"], max_queued_requests=10)
    assert hot.core.room() == 10
    await hot.intake.take([record(i, model="cold") for i in range(7)])
    assert hot.core.room() == 3
    await hot.intake.take([record(7, model="cold")])
    assert hot.core.room() == 0


async def test_requests_of_partitions_that_moved_away_are_dropped_without_results():
    hot = await rig(dispatcher=FakeDispatcher(), cold_start_models=["*"])
    await hot.intake.take([record(0, model="cold", partition=0), record(1, model="cold", partition=1)])
    assert hot.core.abandon({(record(0).topic, 0)}) == 1
    assert hot.core.held_requests == 1 and hot.core.hold.count("cold") == 1
    failed = AllocationFailed(source="allocator", model_id="cold", region="us-east-1", reason="none")
    await handlers.on_allocation(hot.core, failed, replayed=False)
    await hot.settle()
    assert [r["request_id"] for r in hot.producer.results()] == ["r1"]
