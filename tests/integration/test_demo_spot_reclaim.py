"""A spot reclaim during `llmfleet demo` loses no request.

A short demo on a stack of its own; 10 s into the replay the cloud's interruption notice arrives for
the server holding the most models (`--spot-reclaim-at`). The router stops sending it new batches,
the allocator starts a replacement (make before break), and every request still gets exactly one
result, served: none missing, failed or rejected.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.timeout(600)

REPO = Path(__file__).resolve().parents[2]


def test_a_spot_reclaim_mid_demo_loses_no_request(tmp_path: Path):
    folder = tmp_path / "run"
    command = [
        sys.executable, "-m", "llmfleet.cli", "demo", "--duration", "25", "--sample", "0.1",
        "--spot-reclaim-at", "10", "--folder", str(folder),
    ]  # fmt: skip
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=540, check=False)
    print(done.stdout[-6000:], done.stderr[-3000:])
    assert done.returncode == 0, done.stderr[-2000:]

    summary = json.loads((folder / "summary.json").read_text())
    (note,) = [n for n in summary["notes"] if n.startswith("spot reclaim: ")]
    reclaimed = note.split()[2]
    lines = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    events = [line["event"] for line in lines]
    notices = [e for e in events if e["type"] == "spot_interruption_notice" and e["server_id"] == reclaimed]
    assert len(notices) == 1
    replacements = [
        e for e in events
        if e["type"] == "server_allocated" and (e.get("action_id") or "").startswith(f"replace-{reclaimed}-")
    ]  # fmt: skip
    assert replacements, "the allocator started no replacement for the reclaimed server"

    requests = summary["requests"]
    assert requests["sent"] > 50 and requests["counts_add_up"] is True
    assert requests["missing"] == 0 and requests["failed"] == 0 and requests["rejected"] == 0
    assert requests["ok"] == requests["sent"]
    assert not any("duplicate results" in n for n in summary["notes"])
