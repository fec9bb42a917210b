"""`llmfleet demo | replay`: replay a real trace through the platform and report what happened."""

from __future__ import annotations

import asyncio
import contextlib
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.live import Live
from rich.text import Text

from llmfleet import target
from llmfleet.commands.console import console
from llmfleet.demo import DemoOptions, DemoSession
from llmfleet.replay import Progress
from llmfleet.status.health import UNREACHABLE
from llmfleet.status.read import read_kafka
from services.router.domain.batching import BatchStrategy
from services.scaler.domain.policy import PolicyName
from shared.events import RoutingStrategy

TRACE_HELP = "azure-llm-2023 (built in: code and conversation as two models), a CSV file or a folder of CSVs"
DEFAULT_REGIONS = "us-east-1=0.65,eu-west-1=0.35"

TraceOption = Annotated[str, typer.Option(help=TRACE_HELP)]
Compression = Annotated[float, typer.Option(help="trace seconds per wall second")]
Duration = Annotated[float, typer.Option(help="wall seconds of sending")]
Start = Annotated[float, typer.Option(help="offset into the trace, seconds")]
Sample = Annotated[float, typer.Option(help="share of the trace's requests replayed")]
Cap = Annotated[int, typer.Option(help="cap on max_tokens (what the emulated fleet can serve)")]
Regions = Annotated[str, typer.Option(help="users' regions and their shares")]
Scaling = Annotated[PolicyName, typer.Option(help="the scaler's policy")]
Batching = Annotated[BatchStrategy, typer.Option(help="the router's batching strategy")]
Routing = Annotated[RoutingStrategy, typer.Option(help="the requests' routing strategy")]
Folder = Annotated[Path | None, typer.Option(help="report folder (default reports/<command>-<time>)")]


def _replay_options(
    trace: str,
    compression: float,
    duration: float,
    start: float,
    sample: float,
    max_tokens_cap: int,
    regions: str,
    routing: RoutingStrategy,
) -> DemoOptions:
    return replace(
        DemoOptions(),
        trace=trace,
        compression=compression,
        duration_s=duration,
        start_s=start,
        sample=sample,
        max_tokens_cap=max_tokens_cap,
        regions=_regions(regions),
        routing=routing,
    )


def _regions(text: str) -> dict[str, float]:
    try:
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        return {region.strip(): float(share) for region, share in pairs}
    except ValueError as error:
        raise typer.BadParameter(f"regions look like us-east-1=0.65,eu-west-1=0.35 ({error})") from error


def demo(
    trace: TraceOption = "azure-llm-2023",
    compression: Compression = DemoOptions.compression,
    duration: Duration = DemoOptions.duration_s,
    start: Start = 0.0,
    sample: Sample = DemoOptions.sample,
    max_tokens_cap: Cap = DemoOptions.max_tokens_cap,
    regions: Regions = DEFAULT_REGIONS,
    scaling: Scaling = DemoOptions.scaling_policy,
    batching: Batching = DemoOptions.batching,
    routing: Routing = DemoOptions.routing,
    folder: Folder = None,
    keep: Annotated[bool, typer.Option("--keep", help="leave the platform running afterwards")] = False,
    spot_reclaim_at: Annotated[
        float | None,
        typer.Option(min=0, help="wall seconds into the replay when the busiest server gets a spot reclaim notice"),
    ] = None,
) -> None:
    """Bring the platform up, replay a real trace through it, report what happened, stop."""
    options = replace(
        _replay_options(trace, compression, duration, start, sample, max_tokens_cap, regions, routing),
        scaling_policy=scaling,
        batching=batching,
        folder=folder,
        spot_reclaim_at_s=spot_reclaim_at,
    )
    session = DemoSession(options, log=lambda text: console.print(f"[bold]{text}[/bold]"))
    summary = _run_session(session, keep)
    if summary is None or summary["requests"]["missing"] or not summary["requests"]["counts_add_up"]:
        raise typer.Exit(1)


