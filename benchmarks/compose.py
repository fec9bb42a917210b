"""`make test-compose`: deploy/compose.yaml for real, on a Docker engine, proved from the host.

Brings the production file up with deploy/compose/local/compose.override.yaml (which changes only
`image:` and `build:`, to the images deploy/compose/build_images.sh made), waits until every
service is healthy, sends requests from the host through Kafka's EXTERNAL listener and checks that
each gets exactly one result; scales the router to 3 and checks again (every replica served some);
checks that Jaeger has the router's traces and Prometheus scrapes every replica and Triton; then
`down -v`. Then the same with the secure overlay (deploy/compose.secure.yaml: Kafka SASL_SSL with
SCRAM and ACLs, PostgreSQL TLS only), certificates made by `deploy.local.secure.compose_material`:
requests as the `client` principal, and the refusals: a client without credentials, a service
writing a topic it does not own, a database connection without TLS.
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

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from deploy.local.secure import compose_material
from llmfleet.client import FleetClient
from shared.events import InferenceCompleted
from shared.events.ownership import PRINCIPALS
from shared.events.topics import ALLOCATIONS
from shared.kafka_security import PLAINTEXT, KafkaProtocol, KafkaSecurity

ROOT = Path(__file__).resolve().parents[1]
PROJECT = "llmfleet-test"
PRODUCTION, SECURE, LOCAL = (
    "deploy/compose.yaml",
    "deploy/compose.secure.yaml",
    "deploy/compose/local/compose.override.yaml",
)
SECRETS = ROOT / ".cache" / "compose-secrets"  # the test's CA and certificate (made once)
SERVICES = ["router", "allocator", "scaler", "cost", "monitor", "gateway"]
# Everything long-running but Grafana; the init and migrate jobs start as their dependencies.
UP = ["kafka", "postgres", "triton", "jaeger", "prometheus", *SERVICES]
PASSWORDS = [
    "LLMFLEET_POSTGRES_ADMIN_PASSWORD",
    "LLMFLEET_GRAFANA_ADMIN_PASSWORD",
    *(f"LLMFLEET_{s.upper()}_DB_PASSWORD" for s in SERVICES),
]
KAFKA_PASSWORDS = ["LLMFLEET_KAFKA_ADMIN_PASSWORD", *(f"LLMFLEET_{p.upper()}_KAFKA_PASSWORD" for p in PRINCIPALS)]


def compose_env(external_port: int, secure: bool = False) -> dict[str, str]:
    """The environment Compose runs with: its files (COMPOSE_FILE), fresh random passwords, this
    run's external port; secure: the overlay, the Kafka principals' passwords and the certificates."""
    env = dict(os.environ)
    files = [PRODUCTION, SECURE, LOCAL] if secure else [PRODUCTION, LOCAL]
    env["COMPOSE_FILE"] = os.pathsep.join(files)
    env.update({name: secrets.token_hex(16) for name in PASSWORDS + (KAFKA_PASSWORDS if secure else [])})
    env["LLMFLEET_KAFKA_EXTERNAL_PORT"] = str(external_port)
    env["LLMFLEET_TRITON_TRACE_RATE"] = "1"  # a short test: every Triton request traced, so Jaeger surely has one
    env["COMPOSE_PROJECT_NAME"] = PROJECT
    if secure:
        compose_material(SECRETS, [])
        env["LLMFLEET_SECRETS_DIR"] = str(SECRETS)
    return env


def kafka_login(env: dict[str, str], principal: str) -> KafkaSecurity:
    """A principal's SASL_SSL credentials on the secure deployment (PLAINTEXT otherwise)."""
    if "LLMFLEET_SECRETS_DIR" not in env:
        return PLAINTEXT
    password = env[f"LLMFLEET_{principal.upper()}_KAFKA_PASSWORD"]
    return KafkaSecurity(KafkaProtocol.SASL_SSL, principal, password, str(SECRETS / "ca.pem"))


def compose(env: dict[str, str], *args: str, check: bool = True) -> str:
    """Run `docker compose` with the run's files; its stdout, or raise with its stderr."""
    command = ["docker", "compose", *args]
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
    bare = {k: v for k, v in env.items() if k not in PASSWORDS + KAFKA_PASSWORDS}
    command = ["docker", "compose", "config", "-q"]
    result = subprocess.run(command, cwd=ROOT, env=bare, capture_output=True, text=True, check=False)  # noqa: S603
    return result.returncode != 0 and "required variable" in result.stderr


def wait_healthy(env: dict[str, str], services: list[str], timeout: float) -> float:
    """Seconds until every listed service's containers run and are healthy; raise after `timeout`."""
    started = time.monotonic()
    compose(env, "up", "-d", "--no-build", "--wait", "--wait-timeout", str(int(timeout)), *services)
    if bad := unhealthy(env):
        raise RuntimeError(f"not healthy after up --wait: {bad}")
    return time.monotonic() - started


