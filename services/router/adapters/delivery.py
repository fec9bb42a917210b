"""Getting one record onto Kafka, whatever it takes: retried with backoff until acknowledged.

The router appends records without awaiting each acknowledgement (the hot path could not afford
it); the acknowledgement frees the request's offset for commit. A record that fails is retried in
the background, with backoff, for as long as it takes (a broker outage only delays it). What can
never succeed as it is gets repaired first: a result too large for the producer loses its text
and says why, a dead letter keeps less of its payload, and a result refused by its reply topic
goes to the shared results topic with the reason. So no failed send can freeze a partition.

`Delivery` owns its producer: it makes it when started (aiokafka clients bind to the running
event loop, so none can be made when the app is composed) and stops it last.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any, Protocol

from aiokafka import AIOKafkaProducer
from aiokafka.errors import (
    InvalidTopicError,
    MessageSizeTooLargeError,
    RecordTooLargeError,
    TopicAuthorizationFailedError,
    UnknownTopicOrPartitionError,
)

from services.router.domain.offsets import Partition
from shared.events import INFERENCE_RESULTS, DeadLettered, Event, InferenceCompleted, ResultStatus

log = logging.getLogger(__name__)

TOO_LARGE = (MessageSizeTooLargeError, RecordTooLargeError)
TOPIC_REFUSED = (UnknownTopicOrPartitionError, TopicAuthorizationFailedError, InvalidTopicError)
SMALL_PAYLOAD = 16 * 1024


@dataclass(frozen=True)
class Outgoing:
    """One record to send; `ticket` (a request's, or None) is freed for commit on its acknowledgement."""

    topic: str
    event: Event
    key: str
    headers: dict[str, str]
    ticket: Any = None


def repaired(out: Outgoing, error: BaseException) -> Outgoing:
    """The record changed so that it can succeed, or unchanged when waiting is the cure."""
    event = out.event
    if isinstance(error, TOO_LARGE):
        if isinstance(event, InferenceCompleted):
            size = len(event.text.encode())
            reason = f"result too large to send ({size} bytes of text); {event.reason or ''}".rstrip("; ")
            return replace(
                out, event=event.model_copy(update={"text": "", "status": ResultStatus.FAILED, "reason": reason})
            )
        if isinstance(event, DeadLettered):
            reason = f"{event.reason[:1500]} (payload cut to {SMALL_PAYLOAD} bytes to fit)"
            payload = event.payload_b64[: SMALL_PAYLOAD * 4 // 3]
            return replace(out, event=event.model_copy(update={"payload_b64": payload, "reason": reason}))
    if (
        isinstance(error, TOPIC_REFUSED)
        and isinstance(event, InferenceCompleted)
        and out.topic != INFERENCE_RESULTS.name
    ):
        why = f"reply topic {out.topic} refused the result ({type(error).__name__}); sent to {INFERENCE_RESULTS.name}"
        reason = f"{event.reason}; {why}" if event.reason else why
        return replace(out, topic=INFERENCE_RESULTS.name, event=event.model_copy(update={"reason": reason}))
    return out


class Owed(Protocol):
    """Who keeps the offsets of requests owed a result (the hot path's `Offsets`)."""

    def current(self, partition: Partition, epoch: int) -> bool:
        """True while a record read in assignment `epoch` is still this consumer's to answer."""
        ...

    def done(self, partition: Partition, offset: int) -> None:
        """The record's result was acknowledged by Kafka."""
        ...


class Delivery:
    """Appends records to its producer and sees each one through to its acknowledgement."""

    producer: AIOKafkaProducer  # made by `start` (see the module docstring)

    def __init__(
        self,
        owed: Owed,
        connect: Callable[[], AIOKafkaProducer],
        on_failure: Callable[[BaseException], None] | None = None,
        max_backoff_s: float = 5.0,
    ) -> None:
        self._owed = owed
        self._connect = connect
        self._on_failure = on_failure
        self._max_backoff_s = max_backoff_s
        self._retrying: set[asyncio.Task[None]] = set()

    async def start(self) -> None:
        """Make the producer and connect it."""
        self.producer = self._connect()
        await self.producer.start()

    async def flush(self) -> None:
        """Wait until every record appended so far has been sent."""
        await self.producer.flush()

    async def stop(self) -> None:
        """Flush and disconnect the producer."""
        await self.producer.stop()

    @property
    def retrying(self) -> int:
        """Records waiting to be sent again."""
        return len(self._retrying)

    def _not_ours(self, out: Outgoing) -> bool:
        """True when the record answers a request whose partition moved to another owner since."""
        t = out.ticket
        if t is None or t.partition is None:
            return False
        return bool(t.abandoned) or not self._owed.current(t.partition, t.epoch)

    async def send(self, out: Outgoing) -> None:
        """Append the record; a failure now or at its acknowledgement is retried in the background."""
        if self._not_ours(out):
            return
        try:
            future = await self._append(out)
        except Exception as error:  # any failure to append: repaired if need be, then tried again
            self._retry_later(out, error, 1)
            return
        future.add_done_callback(lambda f: self._settled(f, out, 1))

    async def _append(self, out: Outgoing) -> asyncio.Future[Any]:
        wire = [("content-type", b"application/json"), ("event-type", type(out.event).__name__.encode())]
        wire += [(k, v.encode()) for k, v in out.headers.items()]
        value = out.event.model_dump_json().encode()
        future: asyncio.Future[Any] = await self.producer.send(out.topic, value, key=out.key.encode(), headers=wire)
        return future

    def _settled(self, future: asyncio.Future[Any], out: Outgoing, attempt: int) -> None:
        error = None if future.cancelled() else future.exception()
        if future.cancelled() or error is not None:
            self._retry_later(out, error or asyncio.CancelledError(), attempt)
        elif out.ticket is not None and out.ticket.partition is not None:
            self._owed.done(out.ticket.partition, out.ticket.offset)

    def _retry_later(self, out: Outgoing, error: BaseException, attempt: int) -> None:
        if attempt in (1, 10) or attempt % 100 == 0:  # a long outage logs a few lines, not thousands
            log.warning(
                "%s to %s not delivered (attempt %d), retrying: %r", type(out.event).__name__, out.topic, attempt, error
            )
        task = asyncio.get_running_loop().create_task(self._retry(repaired(out, error), attempt))
        self._retrying.add(task)
        task.add_done_callback(self._finished)

    def _finished(self, task: asyncio.Task[None]) -> None:
        self._retrying.discard(task)
        if not task.cancelled() and (error := task.exception()) is not None and self._on_failure is not None:
            self._on_failure(error)

    async def _retry(self, out: Outgoing, attempt: int) -> None:
        await asyncio.sleep(min(self._max_backoff_s, 0.05 * 2 ** min(attempt, 10)))
        if self._not_ours(out):
            return
        try:
            future = await self._append(out)
        except Exception as error:  # still failing: next round, with a longer pause
            self._retry_later(out, error, attempt + 1)
            return
        future.add_done_callback(lambda f: self._settled(f, out, attempt + 1))

    async def settle(self, timeout_s: float) -> None:
        """Wait (bounded) until nothing waits for a retry and the producer has flushed."""
        async with asyncio.timeout(timeout_s):
            while self._retrying:
                await asyncio.gather(*list(self._retrying), return_exceptions=True)
            await self.producer.flush()

    def cancel(self) -> None:
        """Stop retrying (shutdown after the drain timeout: the offsets stay open, so the requests come again)."""
        for task in list(self._retrying):
            task.cancel()
