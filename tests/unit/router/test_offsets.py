"""The hot path's offsets over a fake consumer: commits up to the first open request, notes for the next owner."""

from __future__ import annotations

import pytest
from aiokafka import TopicPartition
from aiokafka.errors import KafkaError
from aiokafka.structs import OffsetAndMetadata

from services.router.adapters.metrics import router_metrics
from services.router.domain.offsets import decode_note, encode_done
from services.router.hotpath.offsets import Offsets
from shared.metrics import new_registry
from tests.unit.router.fakes import TOPIC, FakeConsumer, record

TP = TopicPartition(TOPIC, 0)


def offsets() -> Offsets:
    return Offsets(router_metrics(new_registry()))


async def test_a_commit_stops_at_the_first_open_request_and_notes_the_answered_ones_after_it():
    book, consumer = offsets(), FakeConsumer()
    for offset in (5, 6, 7):
        assert book.received(record(offset))
    book.done((TOPIC, 0), 6)
    await book.commit(consumer)
    point = consumer.committed[TP]
    assert point.offset == 5 and decode_note(5, point.metadata).answered == {6}
    assert not decode_note(5, point.metadata).final

    consumer.committed.clear()
    await book.commit(consumer)
    assert consumer.committed == {}  # nothing changed: nothing to commit
    book.done((TOPIC, 0), 5)
    book.done((TOPIC, 0), 7)
    await book.commit(consumer, final=True)
    assert consumer.committed[TP].offset == 8 and decode_note(8, consumer.committed[TP].metadata).final


async def test_a_refused_commit_is_tried_again_next_round():
    book = offsets()
    book.received(record(0))
    with pytest.raises(KafkaError):
        await book.commit(FakeConsumer(fail=KafkaError()))
    consumer = FakeConsumer()
    await book.commit(consumer)
    assert consumer.committed[TP].offset == 0


async def test_a_commit_of_some_partitions_leaves_the_others_for_the_next_round():
    book, consumer = offsets(), FakeConsumer()
    book.received(record(0, partition=0))
    book.received(record(0, partition=1))
    await book.commit(consumer, only={(TOPIC, 1)})
    assert set(consumer.committed) == {TopicPartition(TOPIC, 1)}
    await book.commit(consumer)
    assert set(consumer.committed) == {TP, TopicPartition(TOPIC, 1)}


async def test_a_new_owner_skips_what_the_note_says_is_answered_and_learns_which_hand_overs_were_not_final():
    book, consumer = offsets(), FakeConsumer()
    consumer.committed[TP] = OffsetAndMetadata(10, encode_done(10, {11}, 12, now_ms=5, final=False))
    graceful = TopicPartition(TOPIC, 1)
    consumer.committed[graceful] = OffsetAndMetadata(3, encode_done(3, set(), 3, final=True))
    unsure = await book.assign(consumer, [TP, graceful, TopicPartition(TOPIC, 2)])
    assert list(unsure) == [(TOPIC, 0)] and unsure[(TOPIC, 0)].committed_at_ms == 5
    assert book.commit_start((TOPIC, 0)) == 10 and book.commit_start((TOPIC, 2)) is None
    assert book.received(record(10)) and not book.received(record(11))
    assert book.epoch((TOPIC, 0)) == 1 and book.current((TOPIC, 0), 1) and not book.current((TOPIC, 0), 0)


async def test_partitions_that_move_away_are_no_longer_owned_or_pending():
    book = offsets()
    await book.assign(FakeConsumer(), [TP])
    book.received(record(0))
    assert book.owns((TOPIC, 0)) and book.pending([(TOPIC, 0)]) == 1
    book.forget({(TOPIC, 0)})
    assert not book.owns((TOPIC, 0)) and book.pending() == 0


def test_a_request_answered_before_frees_its_offset_and_is_counted():
    book = offsets()
    book.received(record(0))
    book.settled_before(record(0))
    assert book.pending() == 0
