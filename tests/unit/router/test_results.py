"""Results and their delivery over a fake producer: one result per request, retried until acknowledged."""

from __future__ import annotations

import asyncio

from aiokafka.errors import MessageSizeTooLargeError, UnknownTopicOrPartitionError
from opentelemetry.trace import INVALID_SPAN

from services.router.domain.requests import Pending
from services.router.hotpath.records import Ticket
from services.router.hotpath.results import result_event_id
from shared.events import INFERENCE_RESULTS, ResultStatus
from tests.unit.router.fakes import TOPIC, FakeProducer, rig, sample


def pending(request_id: str = "r1", offset: int = 0, reply_topic: str | None = None) -> Pending:
    """A request read from partition 0 at `offset`, its offset open in the tracker."""
    ticket = Ticket((TOPIC, 0), offset, INVALID_SPAN, reply_topic, 0.0, 0.0, 0.0)
    return Pending(request_id, "m", "hello", 8, 0.0, offset, ticket=ticket)


async def acks() -> None:
    for _ in range(3):
        await asyncio.sleep(0)


async def test_a_result_carries_an_id_derived_from_the_request_and_its_ack_frees_the_offset():
    hot = await rig()
    hot.offsets.tracker.received((TOPIC, 0), 0)
    await hot.results.publish(pending(), ResultStatus.OK, text="hi", server_id="s1", tokens=(2, 3), inference_ms=1.0)
    await acks()
    [result] = hot.producer.results()
    assert result["event_id"] == str(result_event_id("r1")) and result["text"] == "hi"
    assert (result["tokens_in"], result["tokens_out"], result["server_id"]) == (2, 3, "s1")
    assert hot.offsets.pending() == 0
    assert sample(hot.metrics, "llmfleet_router_requests_total", model="m", status="ok") == 1
    window = hot.demand.take()[("m", "us-east-1")]
    assert (window.requests, window.ok, window.tokens_in, window.tokens_out) == (1, 1, 2, 3)


async def test_a_missing_reply_topic_sends_the_result_to_the_shared_topic_saying_why():
    hot = await rig(producer=FakeProducer({INFERENCE_RESULTS.name, "test.replies"}))
    await hot.results.publish(pending("r1", reply_topic="test.replies"), ResultStatus.OK)
    await hot.results.publish(pending("r2", 1, reply_topic="test.gone"), ResultStatus.OK)
    await acks()
    assert [(s.topic, s.value["request_id"]) for s in hot.producer.sent] == [
        ("test.replies", "r1"),
        (INFERENCE_RESULTS.name, "r2"),
    ]
    assert "reply topic test.gone does not exist" in hot.producer.sent[1].value["reason"]


async def test_the_result_of_a_request_whose_partition_moved_away_is_not_sent():
    hot = await rig()
    abandoned = pending("r1")
    abandoned.ticket.abandoned = True
    await hot.results.publish(abandoned, ResultStatus.OK)
    hot.offsets.tracker.assigned((TOPIC, 0), None, None)  # a new assignment: epoch 1
    await hot.results.publish(pending("r2"), ResultStatus.OK)  # read under epoch 0
    await acks()
    assert hot.producer.sent == []


async def test_a_send_that_fails_is_retried_until_acknowledged_and_only_then_frees_the_offset():
    hot = await rig(producer=FakeProducer(failures=2))
    hot.offsets.tracker.received((TOPIC, 0), 0)
    await hot.results.publish(pending(), ResultStatus.OK, text="hi")
    await acks()
    assert hot.offsets.pending() == 1 and hot.delivery.retrying == 1
    await hot.delivery.settle(5.0)
    await acks()
    assert [r["request_id"] for r in hot.producer.results()] == ["r1"]
    assert hot.offsets.pending() == 0 and hot.delivery.retrying == 0


async def test_a_result_too_large_to_send_goes_out_failed_without_its_text():
    hot = await rig(producer=FakeProducer(failures=1, error=MessageSizeTooLargeError()))
    await hot.results.publish(pending(), ResultStatus.OK, text="x" * 100)
    await acks()  # the failed acknowledgement schedules the retry
    await hot.delivery.settle(5.0)
    [result] = hot.producer.results()
    assert result["status"] == "failed" and result["text"] == ""
    assert result["reason"].startswith("result too large to send (100 bytes of text)")


async def test_a_reply_topic_that_refuses_the_result_sends_it_to_the_shared_topic():
    producer = FakeProducer({INFERENCE_RESULTS.name, "test.replies"}, failures=1, error=UnknownTopicOrPartitionError())
    hot = await rig(producer=producer)
    await hot.results.publish(pending(reply_topic="test.replies"), ResultStatus.OK)
    await acks()
    await hot.delivery.settle(5.0)
    [sent] = hot.producer.sent
    assert sent.topic == INFERENCE_RESULTS.name and "reply topic test.replies refused" in sent.value["reason"]
