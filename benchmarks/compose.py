"""`make test-compose`: deploy/compose.yaml for real, on a Docker engine, proved from the host.

Brings the production file up with deploy/compose/local/compose.override.yaml (which changes only
`image:` and `build:`, to the images deploy/compose/build_images.sh made), waits until every
service is healthy, sends requests from the host through Kafka's EXTERNAL listener and checks that
each gets exactly one result; scales the router to 3 and checks again (every replica served some);
checks that Jaeger has the router's traces and Prometheus scrapes every replica and Triton; then
`down -v`.
Grafana is left out (no local image; the production file keeps the official one).
Needs DOCKER_HOST (make test-compose uses the private engine of deploy/compose/engine.sh).
The last line is one JSON object.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import secrets
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from pathlib import Path
from typing import Any

from llmfleet.client import FleetClient
from shared.events import InferenceCompleted

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "llmfleet-test"
FILES = ["-f", "deploy/compose.yaml", "-f", "deploy/compose/local/compose.override.yaml"]
SERVICES = ["router", "allocator", "scaler", "cost", "monitor", "gateway"]
# Everything long-running but Grafana; the init and migrate jobs start as their dependencies.
UP = ["kafka", "postgres", "triton", "jaeger", "prometheus", *SERVICES]
PASSWORDS = [
    "LLMFLEET_POSTGRES_ADMIN_PASSWORD",
    "LLMFLEET_GRAFANA_ADMIN_PASSWORD",
    *(f"LLMFLEET_{s.upper()}_DB_PASSWORD" for s in SERVICES),
]


def compose_env(external_port: int) -> dict[str, str]:
    """The environment Compose runs with: fresh random passwords, this run's external port."""
    env = dict(os.environ)
    env.update({name: secrets.token_hex(16) for name in PASSWORDS})
    env["LLMFLEET_KAFKA_EXTERNAL_PORT"] = str(external_port)
    env["COMPOSE_PROJECT_NAME"] = PROJECT
    return env


def compose(env: dict[str, str], *args: str, check: bool = True) -> str:
    """Run `docker compose` with the two files; its stdout, or raise with its stderr."""
    command = ["docker", "compose", *FILES, *args]
    result = subprocess.run(command, cwd=ROOT, env=env, capture_output=True, text=True, check=False)  # noqa: S603 - docker, our args
    if check and result.returncode != 0:
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}{result.stderr}")
    return result.stdout


def unhealthy(env: dict[str, str]) -> list[str]:
    """Containers of the project that are not (yet) healthy, as 'service: state/health'."""
    rows = [json.loads(line) for line in compose(env, "ps", "--format", "json").splitlines() if line.strip()]
    return [
        f"{row['Service']}: {row['State']}/{row.get('Health') or '-'}"
        for row in rows
        if row["State"] != "running" or row.get("Health") not in ("healthy",)
    ]


def refuses_without_passwords(env: dict[str, str]) -> bool:
    """Compose must refuse the file when a password is missing (no silent defaults)."""
    bare = {k: v for k, v in env.items() if k not in PASSWORDS}
    command = ["docker", "compose", *FILES, "config", "-q"]
    result = subprocess.run(command, cwd=ROOT, env=bare, capture_output=True, text=True, check=False)  # noqa: S603
    return result.returncode != 0 and "required variable" in result.stderr


def wait_healthy(env: dict[str, str], services: list[str], timeout: float) -> float:
    """Seconds until every listed service's containers run and are healthy; raise after `timeout`."""
    started = time.monotonic()
    compose(env, "up", "-d", "--no-build", "--wait", "--wait-timeout", str(int(timeout)), *services)
    if bad := unhealthy(env):
        raise RuntimeError(f"not healthy after up --wait: {bad}")
    return time.monotonic() - started


async def requests_round(bootstrap: str, count: int, timeout: float, linger: float) -> dict[str, Any]:
    """Send `count` tinylm requests from the host; each must get exactly one result, and `ok`."""
    seen: Counter[str] = Counter()

    def on_result(result: InferenceCompleted) -> None:
        seen[result.request_id] += 1

    async with FleetClient(bootstrap, source="test-compose", on_result=on_result) as fleet:
        started = time.monotonic()
        ids = [await fleet.send("tinylm", f"compose check {i}", max_tokens=8) for i in range(count)]
        results = await fleet.collect(ids, timeout=timeout)
        elapsed = time.monotonic() - started
        await asyncio.sleep(linger)  # a duplicate would arrive after the first result
    statuses = Counter(str(getattr(r.status, "value", r.status)) for r in results.values())
    return {
        "sent": count,
        "answered": len(results),
        "statuses": dict(statuses),
        "duplicates": sum(n - 1 for i, n in seen.items() if i in set(ids) and n > 1),
        "missing": count - len(results),
        "seconds": round(elapsed, 1),
    }


def round_ok(outcome: dict[str, Any]) -> bool:
    """Exactly one result for every request sent."""
    return bool(outcome["missing"] == 0 and outcome["duplicates"] == 0)


def requests_per_router(env: dict[str, str], replicas: int) -> list[float]:
    """Requests each router replica counted (its llmfleet_router_requests_total on /metrics)."""
    probe = (
        "import re, urllib.request as u; text = u.urlopen('http://127.0.0.1:9100/metrics', timeout=5).read().decode(); "
        "pattern = r'^llmfleet_router_requests_total(?:\\{[^}]*\\})? (\\S+)$'; "
        "print(sum(float(v) for v in re.findall(pattern, text, re.M)))"
    )
    counts = []
    for index in range(1, replicas + 1):
        out = compose(env, "exec", "-T", "--index", str(index), "router", "python", "-c", probe, check=False)
        counts.append(float(out.strip() or "nan"))
    return counts


