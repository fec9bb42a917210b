"""`python -m benchmarks.chaos [--quick] [--seed N]`: the chaos suite (request path and control path);
its last line is one JSON object."""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import random
import signal
import sys
import time
from pathlib import Path
from typing import Any

from benchmarks.chaos.report import summary
from benchmarks.chaos.run import Options, execute
from benchmarks.chaos.schedule import CONTROL, DEFAULT, QUICK, plan


def parse(argv: list[str]) -> tuple[Options, bool]:
    """Options from the command line, and whether only the plan is wanted."""
    parser = argparse.ArgumentParser(prog="python -m benchmarks.chaos", description=__doc__)
    parser.add_argument("--seed", type=int, default=None, help="fault schedule and poison seed (default: random)")
    parser.add_argument("--quick", action="store_true", help="shorter outages, each fault once: ~7 minutes")
    parser.add_argument("--rate", type=float, default=50.0, help="steady requests per second (default 50)")
    parser.add_argument("--drain-s", type=float, default=None, help="longest wait for owed results (120; quick 60)")
    parser.add_argument("--budget-s", type=float, default=None, help="whole run's limit in s (900; quick 540)")
    parser.add_argument("--folder", type=Path, default=None, help="run folder (default reports/chaos-<UTC time>)")
    parser.add_argument("--plan", action="store_true", help="print the fault schedule and exit")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.SystemRandom().randrange(1_000_000)
    options = Options(
        seed=seed,
        quick=args.quick,
        profile=QUICK if args.quick else DEFAULT,
        rate=args.rate,
        drain_s=args.drain_s if args.drain_s is not None else (60.0 if args.quick else 120.0),
        budget_s=args.budget_s if args.budget_s is not None else (540.0 if args.quick else 900.0),
        folder=args.folder,
    )
    return options, args.plan


async def _main(options: Options) -> dict[str, Any]:
    """Run with SIGTERM turned into a cancellation (so teardown still runs)."""
    task = asyncio.current_task()
    assert task is not None
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, task.cancel)
    figures, _ = await execute(options, plan(options.seed, options.profile))
    return figures


def main(argv: list[str] | None = None) -> int:
    """Plan, run, print the summary and the JSON line; 0 when the run passed."""
    logging.basicConfig(level=logging.WARNING, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    logging.getLogger("aiokafka").setLevel(logging.CRITICAL)  # it logs every failed reconnect while Kafka is down
    options, only_plan = parse(sys.argv[1:] if argv is None else argv)
    schedule = plan(options.seed, options.profile)
    print(f"seed {options.seed}; planned fault phase {schedule.phase_s:.0f} s:", flush=True)
    for fault in schedule.faults:
        extra = f" {fault.duration_s:.0f} s" if fault.duration_s else ""
        track = "  [control]" if fault.kind in CONTROL else ""
        print(f"  {fault.at_s:7.1f}s {fault.kind.value}{extra} {fault.detail}{track}".rstrip(), flush=True)
    if only_plan:
        return 0
    started = time.monotonic()
    signal.signal(signal.SIGINT, signal.default_int_handler)  # also when started as a background job
    try:
        figures = asyncio.run(_main(options))
    except (Exception, KeyboardInterrupt, asyncio.CancelledError) as error:
        figures = {"seed": options.seed, "quick": options.quick, "error": repr(error)[:600], "passed": False}
    figures["elapsed_s"] = round(time.monotonic() - started, 1)
    if "error" not in figures:
        print(summary(figures), flush=True)
    else:
        print(f"chaos run aborted: {figures['error']}", flush=True)
    print(f"elapsed {figures['elapsed_s']:.0f} s", flush=True)
    print(json.dumps(figures), flush=True)
    return 0 if figures.get("passed") else 1


if __name__ == "__main__":
    sys.exit(main())
