"""Registry, admission, cold-start hold, offset commits and demand windows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.router.domain.admission import (
    AdmissionLimits,
    ModelLoad,
    ServiceRate,
    Verdict,
    admit,
    reply_topic_refusal,
)
from services.router.domain.cold_start import ColdStartHold
from services.router.domain.demand import DemandWindow, percentile
from services.router.domain.offsets import OffsetTracker, decode_done, decode_note, encode_done
from services.router.domain.registry import Registry, Server
from services.router.domain.repeats import Repeats
from services.router.domain.requests import Pending


def req(i: int, model: str = "m", arrived: float = 0.0, deadline: float | None = None, region: str = "us-east-1"):
    return Pending(f"r{i}", model, "p", 8, arrived=arrived, seq=i, deadline=deadline, region=region)


def server(server_id: str, region: str = "us-east-1") -> Server:
    return Server(server_id, f"{server_id}:8000", region, "a100", 3.0, capacity=2)


def test_registry_candidates_need_a_known_healthy_server_with_the_model():
    registry = Registry()
    registry.load_model("s1", "m", "echo")  # placement before its server: not a candidate yet
    assert registry.candidates("m") == [] and not registry.knows_model("m")
    registry.add_server(server("s1"))
    assert [s.server_id for s in registry.candidates("m")] == ["s1"]
    assert registry.triton_name("s1", "m") == "echo"
    registry.servers["s1"].healthy = False
    assert registry.candidates("m") == [] and registry.knows_model("m")
    assert registry.count_by_state() == {"healthy": 0, "unhealthy": 1}
    registry.servers["s1"].healthy = True
    assert registry.candidates("m", exclude=frozenset({"s1"})) == []
    registry.unload_model("s1", "m")
    assert not registry.knows_model("m")
    registry.load_model("s1", "m", None)
    assert registry.triton_name("s1", "m") == "m"
    registry.remove_server("s1")
    assert registry.servers == {} and not registry.knows_model("m")


def test_a_spot_reclaim_notice_drains_the_server_for_new_batches_only():
    from datetime import UTC, datetime

    from services.router.use_cases.allocations import apply_allocation
    from shared.events import SpotInterruptionNotice

    registry = Registry()
    for sid in ("s1", "s2"):
        registry.add_server(server(sid))
        registry.load_model(sid, "m", "echo")
    registry.servers["s1"].inflight = 2
    notice = SpotInterruptionNotice(source="test", server_id="s1", region="us-east-1", reclaim_at=datetime.now(UTC))
    apply_allocation(registry, notice)
    assert [s.server_id for s in registry.candidates("m")] == ["s2"]  # no new batches to s1
    assert registry.servers["s1"].inflight == 2 and registry.knows_model("m")  # in-flight ones finish there
    registry.add_server(server("s1"))  # announced again (a redelivery): still draining
    assert [s.server_id for s in registry.candidates("m")] == ["s2"]
    apply_allocation(registry, notice.model_copy(update={"server_id": "unknown"}))  # ignored


def test_re_announcing_a_server_keeps_its_live_load():
    registry = Registry()
    registry.add_server(server("s1"))
    registry.servers["s1"].inflight = 2
    registry.add_server(server("s1", region="eu-west-1"))
    assert registry.servers["s1"].inflight == 2 and registry.servers["s1"].region == "eu-west-1"


def limits(cold: tuple[str, ...] = (), max_models: int = 5) -> AdmissionLimits:
    return AdmissionLimits(max_queue_per_model=10, cold_start_models=cold, max_cold_start_models=max_models)


def test_admission_rejects_with_reasons_holds_and_batches():
    known = ModelLoad(queued=0, known=True)
    assert admit(req(1, deadline=1.0), 1.0, known, limits()).reason.startswith("deadline passed")
    # A full queue is backpressure (Kafka holds the rest), not a rejection, unless the producer asked to fail fast.
    full = ModelLoad(queued=10, known=True)
    assert admit(req(1), 0.0, full, limits()).verdict is Verdict.BATCH
    fast = Pending("r", "m", "p", 8, arrived=0.0, seq=1, fail_fast=True)
    over = admit(fast, 0.0, full, limits())
    assert over.verdict is Verdict.REJECT and over.reason.startswith("over capacity")
    cold = ModelLoad(queued=0, known=False)
    assert admit(req(1), 0.0, cold, limits(("*",))).verdict is Verdict.HOLD
    assert admit(req(1), 0.0, cold, limits(("m",))).verdict is Verdict.HOLD
    unknown = admit(req(1), 0.0, cold, limits(("other",)))
    assert unknown.verdict is Verdict.REJECT and unknown.reason.startswith("unknown model")


def test_admission_checks_the_models_limit_the_deadline_estimate_and_cold_start_breadth():
    too_long = Pending("r", "m", "p", 600, arrived=0.0, seq=1)
    verdict = admit(too_long, 0.0, ModelLoad(queued=0, known=True, max_tokens=512), limits())
    assert verdict.verdict is Verdict.REJECT and "limit of 512" in verdict.reason
    # 100 ahead at 10/s is 10 s of work: a deadline 5 s away cannot be met, one 20 s away can.
    busy = ModelLoad(queued=100, known=True, rate=10.0)
    assert admit(req(1, deadline=5.0), 0.0, busy, limits()).reason.startswith("deadline cannot be met")
    assert admit(req(1, deadline=20.0), 0.0, busy, limits()).verdict is Verdict.BATCH
    crowded = ModelLoad(queued=0, known=False, held_models=5)
    assert admit(req(1), 0.0, crowded, limits(("*",))).verdict is Verdict.REJECT
    already = ModelLoad(queued=3, known=False, held_models=5, held=True)
    assert admit(req(1), 0.0, already, limits(("*",))).verdict is Verdict.HOLD


def test_service_rate_needs_a_second_of_history_and_forgets_idle_models():
    rates = ServiceRate(window_s=10.0)
    rates.record("m", 8, 0.0)
    assert rates.rate("m", 0.5) is None
    rates.record("m", 12, 2.0)
    assert rates.rate("m", 2.0) == 10.0
    rates.forget_idle(30.0)
    assert rates.rate("m", 30.0) is None


def test_reply_topics_must_be_allowed_and_never_internal():
    reserved = {"fleet.allocations.v1"}
    assert reply_topic_refusal("inference.results.team-a", ["inference.results."], set(), reserved) is None
    assert reply_topic_refusal("mine", ["inference.results."], {"mine"}, reserved) is None
    assert "internal" in (reply_topic_refusal("__consumer_offsets", ["_"], set(), reserved) or "")
    assert "internal" in (reply_topic_refusal("fleet.allocations.v1", ["fleet."], set(), reserved) or "")
    assert "not allowed" in (reply_topic_refusal("elsewhere", ["inference.results."], set(), reserved) or "")


def test_cold_start_asks_once_per_cooldown_and_releases_or_expires():
    hold = ColdStartHold(timeout_s=10.0, cooldown_s=5.0)
    assert hold.hold(req(1), 0.0) is True
    assert hold.hold(req(2, deadline=3.0), 1.0) is False
    assert hold.hold(req(3, arrived=6.0), 6.0) is True
    assert hold.next_expiry() == 3.0
    assert [r.request_id for r in hold.expire(3.0)] == ["r2"]
    assert [r.request_id for r in hold.expire(10.0)] == ["r1"]
    assert [r.request_id for r in hold.release("m")] == ["r3"] and hold.count("m") == 0


def test_cold_start_asks_once_per_users_region_and_again_after_a_release():
    hold = ColdStartHold(timeout_s=10.0, cooldown_s=5.0)
    assert hold.hold(req(1, region="us-east-1"), 0.0) is True
    assert hold.hold(req(2, region="eu-west-1"), 0.5) is True  # its users wait too: ask near them
    assert hold.hold(req(3, region="eu-west-1"), 1.0) is False
    assert hold.hold(req(4, model="other", region="eu-west-1"), 1.0) is True
    assert len(hold.release("m")) == 3
    assert hold.hold(req(5, region="eu-west-1", arrived=2.0), 2.0) is True  # a release forgets the asks


def test_allocation_failure_rejects_only_the_region_it_was_for():
    hold = ColdStartHold(timeout_s=10.0, cooldown_s=5.0)
    hold.hold(req(1, region="us-east-1"), 0.0)
    hold.hold(req(2, region="eu-west-1"), 0.0)
    assert [r.request_id for r in hold.reject("m", "eu-west-1")] == ["r2"]
    assert hold.count("m") == 1


def test_offsets_commit_only_past_results_that_are_out():
    tracker = OffsetTracker()
    p = ("t", 0)
    for offset in (5, 6, 7):
        tracker.received(p, offset)
    tracker.done(p, 6)
    point = tracker.committable(1_000)[p]
    assert point[0] == 5 and decode_done(5, point[1]) == {6}  # 6 is answered: whoever reads from 5 skips it
    tracker.mark_committed({p: point})
    assert tracker.committable(1_050) == {}  # nothing changed: nothing to commit
    tracker.done(p, 5)
    assert tracker.committable(1_100)[p][0] == 7
    tracker.done(p, 7)
    assert tracker.committable(1_150)[p][0] == 8 and tracker.pending() == 0


@given(st.permutations(list(range(30))), st.integers(0, 30))
def test_the_committed_offset_never_passes_an_open_record(order, finished):
    tracker = OffsetTracker()
    p = ("t", 1)
    for offset in range(30):
        tracker.received(p, offset)
    for offset in order[:finished]:
        tracker.done(p, offset)
    position, metadata = tracker.committable(0).get(p, (0, ""))
    assert all(o in order[:finished] for o in range(position))
    assert position == 30 or position not in order[:finished]
    # The metadata names exactly the answered offsets past the commit: a new owner skips those, runs the rest.
    assert decode_done(position, metadata) == {o for o in order[:finished] if o >= position}


def test_demand_window_counts_and_resets():
    window = DemandWindow()
    window.record("m", "us-east-1", "ok", 10, 20, 100.0)
    window.record("m", "us-east-1", "ok", 10, 20, 300.0)
    window.record("m", "us-east-1", "rejected", 0, 0, 0.0)
    window.record_batch("m", "us-east-1")
    counts = window.take()[("m", "us-east-1")]
    assert (counts.requests, counts.ok, counts.rejected, counts.tokens_in, counts.tokens_out) == (3, 2, 1, 20, 40)
    assert counts.batches == 1 and counts.latencies_ms == [100.0, 300.0]
    assert window.take() == {}
    assert percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0 and percentile([1.0, 2.0, 3.0, 4.0], 0.99) == 4.0
    assert percentile([], 0.5) is None


ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "remove", "load", "unload"]),
        st.sampled_from(["s1", "s2", "s3"]),
        st.sampled_from(["a", "b"]),
    ),
    max_size=40,
)


@given(ops)
def test_the_model_index_always_agrees_with_the_placements(steps):
    registry = Registry()
    for op, server_id, model_id in steps:
        if op == "add":
            registry.add_server(server(server_id))
        elif op == "remove":
            registry.remove_server(server_id)
        elif op == "load":
            registry.load_model(server_id, model_id, None)
        else:
            registry.unload_model(server_id, model_id)
    for model_id in ("a", "b"):
        expected = sorted(
            s for s, models in registry.placements.items() if model_id in models and s in registry.servers
        )
        assert [c.server_id for c in registry.candidates(model_id)] == expected
        assert registry.knows_model(model_id) == bool(expected)


def test_a_new_owner_skips_exactly_what_the_previous_one_answered():
    before, after = OffsetTracker(), OffsetTracker()
    p = ("t", 2)
    before.assigned(p, None, None)
    for offset in range(10):
        before.received(p, offset)
    for offset in (0, 1, 3, 4, 8):
        before.done(p, offset)
    commit = before.committable(0)[p]
    assert commit[0] == 2
    after.assigned(p, commit[0], commit[1])
    reread = [o for o in range(2, 10) if after.received(p, o)]
    assert reread == [2, 5, 6, 7, 9]


def test_a_result_read_before_a_reassignment_is_not_ours_to_send():
    tracker = OffsetTracker()
    p = ("t", 0)
    assert tracker.owns(p) and tracker.current(p, 0)  # never assigned: a consumer without a group
    tracker.assigned(p, None, None)
    epoch = tracker.epoch(p)
    tracker.forget([p])
    assert not tracker.owns(p) and not tracker.current(p, epoch)
    tracker.assigned(p, None, None)
    assert tracker.owns(p) and not tracker.current(p, epoch) and tracker.current(p, tracker.epoch(p))


@given(st.sets(st.integers(0, 50_000), max_size=3_000), st.integers(0, 2**41), st.booleans())
def test_done_offsets_round_trip_through_commit_metadata_within_its_size_limit(done, now_ms, final):
    metadata = encode_done(0, done, 50_001, now_ms, final)
    assert len(metadata) <= 4_000
    note = decode_note(0, metadata)
    assert note.committed_at_ms == now_ms and note.final == final
    # Whatever did not fit is left out (re-run: a duplicate at worst), never invented.
    assert note.answered <= done
    if note.answered != done:
        assert max(note.answered, default=-1) < max(done)


def test_a_commit_note_is_cheap_when_few_requests_are_open():
    tracker = OffsetTracker()
    p = ("t", 4)
    for offset in range(100_000):
        tracker.received(p, offset)
        if offset != 17:
            tracker.done(p, offset)
    position, metadata = tracker.committable(5)[p]
    assert position == 17 and len(metadata) < 400  # one hole in a window of 100,000
    assert decode_note(17, metadata).answered == set(range(18, 100_000))


def test_crash_repeats_are_skipped_until_the_offsets_the_dead_owner_could_have_read():
    repeats = Repeats()
    repeats.add({"r1", "r2"}, {("t", 0): 10})
    assert repeats.seen(("t", 0), 3, "r1") and not repeats.seen(("t", 0), 4, "r9")
    assert not repeats.seen(("t", 1), 3, "r2")  # not a partition that came from a crash
    assert not repeats.seen(("t", 0), 10, "r2")  # past the end at assignment: new requests
    assert repeats.check_until == {} and repeats.answered == set()


def test_a_partition_that_comes_back_after_a_failed_commit_skips_what_this_consumer_answered():
    tracker = OffsetTracker()
    p = ("t", 3)
    tracker.assigned(p, 0, "")
    for offset in range(6):
        tracker.received(p, offset)
    for offset in (0, 2, 3):
        tracker.done(p, offset)
    tracker.forget([p])  # revoked; suppose its commit failed (a broker just back from an outage)
    tracker.assigned(p, 0, "")  # the group gives it back, from the last commit that did succeed
    assert [o for o in range(6) if tracker.received(p, o)] == [1, 4, 5]


def test_allocation_events_that_move_no_server_leave_the_registry_alone():
    from services.router.use_cases.allocations import apply_allocation
    from shared.events import AllocationFailed, FleetRepaired, InstancesMoved

    registry = Registry()
    registry.add_server(server("s1"))
    for event in (
        AllocationFailed(source="a", model_id="m", region="r", reason="full"),
        FleetRepaired(source="a", repair="server_gone", reason="no process"),
        InstancesMoved(
            source="a", model_id="m", region="r", from_server="s1", from_gpu_type="h100", to_server="s2",
            to_gpu_type="a100", quantisation="fp16", instances=1, saving_per_hour=4.0, action="x",
        ),
    ):  # fmt: skip
        apply_allocation(registry, event)
    assert list(registry.servers) == ["s1"]
