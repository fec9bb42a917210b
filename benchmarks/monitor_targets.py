"""Simulated Triton metrics endpoints for `benchmarks.monitor`: many paths on one loopback HTTP server.

Each path /metrics/<i> answers Triton-shaped Prometheus text whose counters grow with every
scrape, so the monitor computes real deltas. It runs in a child process, so serving the targets
does not share the monitor's event loop.
"""

from __future__ import annotations

import multiprocessing
import socket
from multiprocessing.process import BaseProcess
from multiprocessing.synchronize import Event as EventType

TEMPLATE = """# HELP nv_inference_request_success Number of successful inference requests, all batch sizes
# TYPE nv_inference_request_success counter
nv_inference_request_success{{model="tinylm",version="1"}} {ok}
# HELP nv_inference_request_failure Number of failed inference requests, all batch sizes
# TYPE nv_inference_request_failure counter
nv_inference_request_failure{{model="tinylm",reason="BACKEND",version="1"}} {failed}
# HELP nv_inference_count Number of inferences performed (does not include cached requests)
# TYPE nv_inference_count counter
nv_inference_count{{model="tinylm",version="1"}} {ok}
# HELP nv_inference_exec_count Number of model executions performed (does not include cached requests)
# TYPE nv_inference_exec_count counter
nv_inference_exec_count{{model="tinylm",version="1"}} {execs}
# HELP nv_inference_request_duration_us Cumulative inference request duration in microseconds
# TYPE nv_inference_request_duration_us counter
nv_inference_request_duration_us{{model="tinylm",version="1"}} {request_us}
# HELP nv_inference_queue_duration_us Cumulative inference queuing duration in microseconds
# TYPE nv_inference_queue_duration_us counter
nv_inference_queue_duration_us{{model="tinylm",version="1"}} {queue_us}
# HELP nv_inference_compute_infer_duration_us Cumulative compute inference duration in microseconds
# TYPE nv_inference_compute_infer_duration_us counter
nv_inference_compute_infer_duration_us{{model="tinylm",version="1"}} {compute_us}
# HELP nv_inference_pending_request_count Instantaneous number of pending requests awaiting execution per-model.
# TYPE nv_inference_pending_request_count gauge
nv_inference_pending_request_count{{model="tinylm",version="1"}} {pending}
# HELP nv_cpu_utilization CPU utilization rate [0.0 - 1.0]
# TYPE nv_cpu_utilization gauge
nv_cpu_utilization 0.4
"""


def metrics_text(target: int, scrape: int) -> str:
    """The text target `target` answers on its `scrape`-th scrape (counters grow per scrape).

    Busy time grows 10 s of compute per scrape at 4 inferences per execution: about half a GPU at
    a 5 s interval, so neither a scale-up nor a scale-down signal is asked for.
    """
    ok = scrape * (10 + target % 7)
    return TEMPLATE.format(
        ok=ok, failed=scrape * (target % 3), execs=ok // 4, request_us=ok * 9000, queue_us=ok * 1000,
        compute_us=scrape * 10_000_000, pending=target % 11,
    )  # fmt: skip


def _serve(port: int, ready: EventType) -> None:
    import asyncio

    from aiohttp import web

    scrapes: dict[int, int] = {}

    async def handle(request: web.Request) -> web.Response:
        target = int(request.match_info["target"])
        scrapes[target] = scrapes.get(target, 0) + 1
        return web.Response(text=metrics_text(target, scrapes[target]), content_type="text/plain")

    async def main() -> None:
        app = web.Application()
        app.router.add_get("/metrics/{target}", handle)
        runner = web.AppRunner(app, access_log=None)
        await runner.setup()
        await web.TCPSite(runner, "127.0.0.1", port, backlog=4096).start()
        ready.set()
        await asyncio.Event().wait()

    asyncio.run(main())


def free_port() -> int:
    """A free loopback port."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start(port: int) -> BaseProcess:
    """Serve the simulated targets on `port` in a child process; return once it listens."""
    ready = multiprocessing.get_context("spawn").Event()
    process = multiprocessing.get_context("spawn").Process(target=_serve, args=(port, ready), daemon=True)
    process.start()
    if not ready.wait(30):
        process.kill()
        raise RuntimeError("simulated targets did not start")
    return process
