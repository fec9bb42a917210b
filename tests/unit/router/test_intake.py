"""The intake over fakes: whatever a record holds, it ends in one outcome, and nothing it raises stops the poll."""

from __future__ import annotations

import base64

from shared.events import DEADLETTER, INFERENCE_RESULTS
from tests.unit.router.fakes import TOPIC, Record, record, rig, sample


async def test_a_record_without_a_readable_request_id_becomes_a_dead_letter_and_frees_its_offset():
    hot = await rig()
    await hot.intake.take([Record(TOPIC, 0, 0, b"not json")])
    await hot.settle()
    [letter] = hot.producer.sent
    assert letter.topic == DEADLETTER.name and base64.b64decode(letter.value["payload_b64"]) == b"not json"
    assert letter.value["source_offset"] == 0 and hot.offsets.pending() == 0 and hot.core.held_requests == 0


async def test_an_invalid_request_with_an_id_is_rejected_with_the_reason_and_kept_as_a_dead_letter():
    hot = await rig()
    await hot.intake.take([Record(TOPIC, 0, 3, b'{"request_id": "bad-1", "model_id": "m"}')])
    await hot.settle()
    assert [s.topic for s in hot.producer.sent] == [DEADLETTER.name, INFERENCE_RESULTS.name]
    [result] = hot.producer.results()
    assert result["request_id"] == "bad-1" and result["status"] == "rejected"
    assert result["reason"].startswith("invalid request:")
    assert hot.offsets.pending() == 0
    assert sample(hot.metrics, "llmfleet_router_requests_total", model="m", status="rejected") == 1


async def test_entry_checks_reject_a_large_prompt_and_send_a_refused_reply_topic_to_the_shared_one():
    hot = await rig(max_prompt_bytes=4)
    await hot.intake.take([record(0), record(10)])  # prompts "hi 0" and "hi 10"
    await hot.settle()
    by_id = {r["request_id"]: r for r in hot.producer.results()}
    assert by_id["r0"]["status"] == "ok" and by_id["r10"]["status"] == "rejected"
    assert by_id["r10"]["reason"] == "prompt of 5 bytes exceeds the limit of 4"

    hot = await rig()
    await hot.intake.take([record(0, reply_topic="fleet.allocations.v1")])
    await hot.settle()
    [sent] = hot.producer.sent
    assert sent.topic == INFERENCE_RESULTS.name and sent.value["status"] == "rejected"
    assert sent.value["reason"].startswith("reply_topic")


async def test_a_request_a_crashed_owner_answered_is_settled_without_a_second_result():
    hot = await rig()
    partition = (TOPIC, 0)
    hot.gate.repeats.add({"r5"}, {partition: 10})
    await hot.intake.take([record(5), record(6)])
    await hot.settle()
    assert [r["request_id"] for r in hot.producer.results()] == ["r6"]
    assert hot.offsets.pending() == 0
    assert sample(hot.metrics, "llmfleet_router_repeats_skipped_total") == 1


async def test_records_of_a_revoked_partition_are_left_to_the_new_owner():
    hot = await rig()
    hot.offsets.tracker.assigned((TOPIC, 0), None, None)
    hot.offsets.forget([(TOPIC, 0)])
    await hot.intake.take([record(0)])
    await hot.settle()
    assert hot.producer.sent == [] and hot.core.held_requests == 0


async def test_a_router_bug_on_one_record_still_answers_it_and_the_poll_goes_on(monkeypatch):
    hot = await rig()
    real = hot.core.accept

    async def broken(request, refusal=None):
        if request.request_id == "r0":
            raise RuntimeError("bug")
        await real(request, refusal)

    monkeypatch.setattr(hot.core, "accept", broken)
    await hot.intake.take([record(0), record(1)])
    await hot.settle()
    by_id = {r["request_id"]: r for r in hot.producer.results()}
    assert by_id["r0"]["status"] == "rejected" and "router error" in by_id["r0"]["reason"]
    assert by_id["r1"]["status"] == "ok" and hot.failures == []
