"""The report's files and screen summary: every file is written and parses back; rich renders it."""

from __future__ import annotations

import csv
import json
from datetime import UTC, datetime
from pathlib import Path

from rich.console import Console

from llmfleet.report import build_summary, print_summary, write_report
from llmfleet.report.markdown import MAX_ROWS, cell, table
from llmfleet.run_data import ReplayRun
from shared.events import (
    AlertChanged,
    AlertState,
    CostRecommended,
    CostReported,
    DemandWindowReported,
    ServerMetricsReported,
    ServerReleased,
    Severity,
)
from tests.unit.test_report_support import action, allocated, loaded, record, run, seen

T0 = datetime(2026, 11, 27, 23, 0, tzinfo=UTC)
FILES = ("summary.json", "requests.csv", "events.jsonl", "report.md", "demand_vs_capacity.png", "latency.png")
HEADINGS = (
    "Requests",
    "Latency",
    "Throughput",
    "Batching",
    "Scaling actions",
    "Allocations",
    "Alerts",
    "GPU utilisation",
    "Cost",
    "Recommendations",
    "Notes",
)
PNG_MAGIC = b"\x89PNG\r\n\x1a\n"


def busy_run() -> ReplayRun:
    """A small run touching every section: two models, a scale-up, an alert, cost figures, a rejection."""
    records = [record(f"c{i}", sent=i * 2.0, latency=0.3 + i / 50) for i in range(40)]
    records += [record(f"v{i}", model="conv", sent=i * 3.0, latency=1.5 + i / 20) for i in range(20)]
    records += [record("x1", "rejected", sent=30.0, reason="queue | full"), record("x2", None, sent=70.0)]
    window = DemandWindowReported(
        source="router",
        model_id="code",
        region="us-east-1",
        window_start=T0,
        window_end=T0,
        requests=40,
        ok=40,
        batches=10,
    )
    events = [
        seen(0, loaded("base", "conv", 1)),
        seen(5, action("scale_up", target=2)),
        seen(12, allocated("s1", 4.0)),
        seen(15, loaded("s1", "code", 2)),
        seen(20, window),
        seen(
            25,
            AlertChanged(
                source="monitor",
                alert_id="a1",
                rule="latency_p95_high",
                severity=Severity.HIGH,
                state=AlertState.FIRING,
                value=2.4,
                threshold=2.0,
                scope={"model_id": "conv"},
            ),
        ),
        seen(
            30,
            ServerMetricsReported(
                source="monitor",
                server_id="s1",
                region="us-east-1",
                gpu_type="a100",
                window_s=10,
                utilization=0.4,
                utilization_derived=True,
            ),
        ),
        seen(
            40,
            CostReported(
                source="cost",
                total_per_hour=6.5,
                by_model_per_hour={"code": 4.0, "conv": 2.5},
                per_1k_tokens={"code": 0.02},
                servers=2,
                gpus=2,
            ),
        ),
        seen(
            50,
            CostRecommended(
                source="cost", recommendation_id="r1", kind="spot", summary="[spot] s1", savings_per_month=900.0
            ),
        ),
        seen(90, ServerReleased(source="allocator", server_id="s1", region="us-east-1")),
    ]
    return run(records, events, send_wall_s=80.0, drain_wall_s=10.0)


def test_write_report_writes_every_file_and_they_parse_back(tmp_path: Path) -> None:
    replay = busy_run()
    summary = write_report(replay, tmp_path / "report")
    folder = tmp_path / "report"
    for name in FILES:
        assert (folder / name).is_file(), name
    assert json.loads((folder / "summary.json").read_text()) == json.loads(json.dumps(build_summary(replay)))
    assert summary["requests"]["sent"] == 62
    lines = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert len(lines) == len(replay.events)
    assert lines[0]["type"] == "model_loaded" and lines[0]["event"]["server_id"] == "base"
    assert [line["at_s"] for line in lines] == sorted(line["at_s"] for line in lines)
    with (folder / "requests.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert len(rows) == 62
    assert rows[0]["request_id"] == "c0" and float(rows[0]["latency_ms"]) == 300.0
    assert rows[-1]["status"] == "" and rows[-1]["latency_ms"] == ""
    for name in ("demand_vs_capacity.png", "latency.png"):
        data = (folder / name).read_bytes()
        assert data.startswith(PNG_MAGIC)
        assert len(data) > 10_000
    markdown = (folder / "report.md").read_text()
    for heading in HEADINGS:
        assert f"## {heading}" in markdown
    assert "queue \\| full" in markdown  # a pipe in a cell does not break the table


def test_print_summary_shows_the_figures(tmp_path: Path) -> None:
    console = Console(record=True, width=140)
    print_summary(console, build_summary(busy_run()), folder=tmp_path / "out")
    text = console.export_text()
    assert "sent 62" in text
    assert "[spot] s1" in text  # markup-like text from an event is shown as written
    assert "latency_p95_high" in text
    assert str(tmp_path / "out") in text.replace("\n", "")


def test_an_empty_run_still_writes_a_report(tmp_path: Path) -> None:
    replay = run([], [], send_wall_s=0.0, drain_wall_s=0.0)
    summary = write_report(replay, tmp_path)
    assert summary["requests"]["sent"] == 0 and summary["requests"]["counts_add_up"] is True
    assert summary["throughput"]["ok_requests_per_s"] is None
    for name in FILES:
        assert (tmp_path / name).is_file(), name
    assert (tmp_path / "events.jsonl").read_text() == ""
    assert (tmp_path / "requests.csv").read_text().startswith("request_id,")
    assert (tmp_path / "latency.png").read_bytes().startswith(PNG_MAGIC)
    console = Console(record=True, width=120)
    print_summary(console, summary)
    assert "sent 0" in console.export_text()


def test_zero_ok_requests_and_no_events(tmp_path: Path) -> None:
    replay = run([record("a", "failed", reason="boom"), record("b", None)], [])
    summary = write_report(replay, tmp_path)
    assert (summary["requests"]["failed"], summary["requests"]["missing"]) == (1, 1)
    assert summary["latency"]["p50_ms"] is None
    assert "No ok request" in (tmp_path / "report.md").read_text()


def test_long_markdown_tables_are_capped_and_say_so() -> None:
    text = table(("n",), ([i] for i in range(MAX_ROWS + 5)))
    assert text.count("\n| ") == MAX_ROWS
    assert "(5 more rows in summary.json)" in text
    assert cell(None) == "—" and cell(2302.5) == "2,302.5" and cell("a|b") == "a\\|b"


def test_without_a_per_instance_rate_capacity_is_drawn_in_instances(tmp_path: Path) -> None:
    replay = run([record("a", sent=1.0)], [seen(0.5, loaded("s1", "code", 2))], requests_per_instance_hour=0.0)
    summary = write_report(replay, tmp_path)
    assert summary["allocations"]["peak_instances"] == {"code": 2}
    assert (tmp_path / "demand_vs_capacity.png").read_bytes().startswith(PNG_MAGIC)