def get_json(url: str) -> Any:
    """GET a JSON document from a port published on the host."""
    with urllib.request.urlopen(url, timeout=5) as response:  # noqa: S310 - our own 127.0.0.1 URL
        return json.load(response)


def observed(deadline_s: float = 60) -> dict[str, Any]:
    """What Jaeger and Prometheus saw: traced services, healthy scrape targets per job (polled)."""
    found: dict[str, Any] = {"jaeger_services": [], "prometheus_targets_up": {}}
    stop = time.monotonic() + deadline_s
    while time.monotonic() < stop:
        try:
            found["jaeger_services"] = sorted(get_json("http://127.0.0.1:16686/api/services").get("data") or [])
            targets = get_json("http://127.0.0.1:9090/api/v1/targets")["data"]["activeTargets"]
            up: Counter[str] = Counter(t["labels"]["job"] for t in targets if t["health"] == "up")
            found["prometheus_targets_up"] = dict(up)
        except (OSError, ValueError, KeyError):
            pass
        # 8 llmfleet targets: the six services with the router counted three times.
        if (
            any("router" in name for name in found["jaeger_services"])
            and found["prometheus_targets_up"].get("llmfleet", 0) >= 8
        ):
            break
        time.sleep(3)
    return found


def logs_tail(env: dict[str, str], lines: int = 40) -> str:
    """The last log lines of every container, for a failure report."""
    return compose(env, "logs", "--no-color", "--tail", str(lines), check=False)


def run(args: argparse.Namespace) -> dict[str, Any]:
    """Up, check, scale, check, down -v; the figures."""
    env = compose_env(args.external_port)
    bootstrap = f"127.0.0.1:{args.external_port}"
    figures: dict[str, Any] = {
        "engine": env.get("DOCKER_HOST", "default"),
        "seconds_to_build_images": args.build_seconds,
        "requests_per_round": args.requests,
    }
    compose(env, "down", "-v", "--remove-orphans", check=False)  # leftovers of an interrupted run
    try:
        figures["refuses_without_passwords"] = refuses_without_passwords(env)
        figures["seconds_to_healthy"] = round(wait_healthy(env, UP, args.wait_timeout), 1)
        print(f"healthy after {figures['seconds_to_healthy']} s: {', '.join(UP)}", flush=True)
        first = asyncio.run(requests_round(bootstrap, args.requests, args.request_timeout, args.linger))
        print(f"1 router:  {first}", flush=True)
        started = time.monotonic()
        compose(env, "up", "-d", "--no-build", "--no-recreate", "--wait", "--scale", "router=3", "router")
        figures["seconds_to_scale_router_to_3"] = round(time.monotonic() - started, 1)
        routers = len(compose(env, "ps", "-q", "router").split())
        second = asyncio.run(requests_round(bootstrap, args.requests, args.request_timeout, args.linger))
        print(f"{routers} routers: {second}", flush=True)
        # Replicas share the partitions: after the rebalance every one of them served requests.
        per_router = requests_per_router(env, routers)
        print(f"requests counted per router replica (both rounds): {per_router}", flush=True)
        figures.update(one_router=first, three_routers=second, routers_after_scale=routers)
        figures["requests_per_router_replica"] = per_router
        # Traces reach Jaeger (10% sampled: 100 requests all but surely keep one) and Prometheus
        # scrapes all 8 service replicas and Triton through Docker's DNS.
        figures.update(observed())
        seen = figures["prometheus_targets_up"]
        traced = any("router" in name for name in figures["jaeger_services"])
        observability_ok = traced and seen.get("llmfleet", 0) >= 8 and seen.get("triton", 0) >= 1
        print(f"observability: {figures['jaeger_services']} {figures['prometheus_targets_up']}", flush=True)
        figures["ok"] = (
            round_ok(first)
            and round_ok(second)
            and routers == 3
            and all(n > 0 for n in per_router)
            and figures["refuses_without_passwords"]
            and observability_ok
        )
    except Exception as error:
        figures.update(ok=False, error=str(error)[:2000])
        print(logs_tail(env), file=sys.stderr)
    finally:
        started = time.monotonic()
        compose(env, "down", "-v", "--remove-orphans", "--timeout", "60", check=False)
        figures["seconds_down"] = round(time.monotonic() - started, 1)
    return figures


def main() -> None:
    """Parse arguments, run, print the JSON line; exit 1 unless every check held."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--requests", type=int, default=50, help="requests per round (two rounds)")
    parser.add_argument("--external-port", type=int, default=29092, help="Kafka's EXTERNAL port on the host")
    parser.add_argument("--wait-timeout", type=float, default=600, help="seconds for every service to be healthy")
    parser.add_argument("--request-timeout", type=float, default=300, help="seconds for a round's results")
    parser.add_argument("--linger", type=float, default=5, help="seconds to watch for duplicates after a round")
    parser.add_argument("--build-seconds", type=float, default=None, help="image build time, to report (the script's)")
    figures = run(parser.parse_args())
    print(json.dumps(figures))
    sys.exit(0 if figures.get("ok") else 1)


if __name__ == "__main__":
    main()
