"""The main job: bring the platform up, replay a real trace through it, report what happened, stop.

Every demo runs in a folder of its own (`reports/demo-<time>/`): its own Kafka and PostgreSQL
(`stack/`), the services' and Triton servers' logs (`stack/logs/`), and the report. A run therefore
starts from an empty platform: no server holds the trace's models, so the first requests are a
cold start and every server in the run is one the allocator started because the scaler asked.
"""

from __future__ import annotations

import asyncio
import os
import platform as host
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaProducer

from deploy.local import services
from deploy.local.common import REPO_ROOT, StackPaths, stack_paths
from llmfleet import platform, trace
from llmfleet.demo_fleet import DEMO_MODELS, EMULATED_MODEL, SERVER_MAX_BATCH, emulation_note, scaler_capacity
from llmfleet.events_recorder import EventRecorder
from llmfleet.faults import publish_notice, serving_server, spot_notice
from llmfleet.replay import Progress, ReplayOutcome, replay
from llmfleet.run_data import ReplayRun, RunConfig
from services.router.domain.batching import BatchStrategy
from services.scaler.domain.policy import PolicyName
from shared.events import COST_REPORTS, CostReported, CostReportRequested, DemandWindowReported, RoutingStrategy
from shared.kafka_security import PLAINTEXT

SCALER_BUCKET_S = 10
DEMAND_WINDOW_S = 5


@dataclass(frozen=True)
class DemoOptions:
    """What to replay, how fast, and the platform's policies (defaults: `make demo`)."""

    trace: str = "azure-llm-2023"
    compression: float = 15.0  # trace seconds per wall second
    duration_s: float = 240.0  # wall seconds of sending: replays duration x compression of trace
    start_s: float = 0.0  # offset into the trace
    sample: float = 0.1  # share of the trace's requests replayed (by a hash of their index)
    max_tokens_cap: int = 16
    regions: dict[str, float] = field(default_factory=lambda: {"us-east-1": 0.65, "eu-west-1": 0.35})
    scaling_policy: PolicyName = PolicyName.AGGRESSIVE
    batching: BatchStrategy = BatchStrategy.LATENCY_OPTIMIZED
    routing: RoutingStrategy = RoutingStrategy.BALANCED
    # None: the scaler sizes each model's instances with the performance model (capacity_rph); a
    # figure here is every model's instead (the demo set 25,000, measured, before servers were timed).
    requests_per_instance_hour: float | None = None
    max_servers: int = 6
    drain_timeout_s: float = 90.0
    folder: Path | None = None
    # A spot reclaim mid-run: wall seconds into the replay when the cloud's notice arrives for the
    # server holding the most models (None: none), and how long the notice gives (AWS: 120 s).
    spot_reclaim_at_s: float | None = None
    spot_notice_s: float = 120.0


