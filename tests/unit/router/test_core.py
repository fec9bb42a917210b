"""Registry, admission, cold-start hold, offset commits and demand windows."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from services.router.domain.admission import Verdict, admit
from services.router.domain.cold_start import ColdStartHold
from services.router.domain.demand import DemandWindow, percentile
from services.router.domain.offsets import OffsetTracker
from services.router.domain.registry import Registry, Server
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


def test_re_announcing_a_server_keeps_its_live_load():
    registry = Registry()
    registry.add_server(server("s1"))
    registry.servers["s1"].inflight = 2
    registry.add_server(server("s1", region="eu-west-1"))
    assert registry.servers["s1"].inflight == 2 and registry.servers["s1"].region == "eu-west-1"


def test_admission_rejects_with_reasons_holds_and_batches():
    assert admit(req(1, deadline=1.0), 1.0, 0, 10, True, []).reason.startswith("deadline passed")
    over = admit(req(1), 0.0, 10, 10, True, [])
    assert over.verdict is Verdict.REJECT and over.reason.startswith("over capacity")
    assert admit(req(1), 0.0, 9, 10, True, []).verdict is Verdict.BATCH
    assert admit(req(1), 0.0, 0, 10, False, ["*"]).verdict is Verdict.HOLD
    assert admit(req(1), 0.0, 0, 10, False, ["m"]).verdict is Verdict.HOLD
    unknown = admit(req(1), 0.0, 0, 10, False, ["other"])
    assert unknown.verdict is Verdict.REJECT and unknown.reason.startswith("unknown model")


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
    assert tracker.committable() == {p: 5}
    tracker.mark_committed({p: 5})
    assert tracker.committable() == {}
    tracker.done(p, 5)
    assert tracker.committable() == {p: 7}
    tracker.done(p, 7)
    assert tracker.committable() == {p: 8} and tracker.pending() == 0


@given(st.permutations(list(range(30))), st.integers(0, 30))
def test_the_committed_offset_never_passes_an_open_record(order, finished):
    tracker = OffsetTracker()
    p = ("t", 1)
    for offset in range(30):
        tracker.received(p, offset)
    for offset in order[:finished]:
        tracker.done(p, offset)
    position = tracker.committable().get(p, 0)
    assert all(o in order[:finished] for o in range(position))
    assert position == 30 or position not in order[:finished]


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
