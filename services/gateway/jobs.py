"""The gateway assembled over the shared runtime, and its jobs: HTTP, results, settling, leases, retention."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import logging
from collections.abc import Callable, Coroutine, Generator, Sequence
from typing import Any

import uvicorn

from services.gateway.adapters import allocations
from services.gateway.adapters.bridge import Bridge
from services.gateway.adapters.metrics import GatewayMetrics
from services.gateway.adapters.orm import inbox, outbox, usage_window
from services.gateway.adapters.repository import gateway_store
from services.gateway.batching import Batches
from services.gateway.domain.budgets import Prices
from services.gateway.domain.catalogue import Catalogue
from services.gateway.settings import GatewaySettings
from services.gateway.use_cases.access import KeyCache
from services.gateway.use_cases.ledger import Ledger, flush_meter, reap
from services.gateway.use_cases.serving import Knobs, Serving
from shared.jobs import Job, loop, periodic
from shared.retention import Kept, messaging
from shared.runtime import Runtime, ServiceApp

log = logging.getLogger(__name__)


def retained(settings: GatewaySettings) -> tuple[Kept, ...]:
    """What retention prunes: inbox, sent outbox, and minute windows past `usage_retention_s`."""
    return (*messaging(inbox, outbox, settings), Kept(usage_window, "window_start", settings.usage_retention_s))


class _Server(uvicorn.Server):
    """uvicorn inside the service's own loop: the service, not uvicorn, owns SIGTERM."""

    @contextlib.contextmanager
    def capture_signals(self) -> Generator[None, None, None]:
        yield


class GatewayApp(ServiceApp[GatewaySettings, GatewayMetrics]):
    """The gateway: the Kafka bridge, the key cache, the catalogue, the usage ledger, and the HTTP app (`register`)."""

    def __init__(self, runtime: Runtime, settings: GatewaySettings) -> None:
        super().__init__(runtime, settings, GatewayMetrics(runtime.registry), outbox)
        self.store = gateway_store(runtime.sessions)
        self.catalogue = Catalogue(settings.catalogue_specs())
        tracer = runtime.tracer_provider.get_tracer("llmfleet.gateway")
        self.bridge = bridge = Bridge(
            settings.kafka_bootstrap,
            settings.requests_topic,
            settings.reply_topic,
            settings.reply_partitions,
            tracer,
            settings.kafka_security,
        )
        self.ledger = Ledger(self.store)
        self.metrics.waiting.set_function(lambda: bridge.waiting)
        prices = Prices.per_1k_tokens(settings.default_price_per_1k_tokens, settings.price_per_1k_tokens)
        knobs = Knobs(
            settings.request_timeout_s, settings.lease_grace_s, settings.priority, settings.settle_wait_s, prices=prices
        )
        self.keys = KeyCache(self.store, settings.key_cache_s)
        self.serving = Serving(
            self.store, self.keys, self.ledger, self.catalogue, self.bridge, knobs, self.metrics.observe
        )
        self.batches = Batches(settings, runtime.sessions, self.catalogue, self.ledger)
        self.http: Any = None  # the ASGI app; handlers.register builds it
        self.serving_http = asyncio.Event()
        self._http_done = asyncio.Event()

    def ready(self) -> tuple[bool, str]:
        """/ready: started, the broker connected, the reply topic read, the HTTP port open."""
        ok, reason = self.runtime.ready()
        if not ok:
            return ok, reason
        if not self.bridge.connected:
            return False, "reply topic not connected"
        return (True, "ready") if self.serving_http.is_set() else (False, "HTTP not serving yet")

    def rounds(self) -> Sequence[Job]:
        """HTTP, the results reader, the lease reaper, and (if on) the allocation follower."""
        settings = self.settings
        jobs = [
            Job("gateway http", self._serve_http, graceful=True),
            # Results go on until the HTTP side has drained, so requests in progress finish.
            Job("gateway results", lambda _stopping: self._until_drained(self.bridge.run), graceful=True),
            periodic("gateway leases", settings.reap_interval_s, lambda: reap(self.store)),
            periodic("gateway meter", settings.meter_interval_s, self.publish_usage),
        ]
        jobs.extend(self.batches.jobs())
        if settings.follow_allocations:
            jobs.append(
                loop(
                    "gateway allocations",
                    lambda: allocations.follow(settings.kafka_bootstrap, self.catalogue, settings.kafka_security),
                )
            )
        return jobs

    def retained(self) -> Sequence[Kept]:
        """Inbox, sent outbox, old minute windows."""
        return retained(self.settings)

    async def prepare(self) -> None:
        """Create and open this replica's reply topic before any request can be sent."""
        await self.bridge.start()
        await self.batches.start()
        gc.freeze()  # start-up objects out of the collector's reach: shorter pauses on the request path

    async def release(self) -> None:
        """Settle what is left, then disconnect (and delete the reply topic on a graceful stop)."""
        try:
            await self.ledger.flush()
            await flush_meter(self.store, self.settings.service_name)  # any replica's relay publishes it
        except Exception as error:  # leases expire, so the counts heal; never block the stop
            log.warning("last settlements not written: %r", error)
        await self.bridge.stop(self.settings.delete_reply_topic)
        await self.batches.stop()

    async def publish_usage(self) -> int:
        """Publish what the meter holds (one UsageMetered per tenant x model); how many events."""
        events = await flush_meter(self.store, self.settings.service_name)
        if events:
            self.relay.notify()
        return len(events)

    async def _serve_http(self, stopping: asyncio.Event) -> None:
        """Serve the API until the service stops; then let requests in progress finish."""
        config = uvicorn.Config(
            self.http,
            host=self.settings.http_host,
            port=self.settings.http_port,
            lifespan="off",
            access_log=False,
            log_level="warning",
            timeout_graceful_shutdown=int(self.settings.request_timeout_s) + 1,
        )
        server = _Server(config)
        serving = asyncio.create_task(server.serve())
        try:
            while not server.started and not serving.done():  # noqa: ASYNC110 - uvicorn has no start event
                await asyncio.sleep(0.01)
            if serving.done():
                await serving  # it could not bind: the error ends the process loudly
                raise RuntimeError("the HTTP server stopped at start")
            self.serving_http.set()
            await stopping.wait()
            server.should_exit = True
            await serving
        finally:
            self.serving_http.clear()
            self._http_done.set()

    async def _until_drained(self, run: Callable[[], Coroutine[Any, Any, None]]) -> None:
        """Run `run()` until the HTTP side has stopped and drained (it never ends by itself)."""
        task = asyncio.create_task(run())
        try:
            await _first(task, self._http_done)
        finally:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task


async def _first(task: asyncio.Task[None], event: asyncio.Event) -> None:
    """Wait for `task` to end (its error is raised) or `event` to be set, whichever comes first."""
    waiter = asyncio.create_task(event.wait())
    try:
        await asyncio.wait({task, waiter}, return_when=asyncio.FIRST_COMPLETED)
    finally:
        waiter.cancel()
    if task.done():
        task.result()
        raise RuntimeError(f"{task.get_name()} stopped")
