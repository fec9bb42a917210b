"""The hot path's supervision and liveness: a dead loop is reported, a stuck one fails /live."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from services.router.hotpath.loop import HotPath
from shared.metrics import with_liveness


def call(app: Any, path: str) -> tuple[str, bytes]:
    seen: dict[str, str] = {}

    def start_response(status: str, headers: list[tuple[str, str]]) -> None:
        seen["status"] = status

    body = b"".join(app({"PATH_INFO": path}, start_response))
    return seen["status"], body


def test_live_answers_from_the_check_and_everything_else_is_metrics():
    state = {"ok": True}
    app = with_liveness(lambda env, start: (start("200 OK", []), [b"metrics"])[1], lambda: (state["ok"], "why"))
    assert call(app, "/live") == ("200 OK", b"why")
    state["ok"] = False
    assert call(app, "/live")[0].startswith("503")
    assert call(app, "/metrics") == ("200 OK", b"metrics")


class Settings:
    liveness_stall_s = 30.0


async def test_a_loop_that_dies_or_returns_is_reported_and_a_stuck_loop_is_not_live():
    failures: list[BaseException] = []
    parts = dict.fromkeys(("core", "intake", "offsets", "delivery", "gate", "metrics", "background"))
    hot = HotPath(Settings(), **parts, on_failure=failures.append)  # type: ignore[arg-type]

    async def dies() -> None:
        raise ValueError("boom")

    async def returns() -> None:
        return None

    hot._supervise("dies", dies())
    hot._supervise("returns", returns())
    await asyncio.sleep(0.01)
    assert sorted(type(e).__name__ for e in failures) == ["RuntimeError", "ValueError"]
    assert hot.live()[0]
    hot.heartbeat = time.monotonic() - 31
    ok, reason = hot.live()
    assert not ok and "31" in reason