async def requests_round(
    bootstrap: str, count: int, timeout: float, linger: float, security: KafkaSecurity = PLAINTEXT
) -> dict[str, Any]:
    """Send `count` tinylm requests from the host; each must get exactly one result, and `ok`."""
    seen: Counter[str] = Counter()

    def on_result(result: InferenceCompleted) -> None:
        seen[result.request_id] += 1

    async with FleetClient(bootstrap, source="test-compose", on_result=on_result, security=security) as fleet:
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


def traced_everywhere(services: list[str]) -> bool:
    """Jaeger holds spans of the router and of Triton (its own, under the router's calls)."""
    return any("router" in name for name in services) and "llmfleet-triton" in services


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
        if traced_everywhere(found["jaeger_services"]) and found["prometheus_targets_up"].get("llmfleet", 0) >= 8:
            break
        time.sleep(3)
    return found


async def refused_without_credentials(bootstrap: str) -> bool:
    """A PLAINTEXT client on the SASL_SSL listener must get nowhere (no metadata, no produce)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=5000)
    try:
        await asyncio.wait_for(producer.start(), timeout=20)
    except (KafkaError, OSError, TimeoutError):
        return True
    finally:
        await producer.stop()
    return False


async def refused_foreign_topic(bootstrap: str, security: KafkaSecurity) -> bool:
    """The router's principal must not publish allocations (it could route prompts to itself)."""
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, request_timeout_ms=10000, **security.client_options())
    await producer.start()
    try:
        await asyncio.wait_for(producer.send_and_wait(ALLOCATIONS.name, b"{}"), timeout=30)
    except KafkaError as error:
        return "TopicAuthorizationFailed" in type(error).__name__ + str(error)
    finally:
        await producer.stop()
    return False


def postgres_refuses_plain_tcp(env: dict[str, str]) -> bool:
    """Inside the postgres container, a TCP login without TLS is rejected by pg_hba.conf."""
    password = env["LLMFLEET_POSTGRES_ADMIN_PASSWORD"]
    plain = "host=127.0.0.1 dbname=llmfleet user=llmfleet_admin sslmode=disable"
    attempt = f"psql '{plain}' -c 'select 1' 2>&1 || true"  # its refusal is the output
    out = compose(env, "exec", "-T", "-e", f"PGPASSWORD={password}", "postgres", "sh", "-c", attempt, check=False)
    return "no encryption" in out and "1 row" not in out


def logs_tail(env: dict[str, str], lines: int = 40) -> str:
    """The last log lines of every container, for a failure report."""
    return compose(env, "logs", "--no-color", "--tail", str(lines), check=False)


def run(args: argparse.Namespace, secure: bool = False) -> dict[str, Any]:
    """Up, check, (plaintext: scale, check; secure: the refusals), down -v; the figures."""
    env = compose_env(args.external_port, secure)
    bootstrap = f"127.0.0.1:{args.external_port}"
    figures: dict[str, Any] = {"files": env["COMPOSE_FILE"], "requests_per_round": args.requests}
    compose(env, "down", "-v", "--remove-orphans", check=False)  # leftovers of an interrupted run
    try:
        figures["refuses_without_passwords"] = refuses_without_passwords(env)
        figures["seconds_to_healthy"] = round(wait_healthy(env, UP, args.wait_timeout), 1)
        print(f"healthy after {figures['seconds_to_healthy']} s: {', '.join(UP)}", flush=True)
        login = kafka_login(env, "client")
        first = asyncio.run(requests_round(bootstrap, args.requests, args.request_timeout, args.linger, login))
        print(f"1 router:  {first}", flush=True)
        if secure:
            figures["one_router"] = first
            figures["refuses_client_without_credentials"] = asyncio.run(refused_without_credentials(bootstrap))
            figures["refuses_router_writing_allocations"] = asyncio.run(
                refused_foreign_topic(bootstrap, kafka_login(env, "router"))
            )
            figures["postgres_refuses_tcp_without_tls"] = postgres_refuses_plain_tcp(env)
            refusals = {k: v for k, v in figures.items() if k.startswith(("refuses", "postgres_refuses"))}
            print(f"secure refusals: {refusals}", flush=True)
            figures["ok"] = (
                round_ok(first)
                and figures["refuses_without_passwords"]
                and figures["refuses_client_without_credentials"]
                and figures["refuses_router_writing_allocations"]
                and figures["postgres_refuses_tcp_without_tls"]
            )
            return figures
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
        traced = traced_everywhere(figures["jaeger_services"])
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
    parser.add_argument("--mode", choices=["plaintext", "secure", "both"], default="both", help="which deployments")
    args = parser.parse_args()
    figures: dict[str, Any] = {
        "engine": os.environ.get("DOCKER_HOST", "default"),
        "seconds_to_build_images": args.build_seconds,
    }
    for mode in ("plaintext", "secure"):
        if args.mode in (mode, "both"):
            print(f"--- {mode}: {'with' if mode == 'secure' else 'without'} deploy/compose.secure.yaml", flush=True)
            figures[mode] = run(args, secure=mode == "secure")
    figures["ok"] = all(figures[mode].get("ok") for mode in ("plaintext", "secure") if mode in figures)
    print(json.dumps(figures))
    sys.exit(0 if figures["ok"] else 1)


if __name__ == "__main__":
    main()