def _run_session(session: DemoSession, keep: bool) -> dict[str, Any] | None:
    from llmfleet.report import print_summary, write_report

    # `kill` stops it as cleanly as Ctrl-C. Ctrl-C raises at once too: left to asyncio.run, the first
    # one only cancels the main task, and Python 3.11's wait_for (used inside aiokafka and our client)
    # drops a cancel that races its inner future finishing, so the replay could carry on to its end.
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGINT)}
    summary = None
    try:
        with _progress_display() as show:
            run = session.run(on_progress=show)
        summary = write_report(run, session.folder)
        print_summary(console, summary)
        console.print(f"report: [bold]{session.folder}[/bold] (report.md, summary.json, plots, logs in stack/logs)")
    except KeyboardInterrupt:
        console.print("[yellow]interrupted: stopping the platform[/yellow]")
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        if keep:
            console.print(f"platform left running: LLMFLEET_RUN_DIR={session.paths.run} llmfleet status | down")
        else:
            clean = session.down()
            console.print(
                "stopped: "
                + ", ".join(f"{s} {'clean' if ok else 'killed'}" for s, ok in clean.items())
                + f"; logs stay in {session.paths.logs}"
            )
    return summary


@contextlib.contextmanager
def _progress_display(every_s: float = 15.0) -> Iterator[Callable[[Progress], None]]:
    """A live line on a terminal; otherwise (a log, CI) one line every `every_s`, and the last one."""
    if console.is_terminal:
        with Live(Text("starting the replay..."), console=console, refresh_per_second=2) as live:
            yield lambda progress: live.update(_progress_text(progress))
        return
    shown = {"at": -every_s}

    def line(progress: Progress) -> None:
        final = progress.sending_done and progress.in_flight == 0
        if progress.elapsed_s - shown["at"] >= every_s or final:
            shown["at"] = progress.elapsed_s
            console.print(_progress_text(progress))

    yield line


def _progress_text(progress: Progress) -> Text:
    """One line (it wraps on a narrow terminal) with the figures in bold."""
    p95 = "-" if progress.p95_ms is None else f"{progress.p95_ms:,.0f} ms"
    figures = [
        ("", f"{progress.elapsed_s:4.0f} s"),
        ("sent", f"{progress.sent:,}/{progress.planned:,}"),
        ("completed", f"{progress.completed:,}"),
        ("in flight", f"{progress.in_flight:,}"),
        ("ok", f"{progress.ok:,}"),
        ("rejected", f"{progress.rejected:,}"),
        ("failed", f"{progress.failed:,}"),
        ("p95", p95),
        ("servers", str(progress.servers)),
        ("alerts", str(progress.alerts_firing)),
    ]
    text = Text()
    for label, value in figures:
        text.append(f"{label} " if label else "")
        text.append(value, style="bold")
        text.append("  ")
    return text


def _interrupt(signum: int, frame: FrameType | None) -> None:
    raise KeyboardInterrupt


def replay_command(
    trace: Annotated[str, typer.Argument(help=TRACE_HELP)],
    compression: Compression = DemoOptions.compression,
    duration: Duration = DemoOptions.duration_s,
    start: Start = 0.0,
    sample: Sample = DemoOptions.sample,
    max_tokens_cap: Cap = DemoOptions.max_tokens_cap,
    regions: Regions = DEFAULT_REGIONS,
    routing: Routing = DemoOptions.routing,
    folder: Folder = None,
) -> None:
    """Replay a trace into the running platform (`llmfleet up`, or the global --bootstrap) and write its report.

    Exit code 3 when the broker does not answer.
    """
    from llmfleet.demo import plan_requests, run_replay
    from llmfleet.events_recorder import EventRecorder
    from llmfleet.report import print_summary, write_report

    where = target.current()
    bootstrap = where.kafka_bootstrap()
    if bootstrap is None:
        console.print("[red]the platform is not running: `llmfleet up` first, or give --bootstrap[/red]")
        raise typer.Exit(UNREACHABLE)
    broker = asyncio.run(read_kafka(bootstrap, ()))
    if not broker["reachable"]:
        console.print(f"[red]Kafka at {bootstrap} ({where.source}) does not answer: {broker['error']}[/red]")
        raise typer.Exit(UNREACHABLE)
    options = _replay_options(trace, compression, duration, start, sample, max_tokens_cap, regions, routing)
    out = folder or Path("reports") / f"replay-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    planned, config = plan_requests(options)

    async def go() -> Any:
        recorder = EventRecorder(bootstrap)
        await recorder.start()
        try:
            with _progress_display() as show:
                return await run_replay(bootstrap, options, planned, config, recorder, out.name, show)
        finally:
            await recorder.stop()

    summary = write_report(asyncio.run(go()), out)
    print_summary(console, summary)
    console.print(f"report: [bold]{out}[/bold]")


def register(app: typer.Typer) -> None:
    """Add demo and replay to the main CLI."""
    app.command()(demo)
    app.command("replay")(replay_command)