def platform_settings(options: DemoOptions, fleet: Path, server_prefix: str) -> dict[str, str]:
    """The services' settings for a time-compressed run (windows and cooldowns in wall seconds)."""
    return {
        "LLMFLEET_ROUTER_DEFAULT_BATCH_STRATEGY": options.batching.value,
        "LLMFLEET_ROUTER_DEMAND_WINDOW_S": str(DEMAND_WINDOW_S),
        "LLMFLEET_ALLOCATOR_FLEET_CONFIG": str(fleet),
        "LLMFLEET_ALLOCATOR_SERVER_PREFIX": server_prefix,
        "LLMFLEET_ALLOCATOR_MAX_SERVERS": str(options.max_servers),
        "LLMFLEET_ALLOCATOR_MAX_GPUS_PER_SERVER": "1",
        # The replay streams nothing, and the simulator's cold start does not know a second load.
        "LLMFLEET_ALLOCATOR_LOAD_STREAM_VARIANTS": "false",
        "LLMFLEET_SCALER_POLICY": options.scaling_policy.value,
        "LLMFLEET_SCALER_BUCKET_S": str(SCALER_BUCKET_S),
        # A day of the trace in wall-clock buckets: the forecast's confidence counts how much of
        # its daily season it has seen, so a few minutes of history stay (honestly) unsure.
        "LLMFLEET_SCALER_DAY_BUCKETS": str(max(1, round(86400 / options.compression / SCALER_BUCKET_S))),
        "LLMFLEET_SCALER_EVALUATION_INTERVAL_S": "5",
        "LLMFLEET_SCALER_COOLDOWN_S": "20",
        # Capacity per instance from the performance model, for the demo's requests: the run's fleet
        # file, answers capped at max_tokens_cap, batches as large as a server runs.
        "LLMFLEET_SCALER_FLEET_CONFIG": str(fleet),
        "LLMFLEET_SCALER_REFERENCE_OUTPUT_TOKENS": str(options.max_tokens_cap),
        "LLMFLEET_SCALER_MAX_BATCH": str(SERVER_MAX_BATCH),
        "LLMFLEET_SCALER_UTILIZATION_MAX_AGE_S": "30",
        "LLMFLEET_SCALER_SIGNAL_MAX_AGE_S": "30",
        "LLMFLEET_MONITOR_SCRAPE_INTERVAL_S": "5",
        "LLMFLEET_MONITOR_WINDOW_S": "20",
        "LLMFLEET_MONITOR_REPORT_INTERVAL_S": "5",
        "LLMFLEET_MONITOR_SIGNAL_COOLDOWN_S": "20",
        "LLMFLEET_COST_REPORT_INTERVAL_S": "30",
        "LLMFLEET_COST_DEMAND_LOOKBACK_S": "600",
    } | ({} if options.requests_per_instance_hour is None else {
        "LLMFLEET_SCALER_REQUESTS_PER_INSTANCE_HOUR": str(options.requests_per_instance_hour)
    })  # fmt: skip


def machine() -> str:
    """The machine a run's figures come from, in words."""
    cpu = next(
        (line.split(":", 1)[1].strip() for line in _read("/proc/cpuinfo").splitlines() if "model name" in line), "?"
    )
    memory_kb = next((int(line.split()[1]) for line in _read("/proc/meminfo").splitlines() if "MemTotal" in line), 0)
    return f"{os.cpu_count()} cores ({cpu}), {memory_kb / 2**20:.0f} GiB, {host.system()} {host.release()}"


def _read(path: str) -> str:
    try:
        return Path(path).read_text()
    except OSError:
        return ""


def plan_requests(options: DemoOptions) -> tuple[list[trace.PlannedRequest], RunConfig]:
    """The requests of the run and the config that describes it."""
    files = trace.resolve(options.trace)
    rows = trace.read(files)
    window = options.duration_s * options.compression
    planned = trace.plan(
        rows, options.start_s, window, options.compression, options.max_tokens_cap, options.regions, options.sample
    )
    config = RunConfig(
        trace=options.trace,
        models={model: trace.shown_path(path, REPO_ROOT) for model, path in files.items()},
        window_start_s=options.start_s,
        trace_span_s=min(window, trace.span_s(rows) - options.start_s),
        compression=options.compression,
        duration_s=options.duration_s,
        max_tokens_cap=options.max_tokens_cap,
        regions=dict(options.regions),
        policies={
            "scaling": options.scaling_policy.value,
            "batching": options.batching.value,
            "routing": options.routing.value,
        },
        requests_per_instance_hour=options.requests_per_instance_hour or 0.0,
        machine=machine(),
        extra={
            "sample": options.sample,
            "trace_requests_in_window": sum(1 for r in rows if 0 <= r.offset_s - options.start_s < window),
            "max_servers": options.max_servers,
            "gpus": f"emulated: tinylm on CPU Triton servers, each batch timed as {EMULATED_MODEL} on the GPU type",
            "capacity_rph": scaler_capacity(options.max_tokens_cap, options.requests_per_instance_hour),
        },
    )
    return planned, config


def run_folder(options: DemoOptions) -> Path:
    """`reports/demo-<UTC time>` unless the options name one."""
    if options.folder is not None:
        return options.folder
    return REPO_ROOT / "reports" / f"demo-{datetime.now(UTC):%Y%m%d-%H%M%S}"


