"""`llmfleet`: run the platform locally, see its state, replay traces, run the demo."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import signal
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from types import FrameType
from typing import Annotated, Any

import typer
from rich.console import Console
from rich.live import Live
from rich.table import Table
from rich.text import Text

from deploy.local import stack
from deploy.local.common import stack_paths
from llmfleet import platform
from llmfleet.demo import DemoOptions, DemoSession
from llmfleet.keys import register as register_keys
from llmfleet.replay import Progress
from llmfleet.simulate.command import simulate as simulate_command
from services.router.domain.batching import BatchStrategy
from services.scaler.domain.policy import PolicyName
from shared.events import RoutingStrategy

app = typer.Typer(no_args_is_help=True, help="llmfleet: control plane for LLM serving fleets (local platform).")
# Wide enough for the tables when output goes to a file or CI log (rich assumes 80 there).
console = Console(width=None if Console().is_terminal else 140)

# aiokafka logs a warning per partition while a just-created topic elects its leader; it retries.
logging.getLogger("aiokafka").setLevel(logging.ERROR)

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


@app.command()
def install() -> None:
    """Fetch the Kafka jars and the Triton binary into the cache (done once; `up` does it too)."""
    stack.install()
    console.print("[green]installed[/green]")


@app.command()
def up(
    stack_only: bool = typer.Option(
        False, "--stack-only", help="only PostgreSQL, Kafka and two Triton servers (for development)"
    ),
) -> None:
    """Start the platform: PostgreSQL, Kafka (with topics) and the five services; idempotent.

    Triton servers are started by the allocator when the scaler asks for capacity.
    """
    stack.install()
    if stack_only:
        stack.up()
    else:
        from llmfleet.demo import platform_settings
        from llmfleet.demo_fleet import DEMO_MODELS

        folder = stack_paths().run
        fleet = platform.fleet_with_models(DEMO_MODELS, folder)
        platform.up(platform_settings(DemoOptions(), fleet, "fleet"))
    _print_stack(stack.status())
    console.print("`llmfleet status` shows the platform's state; `llmfleet down` stops everything")


@app.command()
def down() -> None:
    """Stop the services, their Triton servers, Kafka and PostgreSQL (data and logs stay)."""
    clean = platform.down()
    if clean:
        console.print("services: " + ", ".join(f"{s} {'stopped' if ok else 'killed'}" for s, ok in clean.items()))
    console.print("[green]stopped[/green]")


@app.command()
def status(output: str = typer.Option("table", "-o", "--output", help="table or json")) -> None:
    """The platform's state: servers, models and tiers, queues, firing alerts, cost per hour."""
    current = stack.status()
    fleet = _platform_status(current)
    if output == "json":
        console.print_json(json.dumps({"stack": current, "platform": fleet}, default=str))
        return
    _print_stack(current)
    if fleet is not None:
        from llmfleet.status import render_platform_status

        render_platform_status(console, fleet)


def _platform_status(current: dict[str, Any]) -> dict[str, Any] | None:
    if not current["postgres"].get("running"):
        return None
    from deploy.local import postgres, services
    from llmfleet.status import platform_status

    router = services.status().get("router", {})
    metrics_url = router.get("metrics_url") if router.get("running") else None
    info = current["postgres"]
    return asyncio.run(platform_status(lambda svc: postgres.database_url(svc, info), metrics_url))


def _print_stack(current: dict[str, Any]) -> None:
    from deploy.local import services

    table = Table(title="llmfleet local platform")
    for column in ("component", "running", "address", "what"):
        table.add_column(column, no_wrap=True)
    pg, kf = current["postgres"], current["kafka"]
    pg_version = pg.get("version", "").removeprefix("postgres (PostgreSQL) ").split(" ")[0]
    table.add_row("postgres", _yes(pg.get("running")), f"127.0.0.1:{pg.get('port', '-')}", f"PostgreSQL {pg_version}")
    table.add_row("kafka", _yes(kf.get("running")), kf.get("bootstrap", "-"), f"Kafka {kf.get('version', '')} (KRaft)")
    for name, svc in services.status().items():
        table.add_row(name, _yes(svc.get("running")), svc.get("metrics_url", "-"), f"service (pid {svc.get('pid')})")
    for name, server in sorted(current["triton"].items()):
        gpu = f"emulated {server.get('gpu_type')} timed as {server.get('emulates') or 'tinylm on this CPU'}"
        table.add_row(
            name, _yes(server.get("running")), server.get("http_url", "-"), f"Triton, {gpu}, {server.get('region')}"
        )
    console.print(table)
    console.print(f"logs: {current['logs']}")


def _yes(flag: object) -> str:
    return "[green]yes[/green]" if flag else "[red]no[/red]"


def _regions(text: str) -> dict[str, float]:
    try:
        pairs = [part.split("=", 1) for part in text.split(",") if part.strip()]
        return {region.strip(): float(share) for region, share in pairs}
    except ValueError as error:
        raise typer.BadParameter(f"regions look like us-east-1=0.65,eu-west-1=0.35 ({error})") from error


@app.command()
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
) -> None:
    """Bring the platform up, replay a real trace through it, report what happened, stop."""
    options = replace(
        _replay_options(trace, compression, duration, start, sample, max_tokens_cap, regions, routing),
        scaling_policy=scaling,
        batching=batching,
        folder=folder,
    )
    session = DemoSession(options, log=lambda text: console.print(f"[bold]{text}[/bold]"))
    summary = _run_session(session, keep)
    if summary is None or summary["requests"]["missing"] or not summary["requests"]["counts_add_up"]:
        raise typer.Exit(1)


def _run_session(session: DemoSession, keep: bool) -> dict[str, Any] | None:
    from llmfleet.report import print_summary, write_report

    previous = signal.signal(signal.SIGTERM, _interrupt)  # `kill` stops it as cleanly as Ctrl-C
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
        signal.signal(signal.SIGTERM, previous)
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


@app.command("replay")
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
    """Replay a trace into the running platform (`llmfleet up`) and write its report."""
    from llmfleet.demo import plan_requests, run_replay
    from llmfleet.events_recorder import EventRecorder
    from llmfleet.report import print_summary, write_report

    kafka = stack.status()["kafka"]
    if not kafka.get("running"):
        console.print("[red]the platform is not running: `llmfleet up` first[/red]")
        raise typer.Exit(2)
    options = _replay_options(trace, compression, duration, start, sample, max_tokens_cap, regions, routing)
    out = folder or Path("reports") / f"replay-{datetime.now(UTC):%Y%m%d-%H%M%S}"
    planned, config = plan_requests(options)

    async def go() -> Any:
        recorder = EventRecorder(kafka["bootstrap"])
        await recorder.start()
        try:
            with _progress_display() as show:
                return await run_replay(kafka["bootstrap"], options, planned, config, recorder, out.name, show)
        finally:
            await recorder.stop()

    summary = write_report(asyncio.run(go()), out)
    print_summary(console, summary)
    console.print(f"report: [bold]{out}[/bold]")


app.command("simulate")(simulate_command)
register_keys(app)

if __name__ == "__main__":
    app()
