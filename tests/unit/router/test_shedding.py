"""Under overload the router sheds the lowest priorities first (batch traffic), and only those."""

from __future__ import annotations

from services.router.domain.admission import AdmissionLimits, ModelLoad, Verdict, admit
from services.router.domain.batching import Batcher, BatchLimits
from services.router.domain.requests import Pending

LIMITS = AdmissionLimits(
    max_queue_per_model=2_000,
    cold_start_models=(),
    max_cold_start_models=5,
    shed_below_priority=2,
    shed_queue_per_model=500,
)


def request(priority: int, seq: int = 1) -> Pending:
    return Pending(f"r{seq}", "m", "p", 8, arrived=0.0, seq=seq, priority=priority)


def test_a_batch_line_is_shed_once_its_model_has_the_shedding_queue() -> None:
    verdict = admit(request(1), 0.0, ModelLoad(queued=500, known=True), LIMITS)
    assert verdict.verdict is Verdict.REJECT and verdict.reason is not None
    assert verdict.reason.startswith("over capacity: priority 1 shed")  # the gateway maps it to a retry


def test_below_the_shedding_queue_a_batch_line_is_batched() -> None:
    assert admit(request(1), 0.0, ModelLoad(queued=499, known=True), LIMITS).verdict is Verdict.BATCH


def test_interactive_requests_are_not_shed_at_the_same_queue() -> None:
    for priority in (2, 5, 9):
        assert admit(request(priority), 0.0, ModelLoad(queued=1_500, known=True), LIMITS).verdict is Verdict.BATCH


def test_shedding_is_off_by_default() -> None:
    default = AdmissionLimits(max_queue_per_model=2_000, cold_start_models=(), max_cold_start_models=5)
    assert admit(request(0), 0.0, ModelLoad(queued=1_999, known=True), default).verdict is Verdict.BATCH


def test_within_a_batch_interactive_rows_come_before_batch_rows() -> None:
    batcher = Batcher(lambda _model: BatchLimits(max_size=4, max_wait_s=1.0, token_budget=10_000))
    closed = [b for i, p in enumerate((1, 5, 1, 5)) for b in batcher.add(request(p, seq=i), 0.0)]
    assert [r.priority for r in closed[0].requests] == [5, 5, 1, 1]