def demo_paths(folder: Path) -> StackPaths:
    """The run's own stack under `folder/stack`, sharing the downloads cache."""
    folder.mkdir(parents=True, exist_ok=True)
    default = stack_paths()
    (folder / "stack" / "logs").mkdir(parents=True, exist_ok=True)
    return StackPaths(cache=default.cache, run=(folder / "stack").resolve())


async def run_replay(
    bootstrap: str,
    options: DemoOptions,
    planned: list[trace.PlannedRequest],
    config: RunConfig,
    recorder: EventRecorder,
    run_id: str,
    on_progress: Callable[[Progress], None] | None = None,
) -> ReplayRun:
    """Replay, then ask the cost service for a closing report so the run ends with a fresh price."""
    outcome = await replay(
        bootstrap,
        planned,
        run_id,
        routing=options.routing,
        drain_timeout_s=options.drain_timeout_s,
        recorder=recorder,
        on_progress=on_progress,
    )
    notes = [
        f"max_tokens capped at {options.max_tokens_cap} (the trace's generated tokens above it were cut)",
        "prompts have the trace's context length in bytes; tinylm reads only their last 255 bytes",
        emulation_note(planned),
    ]
    if options.sample < 1:
        notes.append(f"{options.sample:.0%} of the trace's requests replayed, chosen by a hash of their index")
    if not await _last_demand_windows(outcome, recorder):
        notes.append("the router's last demand windows did not arrive: batch counts miss the run's last seconds")
    if not await _closing_cost_report(bootstrap, recorder, run_id):
        notes.append("the cost service did not answer the closing report request within 20 s")
    if outcome.duplicate_results:
        notes.append(f"{outcome.duplicate_results} duplicate results arrived (at-least-once); the first counted")
    if recorder.unreadable:
        notes.append(f"{recorder.unreadable} platform events could not be read")
    return ReplayRun(
        config=config,
        started_at=outcome.started_at,
        records=outcome.records,
        events=list(recorder.events),
        send_wall_s=outcome.send_wall_s,
        drain_wall_s=outcome.drain_wall_s,
        notes=notes,
        duplicate_results=outcome.duplicate_results,
    )


async def _last_demand_windows(outcome: ReplayOutcome, recorder: EventRecorder) -> bool:
    """Wait until the router's demand windows cover each model's last result (they close every few
    seconds), so that the report's batch counts include the whole run."""
    last: dict[str, datetime] = {}
    for record in outcome.records:
        if record.completed_s is not None:
            # The router counts a result before it sends it, so the window that holds it closes after
            # the client read it: wait for a window ending after the read (plus a little for clocks).
            at = outcome.started_at + timedelta(seconds=record.completed_s + 0.05)
            last[record.model_id] = max(last.get(record.model_id, at), at)
    for model_id, at in last.items():
        if await recorder.wait_for(_window_covering(model_id, at), timeout=DEMAND_WINDOW_S + 5) is None:
            return False
    return True


def _window_covering(model_id: str, at: datetime) -> Callable[[Any], bool]:
    def covers(event: Any) -> bool:
        return isinstance(event, DemandWindowReported) and event.model_id == model_id and event.window_end >= at

    return covers


async def _closing_cost_report(bootstrap: str, recorder: EventRecorder, run_id: str) -> bool:
    request = CostReportRequested(source="demo", request_id=f"{run_id}-closing")
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(COST_REPORTS.name, request.model_dump_json().encode(), key=b"demo")
    finally:
        await producer.stop()
    answer = await recorder.wait_for(
        lambda e: isinstance(e, CostReported) and e.requested_by == request.request_id, timeout=20
    )
    return answer is not None


