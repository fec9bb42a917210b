"""`llmfleet demo`, short: a minute of the compressed Azure trace through the platform on a stack of
the run's own (Kafka, PostgreSQL, Triton servers the allocator starts), then the report's invariants.
"""

from __future__ import annotations

import csv
import json
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from deploy.local.common import StackPaths, read_state

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def demo_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, subprocess.CompletedProcess[str]]:
    folder = tmp_path_factory.mktemp("demo") / "run"
    # The test keeps the 0.2 sample its fidelity figures were measured with (the demo's default is 0.1).
    run = ["--duration", "45", "--sample", "0.2", "--folder", str(folder)]
    command = [sys.executable, "-m", "llmfleet.cli", "demo", *run]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=540, check=False)
    print(done.stdout[-6000:], done.stderr[-3000:])
    return folder, done


def test_the_demo_finishes_and_says_where_its_report_is(demo_run):
    folder, done = demo_run
    assert done.returncode == 0, done.stderr[-2000:]
    assert str(folder) in done.stdout and "p95" in done.stdout


def test_every_request_sent_has_exactly_one_result_and_the_counts_add_up(demo_run):
    folder, _ = demo_run
    summary = json.loads((folder / "summary.json").read_text())
    requests = summary["requests"]
    with (folder / "requests.csv").open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    assert requests["sent"] == len(rows) > 100
    assert len({row["request_id"] for row in rows}) == len(rows)
    assert requests["missing"] == 0 and all(row["status"] in {"ok", "rejected", "failed"} for row in rows)
    assert requests["ok"] + requests["rejected"] + requests["failed"] == requests["sent"]
    assert requests["counts_add_up"] is True
    assert requests["ok"] == sum(1 for row in rows if row["status"] == "ok") > 0
    assert not any("duplicate results" in note for note in summary["notes"])
    for model, counted in requests["by_model"].items():  # the router's own count agrees with the client's
        assert summary["batching"][model]["requests"] == counted["sent"], model


def test_the_run_scaled_and_allocated_because_it_started_cold(demo_run):
    folder, _ = demo_run
    summary = json.loads((folder / "summary.json").read_text())
    assert summary["scaling"]["count"] >= 1
    assert summary["allocations"]["servers_started"] >= 1
    served_by = {row["server_id"] for row in csv.DictReader((folder / "requests.csv").open()) if row["status"] == "ok"}
    started = {e["server"] for e in summary["allocations"]["timeline"] if e["type"] == "server_allocated"}
    assert served_by <= started  # every ok request was served by a server this run's allocator started


def test_the_report_files_exist_and_parse(demo_run):
    folder, _ = demo_run
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    assert {"scaling_action_requested", "server_allocated", "model_loaded", "cost_reported"} <= {
        e["type"] for e in events
    }
    report = (folder / "report.md").read_text()
    assert "p95" in report and "azure-code" in report
    for plot in ("demand_vs_capacity.png", "latency.png"):
        data = (folder / plot).read_bytes()
        assert data.startswith(b"\x89PNG\r\n\x1a\n") and len(data) > 10_000


# The simulator's p95 for the demo's run may be this factor off the measured one. The live p95 of
# the same planned run itself spread 1.7-2.6 s over quiet 45 s runs on 2 shared cores (docs/simulator.md,
# the prediction 2.3 s): 20% is not reliably reachable, 2x covers that spread with room.
P95_FACTOR = 2.0
# Above this share of the servers' served time in tinylm's compute, the CPU, not the modelled GPU,
# set the pace: other sessions' load during the run, which a prediction made at its start cannot know.
CPU_BOUND_SHARE = 0.8
EMULATION_LINE = re.compile(r"compute ([0-9.]+) s of ([0-9.]+) s served")


def compute_share(logs: Path) -> float:
    """Share of the servers' served time that was tinylm's compute (each server's last log line)."""
    compute = served = 0.0
    for log in logs.glob("triton-*.log"):
        found = EMULATION_LINE.findall(log.read_text(errors="replace"))
        if found:
            compute, served = compute + float(found[-1][0]), served + float(found[-1][1])
    return compute / served if served else 0.0


def test_the_simulator_predicted_this_run_servers_exactly_and_p95_within_a_factor(demo_run):
    folder, _ = demo_run
    summary = json.loads((folder / "summary.json").read_text())
    section = summary["prediction"]
    rows = {row["figure"]: row for row in section["rows"]}
    ratio, share = section["p95_predicted_over_measured"], compute_share(folder / "stack" / "logs")
    print(f"fidelity: {json.dumps(rows)} p95 predicted/measured {ratio}; servers' compute share {share:.0%}")
    assert "The simulator's prediction" in (folder / "report.md").read_text()
    assert rows["requests_ok"]["predicted"] == rows["requests_ok"]["measured"] == summary["requests"]["sent"]
    assert rows["servers_started"]["predicted"] == rows["servers_started"]["measured"]
    assert ratio <= P95_FACTOR  # the simulator knows everything that slows the run but other load
    assert ratio >= 1 / P95_FACTOR or share >= CPU_BOUND_SHARE, "slower than predicted, yet not CPU-bound"


def test_everything_the_demo_started_is_stopped_and_the_logs_stay(demo_run):
    folder, done = demo_run
    paths = StackPaths(cache=REPO / ".cache", run=folder / "stack")
    state = read_state(paths)
    assert not state.get("services") and not state.get("triton") and "kafka" not in state
    assert "router clean" in done.stdout and "killed" not in done.stdout
    for log in ("router.log", "allocator.log", "scaler.log", "cost.log", "monitor.log", "kafka.log"):
        assert (paths.logs / log).stat().st_size > 0


def test_ctrl_c_stops_everything_the_demo_started(tmp_path: Path):
    folder, out = tmp_path / "run", tmp_path / "out.txt"
    run = ["--duration", "60", "--sample", "0.2", "--folder", str(folder)]
    command = [sys.executable, "-m", "llmfleet.cli", "demo", *run]
    with out.open("w") as sink:
        process = subprocess.Popen(command, cwd=REPO, stdout=sink, stderr=subprocess.STDOUT, text=True)
        try:
            deadline = time.monotonic() + 240
            while "replaying" not in out.read_text() and time.monotonic() < deadline and process.poll() is None:
                time.sleep(0.5)
            time.sleep(5)  # mid-replay, with the allocator's servers starting or running
            process.send_signal(signal.SIGINT)
            code = process.wait(timeout=180)
        finally:
            if process.poll() is None:
                process.kill()
    text = out.read_text()
    assert "replaying" in text, text[-3000:]
    assert code != 0 and "interrupted: stopping the platform" in text
    state = read_state(StackPaths(cache=REPO / ".cache", run=folder / "stack"))
    assert not state.get("services") and not state.get("triton") and "kafka" not in state and "postgres" not in state
    assert (folder / "stack" / "logs" / "router.log").exists()