@dataclass
class DemoSession:
    """One demo run: its folder, stack and settings; `run()` does up, replay, report."""

    options: DemoOptions
    log: Callable[[str], None] = print
    run_id: str = field(default_factory=lambda: uuid.uuid4().hex[:8])

    def __post_init__(self) -> None:
        self.folder = run_folder(self.options)
        self.paths = demo_paths(self.folder)

    def run(self, on_progress: Callable[[Progress], None] | None = None) -> ReplayRun:
        """Start the platform and replay; the caller stops it (`down`), also after an error or Ctrl-C."""
        planned, config = plan_requests(self.options)
        if not planned:
            raise ValueError("the chosen window of the trace has no requests")
        fleet = platform.fleet_with_models(DEMO_MODELS, self.folder)
        settings = platform_settings(self.options, fleet, f"demo{self.run_id[:4]}")
        from llmfleet.simulate.demo_scenario import demo_prediction  # the simulator loads only for a demo

        config.extra["prediction"] = guess = demo_prediction(self.options, planned, fleet, settings)
        self.log(f"the simulator predicts p95 {guess['p95_ms']:,.0f} ms and {guess['servers_started']} servers started")
        self.log(f"{len(planned):,} requests planned over {self.options.duration_s:.0f} s; run folder {self.folder}")
        self.log("starting PostgreSQL and Kafka (a stack of this run's own)...")
        info = platform.start_stack(self.paths)
        return asyncio.run(self._serve(info, settings, planned, config, on_progress))

    async def _serve(
        self,
        info: dict[str, Any],
        settings: Mapping[str, str],
        planned: list[trace.PlannedRequest],
        config: RunConfig,
        on_progress: Callable[[Progress], None] | None,
    ) -> ReplayRun:
        bootstrap = info["kafka"]["bootstrap"]
        recorder = EventRecorder(bootstrap, security=PLAINTEXT)  # the run's own stack is a plaintext one
        await recorder.start()  # before the services: their first events are part of the run
        reclaim: asyncio.Task[str] | None = None
        try:
            self.log("starting the six services (router, allocator, scaler, cost, monitor; the gateway idle)...")
            await asyncio.to_thread(
                services.start, info, settings, group_prefix=f"demo-{self.run_id}", paths=self.paths
            )
            self.log("replaying; no server holds the models yet, so the first requests are a cold start")
            if self.options.spot_reclaim_at_s is not None:
                reclaim = asyncio.create_task(self._reclaim_later(bootstrap, recorder, settings, config))
            run = await run_replay(bootstrap, self.options, planned, config, recorder, self.run_id, on_progress)
            if reclaim is not None:
                run.notes.append(await reclaim)  # a failed injection raises here: the run is not what was asked
            return run
        finally:
            if reclaim is not None and not reclaim.done():
                reclaim.cancel()
            await recorder.stop()

    async def _reclaim_later(
        self, bootstrap: str, recorder: EventRecorder, settings: Mapping[str, str], config: RunConfig
    ) -> str:
        """Give a spot interruption notice for the busiest server at `spot_reclaim_at_s`; the report's note."""
        assert self.options.spot_reclaim_at_s is not None
        await asyncio.sleep(self.options.spot_reclaim_at_s)
        prefix = f"{settings['LLMFLEET_ALLOCATOR_SERVER_PREFIX']}-"
        server = serving_server((e.event for e in recorder.events), prefix)
        if server is None:
            return f"no server held a model {self.options.spot_reclaim_at_s:.0f} s in: no spot reclaim was given"
        notice = spot_notice(server.server_id, server.region, self.options.spot_notice_s, source="llmfleet-demo")
        await publish_notice(bootstrap, notice)
        config.extra["spot_reclaim"] = {"server_id": server.server_id, "at_s": self.options.spot_reclaim_at_s}
        self.log(f"spot reclaim: notice for {server.server_id}, taken back {self.options.spot_notice_s:.0f} s later")
        return (
            f"spot reclaim: {server.server_id} got a {self.options.spot_notice_s:.0f} s interruption notice"
            f" {self.options.spot_reclaim_at_s:.0f} s into the replay"
        )

    def down(self) -> dict[str, bool]:
        """Stop everything this run started; remove its Kafka and PostgreSQL data, keep the logs."""
        clean = platform.down(self.paths)
        platform.remove_data(self.paths)
        return clean
